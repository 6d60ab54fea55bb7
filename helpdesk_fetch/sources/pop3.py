"""POP3 with poplib: verified TLS (poplib verifies nothing by default) or STLS, UIDL, DELE + QUIT.

POP3 makes deletions final only at QUIT; a session that breaks off keeps every message on the
server, which is what store-first-delete-second needs. A message that cannot be ingested stays on
the server; the ingest side remembers its UIDL and skips it.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import logging
import poplib
import ssl
from collections.abc import Iterator

from helpdesk_fetch.errors import AuthError, ConnectError, ProtocolError
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.sources.base import Cutoff, Mailbox, MessageRef
from helpdesk_fetch.sources.net import BadGreeting, network_errors
from helpdesk_fetch.sources.sasl import describe_challenge, xoauth2_base64
from helpdesk_fetch.tls import tls_context

# poplib refuses lines over 2048 bytes, which real mail has (RFC 5322 asks for 998, not everybody
# listens); allow long lines while still bounding a runaway server.
MAX_LINE = 4 * 1024 * 1024


log = logging.getLogger(__name__)
TRACE = logging.getLogger(__name__ + ".protocol")  # the -vvv protocol trace, like imaplib's


class _Session:
    """poplib with long lines allowed, a greeting that is not POP3's told from other errors, a
    protocol trace in which no secret appears (poplib's own debug output prints PASS in the
    clear, so it is never turned on), and its raw socket shown to the cutoff as soon as it is
    connected (poplib does TLS and reads the greeting inside its constructor)."""

    _secret_next = False

    def __init__(self, cutoff: Cutoff, *args, **kwargs) -> None:
        self._cutoff = cutoff
        try:
            super().__init__(*args, **kwargs)
        except poplib.error_proto as exc:  # the greeting is all that is read in here
            raise BadGreeting(_text(exc)) from None
        except TimeoutError:
            if getattr(self, "file", None) is None:  # connecting (or TLS) timed out
                raise
            raise BadGreeting(None) from None  # connected, then nothing: a TLS port?

    def _create_socket(self, timeout):
        context = self.context if isinstance(self, poplib.POP3_SSL) else None
        return self._cutoff.connect(self.host, self.port, timeout, context)

    def _putcmd(self, line):
        upper = line.upper()
        if upper.startswith(("PASS ", "APOP ")):
            shown = line.split(" ", 1)[0] + " ***"
        elif upper.startswith("AUTH ") and len(line.split()) > 2:  # an initial response
            shown = " ".join(line.split()[:2]) + " ***"
        elif self._secret_next and line:
            shown = "***"  # a SASL response: the password or token, base64-encoded
        else:
            shown = line
        self._secret_next = upper.startswith("AUTH ") or (self._secret_next and not line)
        TRACE.debug("> %s", shown)
        super()._putcmd(line)

    def _getresp(self):
        try:
            resp = super()._getresp()
        except poplib.error_proto as exc:
            TRACE.debug("< %s", _text(exc))
            raise
        TRACE.debug("< %s", resp.decode("utf-8", "replace"))
        return resp

    def _getline(self):
        line = self.file.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise poplib.error_proto(f"-ERR line longer than {MAX_LINE} bytes")
        if not line:  # not poplib's error_proto("-ERR EOF"), which reads as the server's "no"
            raise EOFError("the server closed the connection")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_Session, poplib.POP3):
    pass


class _POP3_SSL(_Session, poplib.POP3_SSL):
    pass


class Pop3Mailbox(Mailbox):
    conn: poplib.POP3 | None = None

    def open(self) -> None:
        a = self.account
        context = tls_context(a.name, a.ca_file)
        with self._translate("connecting to"):
            if a.security == "ssl":
                self.conn = _POP3_SSL(self.cutoff, a.host, a.port, timeout=self.timeout,
                                      context=context)
            else:
                self.conn = _POP3(self.cutoff, a.host, a.port, timeout=self.timeout)
            if a.security == "starttls":
                self._stls(context)
            self._login()

    def _stls(self, context: ssl.SSLContext) -> None:
        if "STLS" not in self.conn.capa():
            a = self.account
            raise ConnectError(a.name, f"{a.host}:{a.port} does not offer STLS; refusing to log "
                               "in without TLS")
        self.conn.stls(context)

    def _login(self) -> None:
        if self.account.auth == "oauth2":
            return self._xoauth2()
        try:
            self.conn.user(self.account.username)
            self.conn.pass_(self.password)
        except poplib.error_proto as exc:
            raise AuthError(self.account.name, f"login as {self.account.username!r} refused: "
                            f"{_text(exc)}; check the username and the password source") from None

    def _xoauth2(self) -> None:
        """``AUTH XOAUTH2``, then the response after the server's ``+`` (the two-step form that
        Office 365 expects; RFC 5034 allows it everywhere)."""
        a = self.account
        try:
            self.conn._shortcmd("AUTH XOAUTH2")
        except poplib.error_proto as exc:
            raise AuthError(a.name, f"{a.host}:{a.port} does not accept AUTH XOAUTH2: "
                            f"{_text(exc)}") from None
        try:
            answer = self.conn._shortcmd(xoauth2_base64(a.username, self.password))
            if answer.startswith(b"+OK"):
                return
            detail = describe_challenge(_unbase64(answer[1:].strip()))
            self.conn._shortcmd("")  # ends the exchange; the server answers -ERR
            raise poplib.error_proto(f"-ERR ({detail})")
        except poplib.error_proto as exc:
            raise AuthError(a.name, f"the server refused the OAuth2 access token for "
                            f"{a.username!r}: {_text(exc)}; the saved token is dropped, the "
                            "next attempt gets a new one") from None

    def list(self) -> list[MessageRef]:
        """The messages, keyed by UIDL and size: a server may give a UIDL again to a new message
        once the old one is gone (RFC 1939), and that must never pass for the stored one."""
        with self._translate("listing"):
            uidls = dict(_pairs(self._uidl()))
            sizes = dict(_pairs(self.conn.list()[1]))
        refs = [MessageRef(f"pop3:{uidl}:{sizes.get(num, 0)}", int(sizes.get(num, 0)), int(num))
                for num, uidl in sorted(uidls.items(), key=lambda item: int(item[0]))]
        return self._unique(refs)

    def _uidl(self) -> list[bytes]:
        try:
            return self.conn.uidl()[1]
        except poplib.error_proto as exc:
            a = self.account
            raise ProtocolError(a.name, f"{a.host}:{a.port} does not answer UIDL "
                                f"({_text(exc)}); helpdesk-fetch needs it to tell messages "
                                "apart, and reads nothing from this mailbox") from None

    def _unique(self, refs: list[MessageRef]) -> list[MessageRef]:
        """*refs* without those whose key another message has too (a broken server): they
        stay on the server, since one could pass for the other."""
        keys = collections.Counter(ref.key for ref in refs)
        for key in sorted(k for k, n in keys.items() if n > 1):
            log.error("account %s: the server gives %d messages the same UIDL and size (%s); "
                      "they stay on the server", self.account.name, keys[key], key)
        return [ref for ref in refs if keys[ref.key] == 1]

    def fetch(self, refs: list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            with self._translate("fetching from"):
                try:
                    raw = _retr(self.conn, ref.handle)
                except poplib.error_proto as exc:  # this one message; the session goes on
                    log.error("account %s: the server would not hand over message %s (%s); "
                              "it stays on the server", self.account.name, ref.key, _text(exc))
                    continue
            yield ref, raw

    def delete(self, refs: list[MessageRef]) -> None:
        if self.dry_run:
            return
        with self._translate("deleting on"):
            for ref in refs:
                self.conn.dele(ref.handle)

    def aside_location(self) -> str:
        return "left on the POP3 server (later runs skip it)"

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """Nothing to do on the server: the ingest side remembers the UIDL."""

    def close(self) -> None:
        crashpoint("after_pop3_dele")
        with self._translate("closing the session on"):
            self.conn.quit()  # makes the DELEs final

    def abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()  # no QUIT: the server keeps every message

    def _translate(self, doing: str):
        return network_errors(self.account, doing, self.timeout, protocol=(poplib.error_proto,),
                              text=_text, cutoff=self.cutoff)


def _retr(conn: poplib.POP3, which: int) -> bytes:
    """RETR *which*: the message with CRLF line ends, as ``b"\\r\\n".join(retr()[1]) + CRLF``
    would be, without poplib's list of lines (for a 25 MB attachment 440,000 bytes objects,
    50 MB, before the join)."""
    conn._putcmd(f"RETR {which}")
    conn._getresp()
    message = bytearray()
    line, _ = conn._getline()
    while line != b".":
        message += line[1:] if line.startswith(b"..") else line
        message += b"\r\n"
        line, _ = conn._getline()
    return bytes(message)


def _pairs(lines: list[bytes]) -> Iterator[tuple[str, str]]:
    for line in lines:
        num, _, value = line.decode("ascii", "replace").partition(" ")
        yield num, value.strip()


def _unbase64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return data


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
