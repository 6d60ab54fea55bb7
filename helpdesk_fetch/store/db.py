"""Opening the database: URL to peewee database, pragmas, migrations on open, ticket numbers.

SQLite pragmas, chosen deliberately:

- ``journal_mode=wal``: readers (``status``, ``tickets list``) never block the fetch run's writer.
- ``synchronous=full``: a commit is on disk before it returns, so a message is durably stored
  before it is deleted from the server, even across power loss (spec §4.1). In WAL mode ``normal``
  would lose the last transactions on power loss; we never trade that for speed.
- ``wal_autocheckpoint=16384``: the WAL is copied back into the database file once it holds 64 MiB
  (SQLite's default: 4 MiB), and when the last connection closes. At the default, a fetch run's
  commit groups (~10 MB of pages each) each ran a checkpoint, with an fsync of the database file,
  while the writer waited: 0.15 s of commits for 1,000 messages, 0.08 s now, the last copy at the
  end of the run.
- ``foreign_keys=1``: messages cannot point at missing tickets.
- ``busy_timeout=30000``: a second process waits for the writer instead of failing at once.
- ``cache_size=-2000`` (2 MiB, SQLite's default): ingest only probes indexes (a handful of pages
  per message) and appends; a larger cache bought no speed with a million stored messages and
  cost its size in memory (``make bench``: peak RSS of a 1,000-message run 62 -> 46 MB).

Transactions begin with ``BEGIN IMMEDIATE``: a deferred transaction that reads (the duplicate and
thread lookups) and then writes fails at once with "database is locked" when another process
committed in between (a WAL snapshot conflict, for which SQLite does not wait); taking the write
lock at BEGIN makes overlapping runs on different accounts queue for busy_timeout instead.

PostgreSQL (spec §8) goes through psycopg2, the optional extra ``helpdesk-fetch[postgres]``; its
commits are durable with the server's defaults. Ticket numbers come from the sequence
``ticket_number_seq``, so concurrent workers never draw the same one. Migrations are serialised
by an advisory lock (SQLite: a file lock), so workers starting together on a new database create
the schema once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

from peewee import (
    Database,
    InterfaceError,
    OperationalError,
    PeeweeException,
    PostgresqlDatabase,
    SqliteDatabase,
)

from helpdesk_fetch.config import Settings, dburl
from helpdesk_fetch.errors import ConfigError, DatabaseError, DatabaseMoved, NoDatabase
from helpdesk_fetch.store import access, models

MIGRATIONS = Path(__file__).with_name("migrations")
HISTORY_TABLE = "schema_migration"
MOVED = "moved_to"  # the setting ``db copy`` leaves in a SQLite database it copied
NO_DRIVER = ("the psycopg2 driver is not installed: pip install 'helpdesk-fetch[postgres]' "
             "(from a source directory: pip install '.[postgres]')")
BUSY_SECONDS = 30
SQLITE_PRAGMAS = {  # in this order: waiting for a lock must already apply to switching to WAL
    "busy_timeout": BUSY_SECONDS * 1000,
    "journal_mode": "wal",
    "synchronous": "full",
    "wal_autocheckpoint": 16384,  # pages: 64 MiB of WAL at 4 KiB pages
    "foreign_keys": 1,
    "cache_size": -2000,  # 2 MiB
}
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 " \
                    "-c tcp_keepalives_count=3"
LOCK_TIMEOUT = f"-c lock_timeout={BUSY_SECONDS}s"  # PostgreSQL's busy_timeout


def open_configured(settings: Settings, *, read_only: bool = False, create: bool = True,
                    moved: bool = False) -> Database:
    """Open the database of ``[settings]``, with its password source (PostgreSQL). Without
    *create*, a SQLite file that is not there yet is NoDatabase, not a new database: a command
    that only changes what is stored has nothing to change in it. Without *moved*, a SQLite
    file that ``db copy`` has copied is DatabaseMoved (``refuse_moved``)."""
    from helpdesk_fetch.secrets.passwords import database_password

    if not create and (missing := missing_sqlite_file(settings.database)) is not None:
        raise NoDatabase(f"there is no database yet at {missing} (the first fetch or "
                         "deliver creates it)")
    password = database_password(settings, timeout=settings.timeout_seconds)
    database = open_database(settings.database, password=password, read_only=read_only,
                             timeout=settings.timeout_seconds)
    if not moved:
        refuse_moved(database)
    return database


def moved_to(database: Database) -> dict[str, str] | None:
    """Where ``db copy`` copied this SQLite database, and when: {"url", "at"}; else None."""
    if not isinstance(database, SqliteDatabase):
        return None
    with errors("cannot read the database"):
        mark = setting(MOVED)
    return json.loads(mark) if mark else None


def refuse_moved(database: Database) -> None:
    """DatabaseMoved for a SQLite file that ``db copy`` has copied: after the copy, mail stored
    in it would never reach PostgreSQL (the config not switched yet, ingest enabled again)."""
    mark = moved_to(database)
    if mark is not None:
        raise DatabaseMoved(
            f"this SQLite database was copied to {mark['url']} by `db copy` ({mark['at']}); "
            f'set database = "{mark["url"]}" (and its password source) to use the copy, or '
            "run `helpdesk-fetch db reopen` to go on with this file after all",
            key="settings.database")


def open_database(url: str, *, password: str | None = None, read_only: bool = False,
                  timeout: float = 60) -> Database:
    """Open the database at *url*, bind the models to it and bring its schema up to date.

    *read_only* (for --dry-run) changes nothing: a SQLite file is opened read-only, or, when it
    does not exist yet, an empty in-memory database stands in for it; a PostgreSQL session is
    read-only, and an empty PostgreSQL database gets its schema in the session's temporary
    schema, which nobody else sees and which ends with the session."""
    database = connect(url, password=password, read_only=read_only, timeout=timeout)
    previous = models.database.obj
    if previous is not None and previous is not database:
        with contextlib.suppress(PeeweeException):  # one at a time: leave no session behind
            previous.close()
    models.database.initialize(database)
    try:
        with _opening(database, read_only=read_only):
            database.connect(reuse_if_open=True)
            _prepare(database, read_only=read_only)
    except PeeweeException as exc:
        raise DatabaseError(f"cannot open the database {dburl.redact(url)}: "
                            f"{describe_error(exc)}") from None
    return database


def _prepare(database: Database, *, read_only: bool) -> None:
    in_memory = isinstance(database, SqliteDatabase) and database.database == ":memory:"
    if not read_only or in_memory:
        return migrate(database)
    if isinstance(database, PostgresqlDatabase):
        if not database.table_exists(HISTORY_TABLE):
            database.execute_sql("SET search_path TO pg_temp")
            migrate(database)
        database.execute_sql("SET default_transaction_read_only = on")
    if _pending(database):
        raise DatabaseError("the database schema is older than this version; run once "
                            "without --dry-run to upgrade it")


def connect(url: str, *, password: str | None = None, read_only: bool = False,
            timeout: float = 60) -> Database:
    """A peewee database for *url* (``sqlite:///path`` or ``postgresql://user@host:port/db``)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite(_sqlite_file(url), url, read_only=read_only)
    if parts.scheme in ("postgres", "postgresql"):
        return _postgresql(url, password, timeout)
    raise ConfigError(f"unsupported database URL {dburl.redact(url)!r} (use sqlite:/// or "
                      "postgresql://)", key="settings.database")


def _postgresql(url: str, password: str | None, timeout: float) -> PostgresqlDatabase:
    """PostgreSQL through psycopg2 (the optional extra ``helpdesk-fetch[postgres]``).

    Keepalives on both ends: a worker whose machine vanishes loses its session, and with it its
    account locks, within about a minute (spec §8); a vanished server is noticed as quickly.
    ``lock_timeout``, like SQLite's busy_timeout: a statement that waits for a lock another
    session holds (an agent's open transaction on a ticket row, a migration) gives up after
    BUSY_SECONDS with an error, instead of hanging the command, deaf to SIGTERM inside libpq,
    for as long as the other session lives (spec §3). Options in the URL come after ours, so
    ``?options=-c%20lock_timeout%3D…`` overrides it."""
    from helpdesk_fetch.store.peewee_adapter import postgresql_driver

    if not postgresql_driver():
        raise ConfigError(f"names a PostgreSQL database, and {NO_DRIVER}",
                          key="settings.database")
    from helpdesk_fetch.secrets.redact import remember_secret

    params: dict[str, Any] = dburl.parameters(url)  # libpq's keywords, for the driver
    if "password" in params:  # never to be printed, wherever it turns up
        remember_secret(params["password"])
    if password:  # a password source wins over the URL
        params["password"] = password
    options = f"{SERVER_KEEPALIVES} {LOCK_TIMEOUT} {params.pop('options', '')}".strip()
    return Postgresql(params.pop("dbname", ""), autoconnect=True, options=options,
                      **{"connect_timeout": max(1, int(timeout)),
                         "application_name": "helpdesk-fetch", **KEEPALIVES, **params})


class Postgresql(PostgresqlDatabase):
    """PostgreSQL's text cannot hold NUL, which SQLite's can: the parser never produces it, and
    should one slip through (an error text, an old SQLite row being copied) it is stored as
    U+FFFD instead of failing the driver with a ValueError."""

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if isinstance(params, (list, tuple)) and any(
                isinstance(p, str) and "\x00" in p for p in params):
            params = [p.replace("\x00", "\ufffd") if isinstance(p, str) else p for p in params]
        # peewee's own is unannotated; untyped_calls_exclude does not reach a call via super()
        return super().execute_sql(sql, params)  # type: ignore[no-untyped-call]


def _sqlite(path: str, url: str, *, read_only: bool) -> SqliteDatabase:
    if not path:
        raise ConfigError(f"no file in the database URL {url!r}", key="settings.database")
    if os.path.isdir(path):  # SQLite would say "unable to open database file"
        raise ConfigError(f"{path} is a directory, not a database file; name a file, e.g. "
                          f"sqlite:///{Path(path) / 'helpdesk.db'}", key="settings.database")
    if read_only:
        if path != ":memory:" and os.path.lexists(Path(path).parent):  # one this user cannot
            _check_access(Path(path), write=False)  # enter hides whether the file exists
        if path == ":memory:" or not os.path.lexists(path):
            return SqliteDatabase(":memory:", pragmas=SQLITE_PRAGMAS, autoconnect=True)
        # No pragma that writes: the file stays exactly as it is.
        return SqliteDatabase(f"file:{quote(path)}?mode=ro", uri=True, timeout=BUSY_SECONDS,
                              pragmas={"busy_timeout": BUSY_SECONDS * 1000}, autoconnect=True)
    if path != ":memory:":
        _check_access(Path(path), write=True)
        _create_private(Path(path))
    # timeout: the driver's own busy wait, which covers the statements before the pragmas
    return SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, autoconnect=True, lock_type="IMMEDIATE",
                          timeout=BUSY_SECONDS)


def _check_access(path: Path, *, write: bool) -> None:
    """Refuse, before SQLite says only "unable to open database file" (or, mid-run, "attempt
    to write a readonly database"), a file this user may not use: who owns it, and the fix."""
    trouble = access.trouble(path, write=write)
    if trouble is not None:
        raise DatabaseError(trouble)


def _create_private(path: Path) -> None:
    """Create a new database file mode 0600 before SQLite would, with the umask's (often 0644):
    it holds all the mail. SQLite gives its -wal and -shm files the mode of the database file."""
    if os.path.lexists(path):
        return
    try:
        from helpdesk_fetch.state import private_directory

        private_directory(path.parent)  # as the file: private
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise DatabaseError(f"cannot create the database file {path}: {exc.strerror}") from None


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file that *url* names when it does not exist yet: nothing has been fetched
    into it, and a read-only open reads an empty stand-in rather than create it. None for
    PostgreSQL, an in-memory database, or a file that exists."""
    if urlsplit(url).scheme != "sqlite":
        return None
    path = _sqlite_file(url)
    return None if not path or path == ":memory:" or os.path.lexists(path) else Path(path)


def _sqlite_file(url: str) -> str:
    """The file of the SQLite *url* (``sqlite:////abs/path``: "/abs/path")."""
    path = urlsplit(url).path
    return unquote(path[1:] if path.startswith("/") else path)


def sqlite_path(database: Database) -> Path | None:
    if isinstance(database, SqliteDatabase) and database.database != ":memory:":
        name = database.database
        if name.startswith("file:"):  # the read-only open's URI: percent-encoded
            return Path(unquote(name.removeprefix("file:").split("?")[0]))
        return Path(name)
    return None


def migrate(database: Database) -> None:
    """Apply pending migrations, one process at a time; quick when there are none."""
    if not _pending(database):
        return
    with _migration_lock(database):
        from playhouse.migrations import Runner  # only needed when the schema changes

        Runner(database, str(MIGRATIONS), table_name=HISTORY_TABLE).up()


def _pending(database: Database) -> bool:
    """Whether migrations are missing; DatabaseError when the database has some this code does
    not know: a newer helpdesk-fetch upgraded it, and this one would misread it."""
    files = {p.stem for p in MIGRATIONS.glob("[0-9]*.py")}
    if not database.table_exists(HISTORY_TABLE):
        return True
    applied = {row[0] for row in database.execute_sql(f"SELECT name FROM {HISTORY_TABLE}")}
    newer = sorted(applied - files)
    if newer:
        raise DatabaseError(f"the database was upgraded by a newer helpdesk-fetch (migrations "
                            f"{', '.join(newer)}, unknown to this version); install that "
                            "version or a later one")
    return bool(files - applied)


@contextlib.contextmanager
def _opening(database: Database, *, read_only: bool) -> Iterator[None]:
    """One process at a time opens a writable SQLite file: its first connection switches the
    file to WAL and may create the schema, and SQLite answers two processes doing that together
    with "database is locked" at once (one holds a shared lock and wants to write while the
    other waits for it), without waiting for busy_timeout. The lock is held for the open only.
    A lock file that cannot be made says why (a read-only mount, a full disk, another owner)."""
    path = None if read_only else sqlite_path(database)
    if path is None:
        yield
        return
    lock = f"{path}.migrate-lock"
    try:  # flock needs no write access: a lock file another member of a group made will do
        mode = stat.S_IMODE(os.stat(path).st_mode) if os.path.lexists(path) else 0o600
        handle = open(os.open(lock, os.O_RDONLY | os.O_CREAT, mode))
    except OSError as exc:  # a read-only mount, a full disk, someone else's lock file
        raise DatabaseError(_file_system_trouble(database) or access.trouble(path, write=True)
                            or f"cannot open the database's lock file {lock}: "
                            f"{exc.strerror}") from None
    with handle:
        _wait_for_lock(handle, lock)
        yield


def _wait_for_lock(handle: IO[str], lock: str) -> None:
    waited = 0.0
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if waited >= BUSY_SECONDS:
                raise DatabaseError(f"cannot open the database: another process has held its "
                                    f"lock file {lock} for {BUSY_SECONDS} s while opening it; "
                                    "try again") from None
            time.sleep(0.05)
            waited += 0.05


@contextlib.contextmanager
def _migration_lock(database: Database) -> Iterator[None]:
    """PostgreSQL's workers take an advisory lock; a SQLite file is already held by _opening."""
    if not isinstance(database, PostgresqlDatabase):
        yield
        return
    database.execute_sql("SELECT pg_advisory_lock(7460140001)")
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(7460140001)")


def next_ticket_number(database: Database) -> str:
    """A new ticket number, unique and increasing under any number of concurrent writers."""
    if isinstance(database, PostgresqlDatabase):
        cursor = database.execute_sql("SELECT nextval('ticket_number_seq')")
    else:
        cursor = database.execute_sql(
            "UPDATE counter SET value = value + 1 WHERE name = 'ticket' RETURNING value")
    return str(cursor.fetchone()[0])


def setting(key: str) -> str | None:
    row = models.Setting.get_or_none(models.Setting.key == key)
    return row.value if row else None


def as_database_error(exc: PeeweeException, doing: str = "database") -> DatabaseError:
    """*exc* as the DatabaseError the CLI reports in one line (spec §3)."""
    return DatabaseError(f"{doing}: {describe_error(exc)}")


LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL: lock_timeout passed, or NOWAIT refused
LOCK_CONFLICTS = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


def lock_conflict(exc: PeeweeException) -> bool:
    """Whether *exc* is PostgreSQL giving up on a statement because two sessions waited for
    each other's locks: the statement can be tried again once this session's locks are gone."""
    return _pgcode(exc) in LOCK_CONFLICTS


def _pgcode(exc: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of *exc* (psycopg2's error, or the one peewee wrapped)."""
    original = getattr(exc, "orig", None) or exc.__cause__ or exc
    return getattr(original, "pgcode", None)


@contextlib.contextmanager
def errors(doing: str = "database") -> Iterator[None]:
    """A database failure inside the block as a DatabaseError saying what was being done: the
    caller stops, and deletes nothing it has not stored."""
    try:
        yield
    except PeeweeException as exc:
        raise as_database_error(exc, doing) from None


def describe_error(exc: BaseException, database: Database | None = None) -> str:
    """A short reason for a database failure, with the usual fixes for SQLite.

    SQLite reports a full disk as often as "disk I/O error" (creating the WAL index) as "database
    or disk is full", and a read-only mount as a read-only database; the file system of the
    database (*database*, else the one in use) says which. PostgreSQL's text has lines of
    its own (CONTEXT, HINT, libpq's "Is the server running…"): they are joined into one."""
    exc = _first_failure(exc)
    text = _one_line(str(exc))
    database = database or models.database.obj
    hint = _file_system_trouble(database)
    if isinstance(exc, OperationalError) and hint:  # the cause first, then SQLite's words
        return f"{hint} (SQLite: {text})"
    if isinstance(exc, OperationalError):
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            path = sqlite_path(database) if database is not None else None
            # who owns what, and the fix, instead of SQLite's words
            return (path and access.trouble(path, write=True)) or \
                f"{text} (is the database file or its directory writable by this user?)"
        if "disk" in text and "full" in text:
            return f"{text} (free some disk space)"
        if "locked" in text:
            return f"{text} (another process holds the database; try again)"
        if _pgcode(exc) == LOCK_NOT_AVAILABLE:
            return f"{text} (another session holds what this needs; try again)"
    return text


def _one_line(text: str) -> str:
    """*text* on one line: a line that starts a sentence of its own ("CONTEXT: …", "Is the
    server running…") after "; ", one that goes on with the sentence (libpq wraps at 80) after
    a space."""
    joined = ""
    for line in (" ".join(line.split()) for line in text.splitlines()):
        if line:
            joined += (" " if line[0].islower() else "; ") + line if joined else line
    return joined


def _first_failure(exc: BaseException) -> BaseException:
    """The failure that started it all. When the server drops the connection inside a
    transaction, the rollback on the way out fails too ("connection already closed"), and that
    second failure would hide why: the server's own words ("terminating connection due to
    administrator command", "server closed the connection unexpectedly")."""
    if isinstance(exc, InterfaceError):
        earlier = exc.__context__
        while earlier is not None:
            if isinstance(earlier, OperationalError):
                return earlier
            earlier = earlier.__context__
    return exc


FULL_BELOW = 1024 * 1024  # free bytes under which a database disk counts as full


def _file_system_trouble(database: Database | None) -> str | None:
    """What is wrong with the file system of a SQLite database file: read-only, or full."""
    path = sqlite_path(database) if database is not None else None
    if path is None:
        return None
    try:
        fs = os.statvfs(path.parent)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return f"the file system holding {path.parent} is mounted read-only; remount it " \
               "read-write or move the database"
    free = fs.f_bavail * fs.f_frsize
    if free < FULL_BELOW:
        return f"the disk holding {path.parent} is full, {free} bytes free; free some space"
    return None
