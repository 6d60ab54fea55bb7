"""A local Maildir (new/ and cur/), for servers that deliver locally and for the demo.

Messages that cannot be ingested move into the Maildir++ folder named like the IMAP error folder
(``<Maildir>/.HD Error Messages``), which an IMAP server on the same Maildir shows as that folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from helpdesk_fetch.errors import ConnectError, MailboxError, SetAsideRefused
from helpdesk_fetch.sources.base import Mailbox, MessageRef

log = logging.getLogger(__name__)
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
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:  # moved (new/ to cur/) or taken meanwhile
                    continue
                found.append((unique, MessageRef(f"maildir:{unique}", size, Path(entry.path))))
        # Maildir names start with the delivery time: their order is the arrival order.
        return [ref for _, ref in sorted(found, key=lambda item: item[0])]

    def fetch(self, refs: list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for ref in refs:
            try:
                raw = ref.handle.read_bytes()
            except FileNotFoundError:  # taken by another reader meanwhile
                continue
            except OSError as exc:  # e.g. delivered by another user, mode 0600: the rest go on
                log.error("account %s: cannot read %s: %s; it stays where it is",
                          self.account.name, ref.handle, exc.strerror or exc)
                continue
            yield ref, raw

    def delete(self, refs: list[MessageRef]) -> None:
        if self.dry_run:
            return
        for ref in refs:
            try:
                ref.handle.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:  # stored already: the next run only deletes it
                raise self._error(f"cannot delete {ref.handle}", exc) from None
            self._touched.add(ref.handle.parent)

    def aside_location(self) -> str:
        return f"moved to the Maildir folder {self._error_dir()}"

    def aside_folder_name(self) -> str:
        return str(self._error_dir())

    def _error_dir(self) -> Path:
        return self.root / f".{self.error_folder}"

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """A rename: atomic, so a crash never leaves two copies, whatever *again* says."""
        target = self._error_dir()
        if self.dry_run:
            return
        try:
            for sub in SUBDIRS:
                (target / sub).mkdir(parents=True, exist_ok=True)
            os.rename(ref.handle, target / "cur" / ref.handle.name)
        except FileNotFoundError:  # taken meanwhile
            return
        except OSError as exc:
            raise SetAsideRefused(self.account.name, f"cannot move {ref.handle} into {target}: "
                                  f"{exc.strerror or exc}") from None
        self._touched.update({ref.handle.parent, target / "cur"})

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
