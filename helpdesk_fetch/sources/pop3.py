"""POP3 with poplib: verified TLS (poplib verifies nothing by default) or STLS, UIDL, DELE + QUIT.

POP3 makes deletions final only at QUIT; a session that breaks off keeps every message on the
server, which is what store-first-delete-second needs. A message that cannot be ingested stays on
the server; the ingest side remembers its UIDL and skips it.

What differs between POP3 servers (tests/SERVERS.md):

- UIDL formats: Dovecot ``000000016b1032da``, Courier ``UID1-1796223739``, Cyrus
  ``1796223756.1``. A UIDL is only ever compared whole (with the size, ``list``), never read.
- A server may hand over something other than the message it listed: Courier's POP3, until
  the client sends ``UTF8`` (RFC 6856), answers RETR of a message with 8-bit header bytes with
  a notice of its own ("Cannot display Unicode content", the message attached). So ``UTF8`` is
  sent where CAPA offers it, and beyond that a message is taken only when what RETR gave has
  the size LIST announced (``as_listed``); anything else stays on the server, recorded.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import collections
import contextlib
import logging
import poplib
import re
import ssl
from collections.abc import Generator, Iterator

from helpdesk_fetch.errors import (
    AuthError,
    ConnectError,
    MailboxError,
    ProtocolError,
    account_named,
)
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.sources import poplib_adapter
from helpdesk_fetch.sources.base import HEADER_BYTES, Mailbox, MessageRef, Withheld, handle
from helpdesk_fetch.sources.net import network_errors
from helpdesk_fetch.sources.poplib_adapter import error_text
from helpdesk_fetch.sources.sasl import describe_challenge, xoauth2_base64
from helpdesk_fetch.tls import tls_context

log = logging.getLogger(__name__)


class Pop3Mailbox(Mailbox):
    _conn: poplib_adapter.Session | None = None
    _pipelining = False  # the server takes commands ahead of its answers (RFC 2449)
    _out_of_step = False  # an answer was not read to its end: no later answer can be trusted

    @property
    def conn(self) -> poplib_adapter.Session:
        """The session, from open() on."""
        if self._conn is None:
            raise RuntimeError("the POP3 mailbox is not open")
        return self._conn

    def open(self) -> None:
        a = self.account
        context = tls_context(a.name, a.ca_file)
        with self._translate("connecting to"):
            self._conn = poplib_adapter.connect(
                self.cutoff, self.given(a.host, "host"), self.given(a.port, "port"),
                timeout=self.timeout,
                context=context if a.security == "ssl" else None)
            capabilities = self._capa()
            if a.security == "starttls":
                self._stls(context, capabilities)
                capabilities = self._capa()  # the list before TLS is not to be trusted
            if "UTF8" in capabilities:
                self._utf8()
            self._pipelining = "PIPELINING" in capabilities
            self._login()
        self._withheld: list[Withheld] = []

    def _capa(self) -> dict[str, builtins.list[str]]:
        try:
            return self.conn.capa()
        except poplib.error_proto:  # RFC 1939 servers know no CAPA (RFC 2449): no extensions
            return {}

    def _utf8(self) -> None:
        """RFC 6856, in the AUTHORIZATION state where it belongs: the server hands over
        messages as stored, 8-bit headers included. A refusal changes nothing: ``as_listed``
        still keeps a substitute out."""
        with contextlib.suppress(poplib.error_proto):
            poplib_adapter.command(self.conn, "UTF8")

    def _stls(self, context: ssl.SSLContext, capabilities: dict[str, builtins.list[str]]) -> None:
        if "STLS" not in capabilities:
            a = self.account
            raise ConnectError(a.name, f"{a.host}:{a.port} does not offer STLS; refusing to log "
                               "in without TLS")
        self.conn.stls(context)

    def _login(self) -> None:
        if self.account.auth == "oauth2":
            return self._xoauth2()
        try:
            self.conn.user(self.given(self.account.username, "username"))
            self.conn.pass_(self.given(self.password, "password_env"))
        except poplib.error_proto as exc:
            raise login_refused(self.account.name, self.account.username, exc) from None

    def _xoauth2(self) -> None:
        """``AUTH XOAUTH2``, then the response after the server's ``+`` (the two-step form that
        Office 365 expects; RFC 5034 allows it everywhere)."""
        a = self.account
        try:
            poplib_adapter.command(self.conn, "AUTH XOAUTH2")
        except poplib.error_proto as exc:
            raise AuthError(a.name, f"{a.host}:{a.port} does not accept AUTH XOAUTH2: "
                            f"{error_text(exc)}") from None
        try:
            answer = poplib_adapter.command(self.conn, xoauth2_base64(
                self.given(a.username, "username"), self.given(self.password, "oauth2_token_file")))
            if answer.startswith(b"+OK"):
                return
            detail = describe_challenge(_unbase64(answer[1:].strip()))
            poplib_adapter.command(self.conn, "")  # ends the exchange; the server answers -ERR
            raise poplib.error_proto(f"-ERR ({detail})")
        except poplib.error_proto as exc:
            raise AuthError(a.name, f"the server refused the OAuth2 access token for "
                            f"{a.username!r}: {error_text(exc)}; the saved token is dropped, the "
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

    def _uidl(self) -> builtins.list[bytes]:
        try:
            return self.conn.uidl()[1]
        except poplib.error_proto as exc:
            a = self.account
            raise ProtocolError(a.name, f"{a.host}:{a.port} does not answer UIDL "
                                f"({error_text(exc)}); helpdesk-fetch needs it to tell messages "
                                "apart, and reads nothing from this mailbox") from None

    def _unique(self, refs: builtins.list[MessageRef]) -> builtins.list[MessageRef]:
        """*refs* without those whose key another message has too (a broken server): they
        stay on the server, since one could pass for the other."""
        keys = collections.Counter(ref.key for ref in refs)
        for key in sorted(k for k, n in keys.items() if n > 1):
            log.error("%s: the server gives %d messages the same UIDL and size (%s); "
                      "they stay on the server", account_named(self.account.name), keys[key], key)
        return [ref for ref in refs if keys[ref.key] == 1]

    def fetch(self, refs: builtins.list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        self._in_step()
        with contextlib.closing(self._retrieved(refs)) as retrieved:
            for ref, raw in retrieved:
                if not as_listed(raw, ref.size):
                    self._withheld.append(Withheld(
                        ref, f"the server handed over {len(raw)} bytes where LIST announced "
                        f"{ref.size}: not the message it holds (e.g. a notice in its place), "
                        "or a size the server miscounted; not taken", raw))
                    continue
                yield ref, raw

    def _retrieved(self, refs: builtins.list[MessageRef],
                   ) -> Generator[tuple[MessageRef, bytes], None, None]:
        """RETR each of *refs*: to a server that offers PIPELINING, the next RETR goes out
        before this one's answer is read, so that it is on its way while this one is stored
        (a round trip per message saved). An answer left unread, when the caller stops early,
        is read and dropped: the session stays in step."""
        sent = read = 0  # RETRs sent, answers read
        try:
            while read < len(refs):
                with self._translate("fetching from"):
                    while sent <= read or (self._pipelining and sent == read + 1 < len(refs)):
                        poplib_adapter.command_only(self.conn, f"RETR {handle(refs[sent], int)}")
                        sent += 1
                    raw = self._answer(refs[read])
                read += 1
                if raw is not None:
                    yield refs[read - 1], raw
        except GeneratorExit:  # the caller stopped early
            self._drop_answers(refs[read:sent])
            raise
        except BaseException:
            self._out_of_step = self._out_of_step or sent > read
            raise

    def headers(self, ref: MessageRef) -> bytes | None:
        """``TOP n 0`` (optional in RFC 1939: None where the server has no TOP), of which only
        HEADER_BYTES are kept: the rest of a huge header is read and dropped."""
        self._in_step()
        with self._translate("reading a message's header on"):
            poplib_adapter.command_only(self.conn, f"TOP {handle(ref, int)} 0")
            try:
                return poplib_adapter.bounded_answer(self.conn, HEADER_BYTES)
            except poplib.error_proto as exc:
                if isinstance(exc, poplib_adapter.LineTooLong):  # the session is out of step
                    self._out_of_step = True
                    raise
                log.debug("no header of %s: %s", ref.key, error_text(exc))
                return None
            except BaseException:  # the answer not read to its end: no later one is trusted
                self._out_of_step = True
                raise

    def _answer(self, ref: MessageRef) -> bytes | None:
        """The answer to RETR *ref*: the message, or None where the server refused it."""
        try:  # a line as long as the message: one of a mailer that never breaks lines
            return poplib_adapter.retr_answer(self.conn, max_line=_longest_line(ref))
        except poplib_adapter.LineTooLong as exc:  # longer than the message: the rest of the
            a = self.account  # answer is unread, so the session cannot go on
            raise ProtocolError(a.name, f"fetching from {a.host}:{a.port}: message {ref.key}: "
                                f"{error_text(exc)[5:]}, longer than LIST said the message "
                                "is") from None
        except poplib.error_proto as exc:  # this one message; the session goes on
            log.error("%s: the server would not hand over message %s (%s); it stays on the "
                      "server", account_named(self.account.name), ref.key, error_text(exc))
            return None

    def _drop_answers(self, refs: builtins.list[MessageRef]) -> None:
        """Read the answers to the RETRs of *refs*, sent ahead, and drop them."""
        try:
            for ref in refs:
                try:
                    poplib_adapter.retr_answer(self.conn, max_line=_longest_line(ref))
                except poplib_adapter.LineTooLong:
                    raise
                except poplib.error_proto:  # refused: its one line is read
                    pass
        except Exception as exc:  # out of step: no QUIT, so none of this session's DELEs counts
            log.warning("%s: the answer to RETR of %s, sent ahead, could not be read to its "
                        "end (%s)", account_named(self.account.name), ref.key, exc)
            self._out_of_step = True

    def _in_step(self) -> None:
        """ProtocolError once an answer could not be read to its end: no later answer of this
        session can be trusted, and ending it without QUIT undoes its DELEs."""
        if self._out_of_step:
            a = self.account
            raise ProtocolError(a.name, f"reading from {a.host}:{a.port}: an answer could not "
                                "be read to its end; the session ends without QUIT, so nothing "
                                "was deleted (the next run deletes what was stored)")

    def withheld(self) -> builtins.list[Withheld]:
        taken, self._withheld = self._withheld, []
        return taken

    def delete(self, refs: builtins.list[MessageRef]) -> None:
        if self.dry_run:
            return
        self._in_step()
        with self._translate("deleting on"):
            commands = [f"DELE {handle(ref, int)}" for ref in refs]
            try:
                if self._pipelining:  # a round trip per group, not per message
                    poplib_adapter.pipelined(self.conn, commands)
                else:
                    for command in commands:
                        poplib_adapter.command(self.conn, command)
            except poplib.error_proto as exc:  # a refusal: its answer, and those of its group,
                if isinstance(exc, poplib_adapter.LineTooLong):  # were read; not so a line
                    self._out_of_step = True  # too long, a timeout, a lost connection
                raise
            except BaseException:
                self._out_of_step = True
                raise

    def aside_location(self) -> str:
        return "left on the POP3 server (later runs skip it)"

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """Nothing to do on the server: the ingest side remembers the UIDL."""

    def close(self) -> None:
        crashpoint("after_pop3_dele")
        self._in_step()
        with self._translate("closing the session on"):
            self.conn.quit()  # makes the DELEs final

    def abort(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # no QUIT: the server keeps every message

    def _translate(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return network_errors(self.account, doing, self.timeout, protocol=(poplib.error_proto,),
                              text=error_text, cutoff=self.cutoff)



def _longest_line(ref: MessageRef) -> int:
    """The longest line RETR may send for *ref*: any line of a message up to MAX_LINE, and a
    line as long as the whole message (with the dot-stuffing and line end RETR may add, and
    the line ends LIST may have counted as one octet)."""
    return max(poplib_adapter.MAX_LINE, ref.size + 8)


def as_listed(raw: bytes, listed: int) -> bool:
    """Whether *raw* (from RETR, CRLF line ends) is the message LIST announced as *listed*
    octets. RFC 1939 asks for the exact size, and servers count it their own way: exactly as
    sent; without the CRLF that RETR adds to end a last line that had none (Dovecot); with each
    line end as one octet, as stored (a server that stores LF); or both. A notice sent in a
    message's place, of any other size, is not taken for it."""
    size, ends = len(raw), raw.count(b"\r\n")
    return listed in (size, size - 2, size - ends, size - ends - 1)


def _pairs(lines: builtins.list[bytes]) -> Iterator[tuple[str, str]]:
    for line in lines:
        num, _, value = line.decode("ascii", "replace").partition(" ")
        yield num, value.strip()


# What a response code of a refused login (RFC 2449, RFC 3206) means for the administrator:
# none of them is a wrong password.
_NOT_THE_PASSWORD = {
    "LOGIN-DELAY": "the server lets this user log in only so often (RFC 2449 LOGIN-DELAY): "
                   "fetch this account less often, or lower the server's limit (Cyrus: "
                   "popminpoll in imapd.conf)",
    "IN-USE": "another POP3 session holds the mailbox (a mail program, or a run elsewhere that "
              "has not ended); the next run tries again",
    "SYS/TEMP": "a passing problem of the server's (RFC 3206 SYS/TEMP), not the password; the "
                "next run tries again",
    "SYS/PERM": "a problem of the server's (RFC 3206 SYS/PERM), not the password: its "
                "administrator must fix it",
}


def login_refused(account: str, username: str | None, exc: poplib.error_proto) -> MailboxError:
    """The error for a USER/PASS that the server answered -ERR: a wrong password unless a
    response code says the refusal has another cause."""
    text = error_text(exc).rstrip(".")
    code = re.match(r"-ERR \[([A-Z/-]+)\]", text)
    advice = _NOT_THE_PASSWORD.get(code.group(1)) if code else None
    if advice is not None:
        return MailboxError(account, f"login as {username!r} refused: {text}; {advice}")
    return AuthError(account, f"login as {username!r} refused: {text}; check the username and "
                     "the password source")


def _unbase64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return data

