"""Machine-local state in ``state_dir``: the ingest switch, the per-account run locks, and the
notes ``deliver`` leaves for ``check`` while it fails.

The switch is a file on this machine, not a row in the database: it travels with a clone of the VM
and survives reboots, and disabling ingest on a clone never disables the production machine that
shares a PostgreSQL database with it. Locks are ``flock`` locks, which the kernel releases when
their process dies, so a crashed run never leaves a stale lock behind. With PostgreSQL the lock is
a session advisory lock instead, which covers every machine using the database (spec §8).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict

from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.errors import AccountBusy, ConfigError, HelpdeskError, account_named
from helpdesk_fetch.users import user_or_uid

if TYPE_CHECKING:
    from peewee import Database

SWITCH_FILE = "ingest-disabled"


class IngestSwitch(TypedDict):
    """Who switched ingest off, when and why (the switch file's JSON; all None when unknown)."""

    disabled_at: str | None
    by: str | None
    reason: str


class SwitchReport(TypedDict):
    """The switch as ``status`` and ``ingest status --json`` show it."""

    ingest_disabled: bool
    ingest_switch: IngestSwitch | None
    ingest_switch_error: str | None


def ingest_switch(state_dir: str | Path) -> IngestSwitch | None:
    """None when ingest is enabled; else who disabled it, when and why.

    A switch that cannot be read (state_dir a file, no permission) is a ConfigError, not "off":
    the caller reads no mailbox, and cron hears why instead of a silent run every minute."""
    path = Path(state_dir) / SWITCH_FILE
    with _switch_errors(path.parent, "read", then="; nothing is ingested on this machine until "
                        "it can be read"):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
    try:
        found = json.loads(text)  # the file disable_ingest wrote
    except ValueError:
        found = None
    if not isinstance(found, dict):  # made by hand (`touch`, `echo reason >`): off all the same
        return {"disabled_at": None, "by": None, "reason": text.strip()}
    return {"disabled_at": _text(found.get("disabled_at")), "by": _text(found.get("by")),
            "reason": _text(found.get("reason")) or ""}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def private_directory(path: str | Path) -> None:
    """Make the directory *path* and each missing one above it mode 0700, whatever the umask
    (``mkdir -p`` gives the ones above the umask's mode); those that exist stay as they are.
    They hold the mail, the locks and the tokens. OSError as ``mkdir`` raises it."""
    missing, path = [], Path(path)
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another process made it meanwhile
            pass


def disable_ingest(state_dir: str | Path, reason: str | None) -> tuple[IngestSwitch, bool]:
    """Switch ingest off on this machine (atomically; survives reboots and VM clones); the
    switch, and True when ingest was on. A switch that was off already keeps since when and by
    whom; a *reason* given replaces its reason."""
    try:
        before = ingest_switch(state_dir)
    except ConfigError:  # unreadable: written anew, or the write says why it cannot be
        before = None
    if before is not None and not reason:
        return before, False
    reason = reason or ""
    info: IngestSwitch = {"disabled_at": isoformat(utcnow()), "by": _who(), "reason": reason} \
        if before is None else {**before, "reason": reason}
    directory = Path(state_dir)
    temp = directory / f".{SWITCH_FILE}.{os.getpid()}"
    with _switch_errors(directory, "write"):
        private_directory(directory)
        temp.write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(temp, directory / SWITCH_FILE)
    return info, before is None


def enable_ingest(state_dir: str | Path) -> bool:
    """Switch ingest back on; False when it was not off."""
    with _switch_errors(Path(state_dir), "remove"):
        try:
            (Path(state_dir) / SWITCH_FILE).unlink()
        except FileNotFoundError:
            return False
    return True


def switch_report(state_dir: str | Path) -> SwitchReport:
    """The switch as ``status`` and ``ingest status`` show it: a switch that cannot be read counts
    as off (nothing is ingested), with the reason in ``ingest_switch_error``."""
    try:
        switch = ingest_switch(state_dir)
    except ConfigError as exc:
        return {"ingest_disabled": True, "ingest_switch": None, "ingest_switch_error": str(exc)}
    return {"ingest_disabled": switch is not None, "ingest_switch": switch,
            "ingest_switch_error": None}


@contextlib.contextmanager
def _switch_errors(directory: Path, verb: str, *, then: str = "") -> Iterator[None]:
    """An OSError on the switch becomes a ConfigError naming state_dir and the reason."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot {verb} the ingest switch {directory / SWITCH_FILE}: "
                          f"{exc.strerror or exc}{then}", key="settings.state_dir") from None


def _who() -> str:
    import getpass  # here, like socket and hashlib below: not needed by a run with ingest off
    import socket

    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.geteuid())
    return f"{user}@{socket.gethostname()}"


DELIVER_FAILING_FILE = "deliver-failing"  # one per target: deliver-failing.resource.NAME


def deliver_failed(state_dir: str | Path, target: str, reason: str) -> str | None:
    """Remember that ``deliver`` could not take a message for *target* (``--resource NAME``,
    ``--account NAME``): the MTA keeps it and retries. Since when, how often, the latest
    reason; ``check`` and ``status`` read it. Why it could not be written, else None (what the
    MTA is told does not change)."""
    path = _deliver_file(state_dir, target)
    now = isoformat(utcnow())
    try:
        known = _deliver_record(path) or {}
        record = {"target": target, "since": known.get("since") or now, "last": now,
                  "reason": reason, "count": int(known.get("count") or 0) + 1}
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        temporary.replace(path)
    except (OSError, ValueError, TypeError) as exc:  # a state_dir that is not one, a bad count
        return f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}"
    return None


def deliver_worked(state_dir: str | Path, target: str) -> None:
    """``deliver`` took a message for *target*: whatever failed for it before is over."""
    with contextlib.suppress(OSError):
        _deliver_file(state_dir, target).unlink(missing_ok=True)


# A transport that still fails is tried again within this (Postfix retries deferred mail at
# least every maximal_backoff_time, 4,000 s by default)
DELIVER_FORGOTTEN_AFTER_HOURS = 2


def deliver_target(*, resource: str | None, account: str | None) -> str:
    """How ``deliver --resource NAME`` (``resource.NAME``) or ``--account NAME``
    (``account.NAME``) is named in its failure records."""
    return f"resource.{resource}" if resource is not None else f"account.{account}"


def deliver_targets(resources: Iterable[str], accounts: Iterable[str]) -> set[str]:
    """The targets of ``deliver`` that an accounts file with these resources and accounts
    defines (``health.status.deliver_targets`` gives them of a Config)."""
    return {deliver_target(resource=name, account=None) for name in resources} | {
        deliver_target(resource=None, account=name) for name in accounts}


def deliver_failing(state_dir: str | Path,
                    known: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The targets ``deliver`` has been failing for ({"target", "since", "last", "count",
    "reason"}); a record that cannot be read is one too ("since" None), so that a failure is
    never taken for none.

    With *known* (``deliver_targets``): a target it does not hold (a typo in the MTA's
    transport) is marked ``"undefined": True``, and forgotten once nothing has tried it for
    DELIVER_FORGOTTEN_AFTER_HOURS: the transport was fixed, and no later success for that
    name would ever clear it."""
    records = []
    try:
        paths = sorted(Path(state_dir).glob(f"{DELIVER_FAILING_FILE}.*"))
    except OSError:  # state_dir itself unreadable: the ingest switch says so
        return []
    for path in paths:
        try:
            record = _deliver_record(path)
        except OSError as exc:
            record = {"target": path.name, "since": None, "count": 0,
                      "reason": f"cannot read {path}: {exc.strerror or exc}"}
        if record and known is not None and record.get("since") and \
                record.get("target") not in known:
            if _hours_since(record.get("last")) >= DELIVER_FORGOTTEN_AFTER_HOURS:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            record["undefined"] = True
        if record:
            records.append(record)
    return records


def _hours_since(stamp: object) -> float:
    """Hours from *stamp* (an ISO time written by deliver_failed) to now; 0 if it is none."""
    try:
        then = dt.datetime.fromisoformat(str(stamp)).astimezone(dt.UTC).replace(tzinfo=None)
    except ValueError:
        return 0.0
    return (utcnow() - then).total_seconds() / 3600


def deliver_failing_text(record: Mapping[str, Any], when: Callable[[str], str] = str) -> str:
    """"deliver (resource X) has failed N times since WHEN" of a record of ``deliver_failing``
    (``status`` and ``check``; *when* formats its "since"; an unreadable record has none)."""
    count, since = int(record.get("count") or 0), record.get("since")
    target = str(record.get("target", "?")).replace(".", " ", 1)
    if record.get("undefined"):
        target += ", which the accounts file does not define"
    times = f" {count} time{'' if count == 1 else 's'} since {when(since)}" if since else ""
    return f"deliver ({target}) has failed{times}"


def _deliver_file(state_dir: str | Path, target: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in target)
    return Path(state_dir) / f"{DELIVER_FAILING_FILE}.{safe}"


def _deliver_record(path: Path) -> dict[str, Any] | None:
    """The record at *path*; None when there is none; OSError when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {"target": path.name, "since": None, "count": 0, "reason": "an unreadable record"}
    return record if isinstance(record, dict) else None


def quarantine_lock() -> str:
    """The lock name of this machine's quarantine (``errors retry``): the quarantine is local,
    and the "@" keeps it apart from every account name."""
    import socket

    return f"quarantine@{socket.gethostname()}"


@contextlib.contextmanager
def delivery_lock(state_dir: str | Path, *, exclusive: bool = False) -> Iterator[None]:
    """Shared by every running ``deliver``; exclusive for ``db copy``, which must see no write
    into the database it copies. AccountBusy when the other kind holds it."""
    with _lock_file(Path(state_dir) / "locks", "@deliver", "deliver") as handle:
        try:
            fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AccountBusy("a deliver is running" if exclusive else
                              "the database is being copied (db copy)") from None
        yield


@contextlib.contextmanager
def account_lock(account: str, *, state_dir: str | Path,
                 database: Database | None = None) -> Iterator[None]:
    """Hold *account* for this run, or raise AccountBusy when another run holds it."""
    from peewee import PostgresqlDatabase

    if isinstance(database, PostgresqlDatabase):
        with _advisory_lock(account, database):
            yield
        return
    with _lock_file(Path(state_dir) / "locks", account, account_named(account)) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AccountBusy(f"{account_named(account)} is being processed by another "
                              "run") from None
        yield


def _lock_file(directory: Path, name: str, what: str) -> IO[str]:
    try:
        private_directory(directory)
        return open(directory / f"{name}.lock", "a")
    except OSError as exc:
        raise HelpdeskError(f"cannot create the lock for {what} in {directory.absolute()}: "
                            f"{exc.strerror}{_whose(directory)}") from None


def _whose(directory: Path) -> str:
    """Where this user may not write: who owns the first directory in the way, and the fix (a
    state_dir made by root, then used by the service user from cron)."""
    existing = directory.absolute()
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if os.access(existing, os.W_OK | os.X_OK):
        return ""
    info, me = existing.stat(), user_or_uid(os.geteuid())
    fix = (f"chown -R {me} {existing}" if existing == directory.absolute() else
           f"install -d -o {me} {directory.absolute()}")  # never give away a parent (/var/lib)
    owner, mode = user_or_uid(info.st_uid), info.st_mode & 0o7777
    return (f"; {existing} belongs to {owner} (mode {mode:o}) and "
            f"{me} runs helpdesk-fetch; fix: {fix}, or set settings.state_dir to a directory "
            "of this user")


@contextlib.contextmanager
def _advisory_lock(account: str, database: Database) -> Iterator[None]:
    import hashlib

    key = int.from_bytes(hashlib.sha256(f"helpdesk-fetch:{account}".encode()).digest()[:8],
                         "big", signed=True)
    got = database.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
    if not got:
        raise AccountBusy(f"{account_named(account)} is being processed by another worker")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            database.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))
