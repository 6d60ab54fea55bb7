"""Socket, TLS and protocol failures of a mail session, as MailboxErrors that name the account,
the server and what to do about it. Translated here once for every source."""

from __future__ import annotations

import contextlib
import ssl

from helpdesk_fetch.config import Account
from helpdesk_fetch.errors import ConnectError, MailboxError, ProtocolError
from helpdesk_fetch.sources.base import Cutoff


@contextlib.contextmanager
def network_errors(account: Account, doing: str, timeout: float, *, lost: tuple = (),
                   protocol: tuple = (), text=str, cutoff: Cutoff | None = None):
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
def _network_errors(account: Account, doing: str, timeout: float, *, lost: tuple,
                    protocol: tuple, text):
    where = f"{doing} {account.host}:{account.port}"
    try:
        yield
    except MailboxError:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise ConnectError(account.name, f"{where}: the server's TLS certificate is not trusted "
                           f"({exc.verify_message}); for a private CA set ca_file") from None
    except ssl.SSLError as exc:
        raise ConnectError(account.name, f"{where}: TLS failed ({exc.reason or exc})") from None
    except ConnectionRefusedError:  # a ConnectionError, but nothing was ever connected
        raise ConnectError(account.name, f"{where}: connection refused; is the server running, "
                           "and are host and port right?") from None
    except TimeoutError:
        raise ConnectError(account.name, f"{where}: no answer within {timeout:g} s "
                           "(timeout_seconds); the next run tries again") from None
    except (ConnectionError, EOFError, *lost) as exc:
        raise ProtocolError(account.name, f"{where}: connection lost ({exc}); the next run "
                           "tries again") from None
    except OSError as exc:
        raise ConnectError(account.name, f"{where}: {exc.strerror or exc}") from None
    except protocol as exc:
        raise ProtocolError(account.name, f"{where}: {text(exc)}") from None
