"""Socket, TLS and protocol failures of a mail session, as MailboxErrors that name the account,
the server and what to do about it. Translated here once for every source."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable, Iterator

from helpdesk_fetch.config import DEFAULT_PORTS, Account
from helpdesk_fetch.errors import ConnectError, MailboxError, ProtocolError
from helpdesk_fetch.sources.base import Cutoff
from helpdesk_fetch.tls import untrusted

# What OpenSSL says when the bytes it reads are no TLS record: the port speaks plain text.
_PLAINTEXT_REASONS = {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "HTTP_REQUEST",
                      "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
# The first words servers greet with, by protocol: enough to say which server answered.
_GREETINGS = (("+OK", "POP3"), ("-ERR", "POP3"), ("* OK", "IMAP"), ("* PREAUTH", "IMAP"),
              ("* BYE", "IMAP"), ("220", "SMTP"), ("SSH-", "SSH"), ("HTTP/", "HTTP"))


class BadGreeting(Exception):
    """The server's first line was not its protocol's greeting (*greeting*), or it sent none
    within the timeout (None): raised by a source while connecting, described here."""

    def __init__(self, greeting: str | None) -> None:
        super().__init__(greeting)
        self.greeting = greeting


@contextlib.contextmanager
def network_errors(account: Account, doing: str, timeout: float, *,
                   lost: tuple[type[Exception], ...] = (),
                   protocol: tuple[type[Exception], ...] = (),
                   text: Callable[[Exception], str] = str,
                   cutoff: Cutoff | None = None) -> Iterator[None]:
    """Turn socket, TLS and protocol exceptions into MailboxError naming account and server.

    *lost* are the library's "connection broke" exceptions, *protocol* its "server said no" ones;
    *text* renders the latter. Once *cutoff* has fired, any failure is reported as the cut."""
    try:
        with _network_errors(account, doing, timeout, lost=lost, protocol=protocol, text=text):
            yield
    except Exception:
        if cutoff is None or not cutoff.fired:
            raise
        raise ConnectError(account.name, f"{doing} {account.host}:{account.port}: connection "
                           f"cut: {cutoff.why} while the server was still answering (too "
                           "slowly); what was not stored waits for the next run") from None


@contextlib.contextmanager
def _network_errors(account: Account, doing: str, timeout: float, *,
                    lost: tuple[type[Exception], ...], protocol: tuple[type[Exception], ...],
                    text: Callable[[Exception], str]) -> Iterator[None]:
    where = f"{doing} {account.host}:{account.port}"
    try:
        yield
    except MailboxError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(account.name, f"{where}: {untrusted(exc, ca_file=account.ca_file)}"
                           ) from None
    except ssl.SSLError as exc:
        raise ConnectError(account.name, f"{where}: {_tls_failed(account, exc)}") from None
    except BadGreeting as exc:
        raise ProtocolError(account.name,
                            f"{where}: {_greeting_problem(account, exc.greeting, timeout)}"
                            ) from None
    except ConnectionRefusedError:  # a ConnectionError, but nothing was ever connected
        raise ConnectError(account.name, f"{where}: connection refused; is the server running, "
                           "and are host and port right?") from None
    except TimeoutError:
        raise ConnectError(account.name, f"{where}: no answer within {timeout:g} s "
                           "(timeout_seconds); the next run tries again") from None
    except ((ConnectionError, EOFError) + lost) as exc:
        raise ProtocolError(account.name, f"{where}: connection lost ({exc}); the next run "
                           "tries again") from None
    except socket.gaierror as exc:
        raise ConnectError(account.name, f"{where}: {unresolved(account.host, exc)}") from None
    except OSError as exc:
        raise ConnectError(account.name, f"{where}: {exc.strerror or exc}") from None
    except protocol as exc:
        raise ProtocolError(account.name, f"{where}: {text(exc)}") from None


def unresolved(host: str | None, exc: socket.gaierror, key: str = "host") -> str:
    """A host name that DNS does not know (or DNS that does not answer), and what to check."""
    return (f"cannot find the address of {host!r} ({exc.strerror or exc}); is {key} spelt "
            "right, and does this machine's DNS answer?")


def _tls_failed(account: Account, exc: ssl.SSLError) -> str:
    if exc.reason in _PLAINTEXT_REASONS and account.security == "ssl":
        plain = DEFAULT_PORTS[(account.protocol, "starttls")]
        tls = DEFAULT_PORTS[(account.protocol, "ssl")]
        return (f"the server does not speak TLS on this port (it answered in plain text, "
                f"{exc.reason}); for this port try security = \"starttls\" (usually port "
                f"{plain}), or use the server's TLS port (usually {tls})")
    return f"TLS failed ({exc.reason or exc})"


def _greeting_problem(account: Account, greeting: str | None, timeout: float) -> str:
    """Why a server's greeting does not do, and what to check: a port or protocol mixed up,
    or a TLS port reached without TLS (the server waits for the handshake, in silence)."""
    wanted = account.protocol.upper()
    tls_port = DEFAULT_PORTS[(account.protocol, "ssl")]
    plain_port = DEFAULT_PORTS[(account.protocol, "starttls")]
    if greeting is None:
        text = f"connected, but the server sent no greeting within {timeout:g} s"
        if account.security != "ssl":
            text += ("; a port that expects TLS from the first byte waits like this: if this "
                     f"is the server's TLS port (usually {tls_port}), set security = \"ssl\"")
        return text
    shown = repr(greeting[:100])
    seen = next((name for prefix, name in _GREETINGS if greeting.upper().startswith(prefix)),
                None)
    if seen == wanted:  # its own protocol, saying no (-ERR, * BYE): busy, or not allowed
        return f"the server refused the session: {shown}"
    text = f"this is not {_a(wanted)} server: " + (
        f"it greets like {_a(seen)} server ({shown})" if seen else f"its greeting is {shown}")
    text += (f"; check the port (usually {tls_port} with security = \"ssl\", {plain_port} "
             "with \"starttls\")")
    if seen in ("IMAP", "POP3"):
        text += f", or set protocol = \"{seen.lower()}\""
    return text


def _a(protocol: str) -> str:
    """The name with its article, as it is spoken: "an IMAP", "a POP3"."""
    return f"{'an' if protocol[0] in 'AEFHILMNORSX' else 'a'} {protocol}"
