"""POP3 with poplib: verified TLS (poplib verifies nothing by default) or STLS, UIDL, DELE + QUIT.

POP3 makes deletions final only at QUIT; a session that breaks off keeps every message on the
server, which is what store-first-delete-second needs. A message that cannot be ingested stays on
the server; the ingest side remembers its UIDL and skips it.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import collections
import contextlib
import logging
import poplib
import ssl
from collections.abc import Iterator

from helpdesk_fetch.errors import AuthError, ConnectError, ProtocolError
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.sources import poplib_adapter
from helpdesk_fetch.sources.base import Mailbox, MessageRef, handle
from helpdesk_fetch.sources.net import network_errors
from helpdesk_fetch.sources.poplib_adapter import error_text
from helpdesk_fetch.sources.sasl import describe_challenge, xoauth2_base64
from helpdesk_fetch.tls import tls_context

log = logging.getLogger(__name__)


class Pop3Mailbox(Mailbox):
    _conn: poplib_adapter.Session | None = None

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
            self.conn.user(self.given(self.account.username, "username"))
            self.conn.pass_(self.given(self.password, "password_env"))
        except poplib.error_proto as exc:
            raise AuthError(self.account.name, f"login as {self.account.username!r} refused: "
                            f"{error_text(exc)}; check the username and the password "
                            "source") from None

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
            log.error("account %s: the server gives %d messages the same UIDL and size (%s); "
                      "they stay on the server", self.account.name, keys[key], key)
        return [ref for ref in refs if keys[ref.key] == 1]

    def fetch(self, refs: builtins.list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            with self._translate("fetching from"):
                try:
                    raw = poplib_adapter.retr(self.conn, handle(ref, int))
                except poplib.error_proto as exc:  # this one message; the session goes on
                    log.error("account %s: the server would not hand over message %s (%s); "
                              "it stays on the server", self.account.name, ref.key,
                              error_text(exc))
                    continue
            yield ref, raw

    def delete(self, refs: builtins.list[MessageRef]) -> None:
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
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()  # no QUIT: the server keeps every message

    def _translate(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return network_errors(self.account, doing, self.timeout, protocol=(poplib.error_proto,),
                              text=error_text, cutoff=self.cutoff)



def _pairs(lines: builtins.list[bytes]) -> Iterator[tuple[str, str]]:
    for line in lines:
        num, _, value = line.decode("ascii", "replace").partition(" ")
        yield num, value.strip()


def _unbase64(data: bytes) -> bytes:
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError):
        return data

