"""IMAP with imapclient: verified TLS or STARTTLS, BODY.PEEK[] by UID in batches, UID EXPUNGE."""

from __future__ import annotations

import builtins
import contextlib
import imaplib
import logging
from collections.abc import Iterator
from typing import Any

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from helpdesk_fetch.errors import (
    AuthError,
    ConnectError,
    FolderMissing,
    SetAsideRefused,
    account_named,
    without_timings,
)
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.sources import imapclient_adapter
from helpdesk_fetch.sources.base import HEADER_BYTES, Mailbox, MessageRef, handle
from helpdesk_fetch.sources.imapserver import ServerTraits
from helpdesk_fetch.sources.net import network_errors
from helpdesk_fetch.sources.sasl import XOAuth2
from helpdesk_fetch.tls import tls_context

SIZE_BATCH = 1000  # UIDs per command (RFC822.SIZE, STORE, UID EXPUNGE)
FOLDERS_SHOWN = 10  # of the server's folders, when the account's folder is not one of them
log = logging.getLogger(__name__)


class ImapMailbox(Mailbox):
    """An IMAP folder. What differs between servers is decided once, after login, from what the
    server announces there (``traits``, sources/imapserver.py); folder names are full names
    from then on (``folder``, ``aside_folder``)."""

    _client: IMAPClient | None = None
    uidvalidity: int = 0
    traits = ServerTraits()
    folder = ""  # the account's folder, full name (after open)
    aside_folder = ""  # error_folder, full name (after open)

    @property
    def client(self) -> IMAPClient:
        """The session, from open() on."""
        if self._client is None:
            raise RuntimeError("the IMAP mailbox is not open")
        return self._client

    def open(self) -> None:
        a = self.account
        context = tls_context(a.name, a.ca_file)
        with self._translate("connecting to"):
            self._client = imapclient_adapter.connect(
                self.cutoff, self.given(a.host, "host"), self.given(a.port, "port"),
                timeout=self.timeout, context=context, tls=a.security == "ssl")
            if a.security == "starttls":
                if not self.client.has_capability("STARTTLS"):
                    raise ConnectError(a.name, f"{a.host}:{a.port} does not offer STARTTLS; "
                                       "refusing to log in without TLS")
                self.client.starttls(context)
            self._login()
            self.traits = ServerTraits.after_login(self.client)
            self.folder = self.traits.full_name(a.folder)
            self.aside_folder = self.traits.full_name(self.error_folder)
            info = self._select()
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.announced = int(info[b"EXISTS"]) if b"EXISTS" in info else None
        self._pending: list[int] = []
        self._error_folder_ready = False

    def _select(self) -> dict[bytes, Any]:
        """SELECT the account's folder; one the server does not have is a configuration error
        (exit 2) that names the folders it has: every run would fail the same way."""
        try:
            info: dict[bytes, Any] = self.client.select_folder(self.folder, readonly=self.dry_run)
            return info
        except IMAPClientError as exc:
            if isinstance(exc, imaplib.IMAP4.abort) or self.client.folder_exists(self.folder):
                raise
        names = sorted((name for flags, _, name in self.client.list_folders()
                        if b"\\Noselect" not in flags and b"\\NonExistent" not in flags),
                       key=lambda name: (name.upper() != "INBOX", name.lower()))
        shown = ", ".join(repr(n) for n in names[:FOLDERS_SHOWN])
        more = f" and {len(names) - FOLDERS_SHOWN} more" if len(names) > FOLDERS_SHOWN else ""
        full = f" ({self.folder!r} on this server)" if self.folder != self.account.folder else ""
        raise FolderMissing(f"the server has no folder {self.account.folder!r}{full}; its "
                            f"folders: {shown or 'none'}{more}", account=self.account.name,
                            key="folder")

    def _login(self) -> None:
        a = self.account
        if a.auth == "oauth2":
            return self._xoauth2()
        username = self.given(a.username, "username")
        password = self.given(self.password, "password_env")
        ascii_only = (username + password).isascii()
        if not ascii_only and not self.client.has_capability("AUTH=PLAIN"):
            raise AuthError(a.name, "the username or password has characters outside ASCII, "
                            "which IMAP LOGIN cannot carry, and the server offers no AUTH=PLAIN")
        try:
            if ascii_only:
                self.client.login(username, password)
            else:
                self.client.plain_login(username, password)  # UTF-8
        except LoginError as exc:
            said = _server_text(exc).rstrip(".")  # Dovecot: "Authentication failed."
            raise AuthError(a.name, f"login as {a.username!r} refused: {said}; check the "
                            "username and the password source") from None

    def _xoauth2(self) -> None:
        a = self.account
        if not self.client.has_capability("AUTH=XOAUTH2"):
            raise AuthError(a.name, f"{a.host}:{a.port} does not offer AUTH=XOAUTH2; it cannot "
                            "log in with OAuth2")
        mechanism = XOAuth2(self.given(a.username, "username"),
                            self.given(self.password, "oauth2_token_file"))
        try:
            self.client.sasl_login("XOAUTH2", mechanism)
        except LoginError as exc:
            detail = f" ({mechanism.error})" if mechanism.error else ""
            raise AuthError(a.name, f"the server refused the OAuth2 access token for "
                            f"{a.username!r}{detail}: {_server_text(exc)}; the saved token is "
                            "dropped, the next attempt gets a new one") from None

    def list(self) -> list[MessageRef]:
        with self._translate("listing"):
            sizes = self._sizes()
        return [MessageRef(f"imap:{self.uidvalidity}:{uid}", size, uid)
                for uid, size in sizes.items()]

    def _sizes(self) -> dict[int, int]:
        """UID -> RFC822.SIZE of every message in the selected folder, in UID order. (Sizes are
        always fetched, never searched: Courier's SEARCH LARGER/SMALLER counts the size it
        stores, with LF line ends, not RFC822.SIZE; imapserver.py.)"""
        uids = sorted(self.client.search("ALL"))
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), SIZE_BATCH):
            chunk = uids[start:start + SIZE_BATCH]
            found = self.client.fetch(chunk, ["RFC822.SIZE"])
            # An unsolicited FETCH (another client's flags) may stand under a number of ours
            # without a size: such a message was expunged meanwhile.
            sizes.update((uid, int(size)) for uid in chunk
                         if (size := found.get(uid, {}).get(b"RFC822.SIZE")) is not None)
        return sizes

    def fetch(self, refs: builtins.list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        with self._translate("fetching from"):
            data = self.client.fetch([r.handle for r in refs], ["BODY.PEEK[]", "RFC822.SIZE"])
        for ref in refs:
            item = data.pop(ref.handle, {})
            body = item.get(b"BODY[]")
            if body is None:  # expunged by someone else meanwhile
                continue
            if int(item.get(b"RFC822.SIZE", ref.size)) != ref.size:
                # A server that answered without the UID: imapclient files the answer under
                # its sequence number, which may be the UID of another message of ours.
                log.error("%s: the server's answer for %s is another message's; it "
                          "stays on the server", account_named(self.account.name), ref.key)
                continue
            yield ref, body

    def headers(self, ref: MessageRef) -> bytes | None:
        with self._translate("reading a message's header on"):
            try:
                return self._headers_of([handle(ref, int)]).get(handle(ref, int))
            except IMAPClientError as exc:
                if isinstance(exc, imaplib.IMAP4.abort):  # the connection broke
                    raise
                log.debug("no header of %s: %s", ref.key, _server_text(exc))
                return None

    def _headers_of(self, uids: builtins.list[int]) -> dict[int, bytes]:
        """The start of the header of each of *uids*, HEADER_BYTES at most: a partial fetch,
        the server sends no more than that, whatever the header."""
        found = self.client.fetch(uids, [f"BODY.PEEK[HEADER]<0.{HEADER_BYTES}>"]) if uids else {}
        return {uid: value for uid, item in found.items() for key, value in item.items()
                if key.startswith(b"BODY[HEADER]") and isinstance(value, bytes)}

    def delete(self, refs: builtins.list[MessageRef]) -> None:
        self._pending.extend(handle(r, int) for r in refs)

    def flush(self) -> None:
        if not self._pending or self.dry_run:
            self._pending = []
            return
        with self._translate("deleting on"):
            self._expunge(self._pending)
        self._pending = []

    def _expunge(self, uids: builtins.list[int]) -> None:
        """Flag and expunge *uids*, in commands of bounded length (a backlog of 15,000 stored
        messages in one UID list is too long a command for Dovecot)."""
        for start in range(0, len(uids), SIZE_BATCH):
            self.client.add_flags(uids[start:start + SIZE_BATCH], [DELETED], silent=True)
        crashpoint("after_flag_deleted")
        if self.traits.uidplus:
            for start in range(0, len(uids), SIZE_BATCH):
                self.client.uid_expunge(uids[start:start + SIZE_BATCH])
        else:  # without UIDPLUS this also removes messages others flagged \Deleted
            self.client.expunge()

    def aside_location(self) -> str:
        return f"moved to the IMAP folder {self.aside_folder_name()!r}"

    def aside_folder_name(self) -> str:
        return self.aside_folder or self.error_folder

    def namespace(self) -> dict[str, str] | None:
        names = self.traits.namespaces
        return None if names is None else {"prefix": names.prefix,
                                            "separator": names.separator}

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        folder = self.aside_folder
        if self.dry_run:
            return
        with self._translate("moving a message on"):
            try:
                self._ensure_error_folder()
                if self.traits.move:  # atomic: moved or not
                    self.client.move([ref.handle], folder)
                    return
                if not (again and self._in_error_folder(ref)):
                    self.client.copy([ref.handle], folder)
            except IMAPClientError as exc:
                if isinstance(exc, imaplib.IMAP4.abort):  # the connection broke
                    raise
                raise SetAsideRefused(self.account.name, f"the server refused to move a message "
                                      f"into {folder!r}: {_server_text(exc)}") from None
            crashpoint("after_copy")
            self._expunge([handle(ref, int)])

    def _in_error_folder(self, ref: MessageRef) -> bool:
        """Whether a run that died between COPY and EXPUNGE left a copy of *ref* in the error
        folder already: a message there of the same size and header. Only asked after such a
        crash, so the folder switch costs nothing in normal runs."""
        header = self._headers_of([handle(ref, int)]).get(handle(ref, int))
        self.client.select_folder(self.aside_folder, readonly=True)
        try:
            same_size = [uid for uid, size in self._sizes().items() if size == ref.size]
            found = self._headers_of(same_size)
        finally:
            self.client.select_folder(self.folder)
        return header is not None and header in found.values()

    def _ensure_error_folder(self) -> None:
        if self._error_folder_ready:
            return
        # Servers word "it exists already" each their own way (imapserver.py): ask, never read.
        if not self.client.folder_exists(self.aside_folder):
            try:
                self.client.create_folder(self.aside_folder)
            except IMAPClientError:
                if not self.client.folder_exists(self.aside_folder):  # not a race: a real error
                    raise
            # Subscribed, so that a mail program showing subscribed folders only (Thunderbird's
            # default on Courier and Cyrus) shows it where the README sends the administrator.
            with contextlib.suppress(IMAPClientError):  # a server may not keep subscriptions
                self.client.subscribe_folder(self.aside_folder)
        self._error_folder_ready = True

    def close(self) -> None:
        try:
            self.flush()
        finally:
            with contextlib.suppress(Exception):
                self.client.logout()

    def abort(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.shutdown()

    def _translate(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return network_errors(self.account, doing, self.timeout, lost=(imaplib.IMAP4.abort,),
                              protocol=(IMAPClientError, imaplib.IMAP4.error), text=_server_text,
                              cutoff=self.cutoff)


def _server_text(exc: Exception) -> str:
    """What the server said, as text, without the timings Dovecot adds."""
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return without_timings(text)
