"""Writing the accounts file without disturbing the administrator's comments and layout.

Edits are made to the text, one ``[[accounts]]`` block at a time, and then proven: the edited text
is parsed again and must equal the old data with exactly the intended change, and must validate.
Only then is it written, atomically (temporary file, fsync, rename), with mode 0600 and the
file's owner kept.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import re
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from helpdesk_fetch import config as cfg
from helpdesk_fetch.errors import ConfigError
from helpdesk_fetch.state import private_directory

_HEADER = re.compile(r"^\s*\[")
_ACCOUNTS_HEADER = re.compile(r"^\s*\[\[\s*accounts\s*\]\]\s*(#.*)?$")
_COMMENT = re.compile(r"^\s*#")


def add_account(path: Path, values: dict[str, object], *,
                check: Callable[[cfg.Config], object] | None = None) -> None:
    """Append a ``[[accounts]]`` block for *values* (TOML keys -> values, None left out).

    *check*, if given, is called with the file's new contents (a Config) before it is written;
    whatever it raises stops the edit, and the file stays as it was."""
    values = {k: v for k, v in values.items() if v is not None}
    text = _read(path) if path.exists() else ""
    block = "[[accounts]]\n" + tomli_w.dumps(values)  # flat keys: never an inline table
    if not text or text.endswith("\n\n"):
        separator = ""
    else:
        separator = "\n" if text.endswith("\n") else "\n\n"
    new_text = text + separator + block
    old = tomllib.loads(text) if text else {}
    expected = copy.deepcopy(old)
    expected.setdefault("accounts", []).append(values)
    _write_checked(path, new_text, expected, check=check)


def remove_account(path: Path, name: str) -> None:
    """Remove the ``[[accounts]]`` block of *name*, with the comment lines just above it."""
    text = _read(path)
    lines = text.splitlines(keepends=True)
    start, end = _block(lines, name, path)
    while start > 0 and _COMMENT.match(lines[start - 1]):
        start -= 1
    end = _keep_leading_comments_of_next(lines, start, end)
    new_text = "".join(lines[:start] + lines[end:])
    if end == len(lines) and new_text.endswith("\n\n"):  # the blank line add_account wrote
        new_text = new_text[:-1]
    expected = tomllib.loads(text)
    expected["accounts"] = [a for a in expected["accounts"] if a.get("name") != name]
    if not expected["accounts"]:
        del expected["accounts"]
    _write_checked(path, new_text, expected)


def set_account_key(path: Path, name: str, key: str, value: object) -> None:
    """Set *key* of account *name* to *value*, in place when the key is already written."""
    text = _read(path)
    lines = text.splitlines(keepends=True)
    start, end = _block(lines, name, path)
    rendered = tomli_w.dumps({key: value}).strip()
    pattern = re.compile(rf"^(\s*){re.escape(key)}\s*=\s*[^#\n]*?(\s*#.*)?$")
    for index in range(start + 1, end):
        found = pattern.match(lines[index].rstrip("\n"))
        if found:
            lines[index] = f"{found.group(1)}{rendered}{found.group(2) or ''}\n"
            break
    else:
        lines.insert(_after_name_line(lines, start, end), rendered + "\n")
    expected = tomllib.loads(text)
    for account in expected["accounts"]:
        if account.get("name") == name:
            account[key] = value
    _write_checked(path, "".join(lines), expected)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=path) from None


def _block(lines: list[str], name: str, path: Path) -> tuple[int, int]:
    """Line range [start, end) of the ``[[accounts]]`` block whose name is *name*."""
    for start, line in enumerate(lines):
        if not _ACCOUNTS_HEADER.match(line):
            continue
        end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])),
                   len(lines))
        try:
            data = tomllib.loads("".join(lines[start + 1:end]))
        except tomllib.TOMLDecodeError:
            continue
        if data.get("name") == name:
            return start, end
    raise ConfigError("no [[accounts]] block with this name (accounts written in another "
                      "form must be edited by hand)", path=path, account=name)


def _keep_leading_comments_of_next(lines: list[str], start: int, end: int) -> int:
    """Move *end* back over the comment lines that introduce the next block."""
    while end > start + 1 and end < len(lines) and _COMMENT.match(lines[end - 1]):
        end -= 1
    return end


def _after_name_line(lines: list[str], start: int, end: int) -> int:
    for index in range(start + 1, end):
        if re.match(r"^\s*name\s*=", lines[index]):
            return index + 1
    return start + 1


def _write_checked(path: Path, text: str, expected: dict[str, Any], *,
                   check: Callable[[cfg.Config], object] | None = None) -> None:
    """Write *text* to *path* if it parses to *expected*, validates and passes *check*; else
    change nothing."""
    try:
        actual: dict[str, Any] | None = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        actual = None
    if actual is None or actual != expected:
        raise ConfigError("this edit cannot be made without disturbing the file's layout; "
                          "please edit it by hand", path=path)
    config = cfg.parse(actual, path)
    if check is not None:
        check(config)
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror}", path=path) from None


def write_atomically(path: Path, text: str) -> None:
    """Replace *path* by *text* in one step, mode 0600; a crash leaves the old or the new file.

    A symlink's target is replaced, not the link; the file keeps its owner (root editing the
    cron user's file must not lock the cron user out)."""
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():  # renaming over /dev/null would replace it
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    private_directory(path.parent)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            _keep_owner(handle.fileno(), path)
            os.fchmod(handle.fileno(), 0o600)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _keep_owner(fd: int, path: Path) -> None:
    """Give the open file *fd* the owner and group of *path* (when it exists), if permitted."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):  # only root may give a file away
            os.fchown(fd, st.st_uid, st.st_gid)
