"""Files that steer helpdesk-fetch must be the administrator's (spec §2), as fetchmail demands of
its rc file and OpenSSH of authorized_keys.

Whoever can change the accounts file can make the tool run a command of theirs (a
``password_command``) as the user it runs as; whoever can change a template decides what the
helpdesk mails to customers; whoever can change a password file or a token store decides where
the tool logs in. So such a file, and a directory holding such files, is refused when group or
others can write it or another user owns it (root excepted: root can change anything anyway),
whether or not it holds a secret. A file that holds a secret must also be unreadable to group and
others, and be the running user's own.

The directories on the way count too: whoever can write a directory can rename the file in it
and put their own in its place, whatever the file's mode. Each directory from the file up to
``/`` (those of the path as given, and those of the path its symbolic links lead to) must be owned
by the running user or root, and not writable by group or others, unless it is sticky
(``/tmp``, mode 1777): there no one can rename or remove another user's file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpdesk_fetch.errors import ConfigError, ConfigUnreadable
from helpdesk_fetch.users import user_or_uid


def _named(uid: int) -> str:
    """A uid with its user's name, when it has one: "999 (helpdesk)"."""
    name = user_or_uid(uid)
    return f"{uid} ({name})" if name != str(uid) else str(uid)


def check_private(path: Path, *, holds_secret: bool = True) -> None:
    """Refuse *path* (a file or a directory) when someone else could change it or anything
    on the way to it, or, when it *holds_secret*, read it."""
    info = _stat(path)
    uid = os.geteuid()
    mode = stat.S_IMODE(info.st_mode)
    if holds_secret and info.st_uid != uid:  # someone else's: this user's set-up is wrong
        owner, me = user_or_uid(info.st_uid), user_or_uid(uid)
        # root's: made by root for the service user (who runs it); another user's: theirs
        run_as = "" if info.st_uid == 0 else (
            f"run helpdesk-fetch as {owner} (who runs it from cron, e.g. `runuser -u {owner} "
            "-- helpdesk-fetch ...`), or ")
        raise ConfigUnreadable(
            f"holds a secret but belongs to uid {_named(info.st_uid)}, not to the user running "
            f"this (uid {_named(uid)}); {run_as}fix: "
            f"chown {me} {path} && chmod 600 {path}", path=path)
    if holds_secret and mode & 0o077:
        raise ConfigError(f"holds a secret but can be {_exposed(mode)} (mode {mode:o}); "
                          f"fix: chmod 600 {path}", path=path)
    if info.st_uid not in (uid, 0):
        raise ConfigUnreadable(
            f"belongs to uid {_named(info.st_uid)}, not to the user running this (uid "
            f"{_named(uid)}) or root, "
            "who could make helpdesk-fetch run their commands; "
            f"fix: chown {user_or_uid(uid)} {path}",
            path=path)
    if mode & 0o022:
        raise ConfigError(f"can be written by group or others (mode {mode:o}), who could make "
                          f"helpdesk-fetch run their commands; fix: chmod go-w {path}", path=path)
    for directory in _directories(path):
        _check_directory(directory, path, uid)


def _exposed(mode: int) -> str:
    """What the group and the others may do with a file of *mode*: "read by its group and
    others", "read and written by its group, and read by others"."""
    can = {who: _listed([what for what, bit in (("read", 4), ("written", 2), ("run", 1))
                         if mode >> shift & bit])
           for who, shift in (("its group", 3), ("others", 0))}
    if can["its group"] and can["its group"] == can["others"]:
        return f"{can['others']} by its group and others"
    return ", and ".join(f"{what} by {who}" for who, what in can.items() if what)


def _listed(words: list[str]) -> str:
    return " and ".join(filter(None, [", ".join(words[:-1]), *words[-1:]]))


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as exc:
        raise ConfigUnreadable(f"cannot read: {exc.strerror}", path=path) from None


def _directories(path: Path) -> list[Path]:
    """The directories on the way to *path*: of the path as given, and of where it leads."""
    given = Path(os.path.abspath(path)).parents
    real = Path(os.path.realpath(path)).parents
    return list(dict.fromkeys([*given, *real]))


def _check_directory(directory: Path, path: Path, uid: int) -> None:
    info = _stat(directory)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (uid, 0):
        raise ConfigUnreadable(
            f"is in the directory {directory}, which belongs to uid {info.st_uid}, who could "
            f"put another file in its place; fix: chown {user_or_uid(uid)} {directory}, or move it",
            path=path)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise ConfigError(
            f"is in the directory {directory}, which group or others can write (mode {mode:o}) "
            f"and so put another file in its place; fix: chmod go-w {directory}", path=path)
