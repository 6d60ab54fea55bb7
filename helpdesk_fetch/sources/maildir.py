"""A local Maildir (new/ and cur/), for servers that deliver locally and for the demo.

Messages that cannot be ingested move into the Maildir++ folder named like the IMAP error folder
(``<Maildir>/.HD Error Messages``), which an IMAP server on the same Maildir shows as that folder.

Whoever can deliver into the Maildir can put a symbolic link there, to a file only this user may
read (issue 20.7): a link is never followed. It is listed as unreadable and moved (the link itself)
into the error folder; a file that became a link (or anything but a regular file) after it was
listed is not opened (O_NOFOLLOW, O_NONBLOCK: a FIFO would block the run) and waits for the next
run.
"""

from __future__ import annotations

import builtins
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from helpdesk_fetch.errors import (
    ConfigError,
    ConnectError,
    MailboxError,
    SetAsideRefused,
    account_named,
)
from helpdesk_fetch.sources.base import HEADER_BYTES, Mailbox, MessageRef, handle

log = logging.getLogger(__name__)
SUBDIRS = ("new", "cur", "tmp")


class MaildirMailbox(Mailbox):
    root: Path

    def open(self) -> None:
        self.root = Path(self.given(self.account.path, "path")).expanduser()
        if not os.path.lexists(self.root):  # the key is wrong, or the Maildir was never made
            raise ConfigError(f"the Maildir {self.root} does not exist; correct the path, or "
                              f"create it: mkdir -p {self.root}/cur {self.root}/new "
                              f"{self.root}/tmp", account=self.account.name, key="path")
        missing = [d for d in SUBDIRS if not (self.root / d).is_dir()]
        if missing:
            raise ConnectError(self.account.name, f"{self.root} is not a Maildir (no "
                               f"{', '.join(missing)} directory)")
        self._touched: set[Path] = set()
        self._links: dict[str, str] = {}  # key -> why it is not read

    def list(self) -> list[MessageRef]:
        found = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(self.root / sub))
            except OSError as exc:
                raise ConnectError(self.account.name, f"cannot read {self.root / sub}: "
                                   f"{exc.strerror}") from None
            for entry in entries:
                ref = self._ref(entry)
                if ref is not None:
                    found.append((ref.key, ref))
        # Maildir names start with the delivery time: their order is the arrival order.
        return [ref for _, ref in sorted(found, key=lambda item: item[0])]

    def _ref(self, entry: os.DirEntry[str]) -> MessageRef | None:
        """The message a directory entry holds; None for what is no message (a directory)."""
        link = entry.is_symlink()
        if entry.name.startswith(".") or not (link or entry.is_file(follow_symlinks=False)):
            return None
        key = f"maildir:{entry.name.split(':', 1)[0]}"
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:  # moved (new/ to cur/) or taken meanwhile
            return None
        if link:
            try:
                target = f" (to {os.readlink(entry.path)})"
            except OSError:
                target = ""
            self._links[key] = f"a symbolic link{target}, not a message: never read"
        return MessageRef(key, size, Path(entry.path))

    def headers(self, ref: MessageRef) -> bytes | None:
        if ref.key in self._links:
            return None
        try:
            return _read_regular_file(handle(ref, Path), HEADER_BYTES)
        except OSError:  # gone meanwhile, or not readable: its record says what it knows
            return None

    def unreadable(self, ref: MessageRef) -> str | None:
        return self._links.get(ref.key)

    def fetch(self, refs: builtins.list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            if ref.key in self._links:
                continue
            try:
                raw = _read_regular_file(handle(ref, Path))
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
            except OSError as exc:  # e.g. delivered by another user, mode 0600: the rest go on
                log.error("%s: cannot read %s: %s; it stays where it is",
                          account_named(self.account.name), ref.handle, exc.strerror or exc)
                continue
            yield ref, raw

    def delete(self, refs: builtins.list[MessageRef]) -> None:
        if self.dry_run:
            return
        for ref in refs:
            path = handle(ref, Path)
            try:
                path.unlink()  # a link's, not its target's
            except FileNotFoundError:
                pass
            except OSError as exc:  # stored already: the next run only deletes it
                raise self._error(f"cannot delete {path}", exc) from None
            self._touched.add(path.parent)

    def aside_location(self) -> str:
        return f"moved to the Maildir folder {self._error_dir()}"

    def aside_folder_name(self) -> str:
        return str(self._error_dir())

    def _error_dir(self) -> Path:
        return self.root / f".{self.error_folder}"

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """A rename: atomic, so a crash never leaves two copies, whatever *again* says."""
        target, path = self._error_dir(), handle(ref, Path)
        if self.dry_run:
            return
        try:
            for sub in SUBDIRS:
                (target / sub).mkdir(parents=True, exist_ok=True)
            os.rename(path, target / "cur" / path.name)
        except FileNotFoundError:  # taken meanwhile
            return
        except OSError as exc:
            raise SetAsideRefused(self.account.name, f"cannot move {path} into {target}: "
                                  f"{exc.strerror or exc}") from None
        self._touched.update({path.parent, target / "cur"})

    def flush(self) -> None:
        """fsync the directories we changed, so a crash cannot bring a message back twice."""
        for directory in self._touched:
            try:
                fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise self._error(f"cannot sync {directory}", exc) from None
        self._touched.clear()

    def _error(self, what: str, exc: OSError) -> MailboxError:
        return MailboxError(self.account.name, f"{what}: {exc.strerror or exc}")

    def close(self) -> None:
        self.flush()

    def abort(self) -> None:
        self._touched.clear()

    def description(self) -> str:
        return f"maildir {self.root}"


def _read_regular_file(path: Path, limit: int = -1) -> bytes:
    """The bytes of the regular file at *path* (the first *limit*), never through a symbolic
    link; OSError (ELOOP) for a link, and for anything else that is no regular file (without
    blocking on a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        return handle.read(limit)
