"""A local Maildir (new/ and cur/), for servers that deliver locally and for the demo.

Messages that cannot be ingested move into the Maildir++ folder named like the IMAP error folder
(``<Maildir>/.HD Error Messages``), which an IMAP server on the same Maildir shows as that folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from helpdesk_fetch.errors import ConnectError
from helpdesk_fetch.mailbox.base import Mailbox, MessageRef

SUBDIRS = ("new", "cur", "tmp")


class MaildirMailbox(Mailbox):
    root: Path

    def open(self) -> None:
        self.root = Path(self.account.path).expanduser()
        missing = [d for d in SUBDIRS if not (self.root / d).is_dir()]
        if missing:
            raise ConnectError(self.account.name, f"{self.root} is not a Maildir (no "
                               f"{', '.join(missing)} directory)")
        self._touched: set[Path] = set()

    def list(self) -> list[MessageRef]:
        found = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(self.root / sub))
            except OSError as exc:
                raise ConnectError(self.account.name, f"cannot read {self.root / sub}: "
                                   f"{exc.strerror}") from None
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                unique = entry.name.split(":", 1)[0]
                found.append((unique, MessageRef(f"maildir:{unique}", entry.stat().st_size,
                                                 Path(entry.path))))
        # Maildir names start with the delivery time: their order is the arrival order.
        return [ref for _, ref in sorted(found, key=lambda item: item[0])]

    def fetch(self, refs: list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            try:
                yield ref, ref.handle.read_bytes()
            except FileNotFoundError:  # taken by another reader meanwhile
                continue

    def delete(self, refs: list[MessageRef]) -> None:
        if self.dry_run:
            return
        for ref in refs:
            try:
                ref.handle.unlink()
            except FileNotFoundError:
                pass
            self._touched.add(ref.handle.parent)

    def aside_location(self) -> str:
        return f"moved to the Maildir folder {self._error_dir()}"

    def _error_dir(self) -> Path:
        return self.root / f".{self.error_folder}"

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """A rename: atomic, so a crash never leaves two copies, whatever *again* says."""
        target = self._error_dir()
        if self.dry_run:
            return
        for sub in SUBDIRS:
            (target / sub).mkdir(parents=True, exist_ok=True)
        os.rename(ref.handle, target / "cur" / ref.handle.name)
        self._touched.update({ref.handle.parent, target / "cur"})

    def flush(self) -> None:
        """fsync the directories we changed, so a crash cannot bring a message back twice."""
        for directory in self._touched:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._touched.clear()

    def close(self) -> None:
        self.flush()

    def abort(self) -> None:
        self._touched.clear()

    def description(self) -> str:
        return f"maildir {self.root}"
