"""Whether this user may use a SQLite database file, and if not, the one line that says why.

SQLite itself only says "unable to open database file" or, in the middle of a run, "attempt to
write a readonly database": typically a helpdesk.db that a first run as root created, later run
by a service user. Writing needs the file and its ``-wal`` and ``-shm`` companions writable, and
the directory too (SQLite creates the companions beside the file, and so does the lock file of
``db._opening``); reading needs the file readable and the directory searchable. The line names
the file or directory, its owner and mode, the user running this, and the ``chown`` or
``chmod`` that fixes it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from helpdesk_fetch.users import user_name

COMPANIONS = ("-wal", "-shm")  # beside the database, made by SQLite (db.py's lock file is read)


def trouble(path: Path, *, write: bool) -> str | None:
    """Why this user cannot open the SQLite database *path* (for writing when *write*), or None
    when nothing in the file modes stands in the way. The line describes the first obstacle;
    its fix removes them all (a root-owned directory usually holds a root-owned file)."""
    found = [*_directory(path, write=write), *_files(path, write=write)]
    if not found:
        return None
    target, kind, doing = found[0]
    info = target.stat()
    me = _user(os.geteuid())
    return (f"the database {kind} {target} belongs to {_user(info.st_uid)} (mode "
            f"{stat.S_IMODE(info.st_mode):o}), and {me}, who runs helpdesk-fetch, cannot "
            f"{doing}; fix: {_fix(found, path, me)}")


Obstacle = tuple[Path, str, str]  # (what, "file" or "directory", what it stops)


def _directory(path: Path, *, write: bool) -> list[Obstacle]:
    directory = _existing(path.parent)
    if directory != path.parent:  # to be made, by a writing command
        need, doing = os.W_OK | os.X_OK, f"create {path.parent} in it"
    elif not _allowed(directory, os.X_OK):  # nothing in it can be reached
        need, doing = os.X_OK, "enter it"
    elif write:
        need = os.W_OK | os.X_OK
        doing = ("create the database's -wal and -shm files in it" if os.path.lexists(path)
                 else "create the database in it")
    else:
        need, doing = os.X_OK, "enter it"
    return [] if _allowed(directory, need) else [(directory, "directory", doing)]


def _files(path: Path, *, write: bool) -> list[Obstacle]:
    files = [path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)] if write else [path]
    need = os.R_OK | (os.W_OK if write else 0)
    return [(name, "file", "write it" if write else "read it") for name in files
            if os.path.lexists(name) and not _allowed(name, need)]


def _allowed(path: Path, need: int) -> bool:
    """Whether this user may use *path* so, as far as owners and modes go. What else refuses
    it (a read-only mount, chattr +i) is not answered by chown or chmod: SQLite's error and
    db's file-system hint speak for it."""
    if os.access(path, need):
        return True
    info = path.stat()
    if info.st_uid == os.geteuid():
        bits = info.st_mode >> 6
    elif info.st_gid in (os.getegid(), *os.getgroups()):
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return all(bits & flag for flag in (4, 2, 1) if need & flag)  # R_OK 4, W_OK 2, X_OK 1


def _fix(found: list[Obstacle], path: Path, me: str) -> str:
    """What removes every obstacle: one command line (``_taking``). What a user other than
    root owns is most likely that user's database (the service user's, met by someone else):
    running as its owner comes first, taking it (which locks the owner out) second."""
    mine = os.geteuid()
    owners = [owner for target, kind, _ in found
              if (owner := target.stat().st_uid) not in (mine, 0)
              and not (kind == "directory" and target != path.parent)]  # not one to be made
    owners.sort(key=lambda owner: owner != _owner(path))  # the database file's first
    taking = _taking(found, path, me)
    if owners:
        theirs = _user(owners[0])
        return (f"run helpdesk-fetch as {theirs}, whose database it is (e.g. `runuser -u "
                f"{theirs} -- helpdesk-fetch ...`), or, if it is to be {me}'s: {taking}")
    return taking


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _taking(found: list[Obstacle], path: Path, me: str) -> str:
    """The command line that makes every obstacle this user's (see _fix)."""
    mine = os.geteuid()
    made: list[str] = []
    chown: list[str] = []
    chmod: list[str] = []
    for target, kind, _ in found:
        if kind == "directory" and target != path.parent:  # to be made: never give away a
            made.append(f"install -d -o {me} {path.parent}")  # parent such as /var/lib
        elif target.stat().st_uid != mine:
            chown.append(str(target) if kind == "directory" else f"{path}*")
        else:
            chmod.append(f"chmod u+{'rwx' if kind == 'directory' else 'rw'} {target}")
    owned = [f"chown {me} {' '.join(dict.fromkeys(chown))}"] if chown else []
    return " && ".join([*made, *owned, *chmod])


def _existing(directory: Path) -> Path:
    """*directory*, or the nearest of its parents that exists (where it would be created)."""
    while not os.path.lexists(directory) and directory.parent != directory:
        directory = directory.parent
    return directory


def _user(uid: int) -> str:
    return user_name(uid) or f"uid {uid}"
