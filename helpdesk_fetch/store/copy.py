"""Moving up (spec §8): copy a SQLite database into an empty PostgreSQL database, and prove it.

Every table is copied row by row with its ids, in one PostgreSQL transaction, from one consistent
SQLite snapshot; then the id sequences and the ticket-number sequence are moved past the copied
rows, and every table is compared: row counts and a SHA-256 over all its columns (raw messages
and attachments byte for byte). Only when all of them match is the transaction committed; a
failure leaves the target as empty as it was.

Nothing may write to SQLite meanwhile, or mail stored after the snapshot (and then deleted from
its server) would never reach PostgreSQL: the ingest switch must be off, and every account's
lock, the quarantine's and the delivery lock are held until the copy is verified. Nor after it:
the SQLite file is then marked as copied (the one write to it), and every command refuses it
until ``[settings] database`` names the copy, or ``db reopen`` takes the mark away.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peewee import AutoField, BlobField, Database, Model, PeeweeException, fn

from helpdesk_fetch import state
from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Config, dburl
from helpdesk_fetch.errors import AccountBusy, DatabaseError, TagSecretLost, UsageError
from helpdesk_fetch.store import db
from helpdesk_fetch.store.models import MODELS, Counter, Setting, Ticket

PAGE = 500  # rows per round trip
PAGE_BYTES = 16 * 2**20  # tables with raw messages or attachments: their bytes per round trip
SEEDED = (Setting, Counter)  # rows the migrations put into every new database


@dataclass
class TableReport:
    table: str
    rows: int
    sha256: str


@dataclass
class CopyReport:
    """What ``db copy`` copied and verified."""

    source: str
    target: str
    tables: list[TableReport] = field(default_factory=list)
    next_ticket_number: int = 0
    mark_error: str | None = None  # why the SQLite file could not be marked as copied

    def rows(self, table: str) -> int:
        return next(t.rows for t in self.tables if t.table == table)


def copy_database(config: Config, source: Database, target_url: str, *,
                  password: str | None = None, timeout: float = 60) -> CopyReport:
    """Copy *config*'s SQLite database *source* into the empty PostgreSQL database at
    *target_url*, with every writer shut out."""
    from helpdesk_fetch.store.peewee_adapter import postgresql_driver

    missing = db.missing_sqlite_file(config.settings.database)
    if missing is not None:
        raise UsageError(f"there is no database at {missing} yet: nothing to copy (the first "
                         "fetch or deliver creates it)")
    path = db.sqlite_path(source)
    if path is None:
        raise UsageError("db copy moves a SQLite database to PostgreSQL, and [settings] "
                         "database names PostgreSQL already")
    if not target_url.startswith(("postgresql:", "postgres:")):
        raise UsageError(f"the target must be a postgresql:// URL, not "
                         f"{dburl.redact(target_url)!r}")
    if not postgresql_driver():
        raise UsageError(f"--to names a PostgreSQL database, and {db.NO_DRIVER}")
    with shut_out(config, source):
        report = _copy(source, path, target_url, password=password, timeout=timeout)
        report.mark_error = _mark_moved(path, report.target)
    return report


def _mark_moved(path: Path, target: str) -> str | None:
    """Leave the mark in the SQLite file that makes every command refuse it from now on
    (``db.refuse_moved``); why it could not be left, else None."""
    mark = json.dumps({"url": target, "at": isoformat(utcnow())})
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=db.BUSY_SECONDS)) as sqlite:
            with sqlite:
                sqlite.execute("INSERT OR REPLACE INTO setting (key, value) VALUES (?, ?)",
                               (db.MOVED, mark))
    except sqlite3.Error as exc:
        return str(exc)
    return None


@contextlib.contextmanager
def shut_out(config: Config, source: Database) -> Iterator[None]:
    """Hold everything that writes to *source*: ingest off, every lock taken, or an error."""
    state_dir = config.settings.state_dir
    if state.ingest_switch(state_dir) is None:
        raise UsageError("ingest is enabled on this machine; run `helpdesk-fetch ingest "
                         "disable` first, so that nothing is stored during the copy")
    names = [a.name for a in config.accounts] + [state.quarantine_lock()]
    try:
        with contextlib.ExitStack() as held:
            held.enter_context(state.delivery_lock(state_dir, exclusive=True))
            for name in names:
                held.enter_context(state.account_lock(name, state_dir=state_dir,
                                                      database=source))
            yield
    except AccountBusy as exc:
        raise AccountBusy(f"db copy: {exc}; let it finish, then try again") from None


def _copy(source: Database, path: Path, target_url: str, *, password: str | None,
          timeout: float) -> CopyReport:
    if not Setting.select(Setting.value).where(Setting.key == "tag_secret").scalar(source):
        raise TagSecretLost()  # the copy would be refused by every command (spec §4.5)
    target = db.connect(target_url, password=password, timeout=timeout)
    report = CopyReport(f"sqlite:///{path}", dburl.redact(target_url))
    try:
        db.migrate(target)  # the same migrations as for any new database
        _refuse_non_empty(target, report.target)
        with source.atomic(), target.atomic():
            for model in MODELS:
                _copy_table(model, source, target)
            report.next_ticket_number = _move_sequences(source, target)
            report.tables = _verify(source, target)
    except PeeweeException as exc:
        raise db.as_database_error(exc, f"db copy to {report.target} failed, nothing was "
                                        "kept") from None
    finally:
        target.close()
    return report


def _refuse_non_empty(target: Database, url: str) -> None:
    """Only an empty database is filled: nothing in it may be overwritten or mixed."""
    filled = {m._meta.table_name: m.select().count(target) for m in MODELS if m not in SEEDED}
    filled = {table: rows for table, rows in filled.items() if rows}
    if filled:
        what = ", ".join(f"{rows} rows in {table}" for table, rows in filled.items())
        raise UsageError(f"{url} is not empty ({what}); db copy only fills an empty database")


def _copy_table(model: type[Model], source: Database, target: Database) -> None:
    fields = model._meta.sorted_fields
    if model in SEEDED:  # the source's values win, the tag secret above all
        model.delete().execute(target)
    for rows in _pages(model, source):
        model.insert_many(rows, fields=fields).as_rowcount().execute(target)


def _rows(model: type[Model]) -> Any:
    """The rows of *model* that are copied: all but the mark of an earlier copy (a source copied
    twice must not tell the second copy that it was moved to the first)."""
    query = model.select()
    return query.where(Setting.key != db.MOVED) if model is Setting else query


def _pages(model: type[Model], source: Database) -> Iterator[list[tuple[Any, ...]]]:
    """All rows of *model* in *source*, in pages, in primary-key order; a page of a table of
    messages, raw messages or attachments weighs about PAGE_BYTES (``_weight``; one row alone
    when it weighs more), so that memory stays flat whatever the messages weigh (the driver
    expands bytea to hex on the way)."""
    if not _ordered_by_id(model):
        yield list(_rows(model).tuples().execute(source))
        return
    pk = model._meta.primary_key
    assert pk, "every table has a primary key"
    weight = _Weight.of(model)
    spans = _spans(model, source, weight) if weight is not None else _row_spans(model, source)
    for first, last in spans:
        query = model.select().where(pk.between(first, last)).order_by(pk)
        yield list(query.tuples().execute(source))


def _row_spans(model: type[Model], source: Database) -> Iterator[tuple[Any, Any]]:
    """(first, last) primary keys of pages of PAGE rows."""
    for keys in _keys(model, source):
        for start in range(0, len(keys), PAGE):
            page = keys[start:start + PAGE]
            yield page[0][0], page[-1][0]


@dataclass(frozen=True)
class _Weight:
    """What tells a row's weight without reading it: the lengths of its blobs (raw messages,
    attachments), and the size of the message it holds the text of (a message's text and HTML
    are each at most about as long as its raw bytes). Added up in Python: on PostgreSQL their
    sum could pass the 32 bits of a length."""

    blobs: list[Any]  # an expression per blob column: its length
    size: Any | None  # the size column's, or None

    @classmethod
    def of(cls, model: type[Model]) -> _Weight | None:
        """*model*'s; None for a table of small rows."""
        blobs = [fn.COALESCE(fn.LENGTH(f), 0) for f in model._meta.sorted_fields
                 if isinstance(f, BlobField)]
        size = model._meta.fields.get("size")
        weight = cls(blobs, None if size is None else fn.COALESCE(size, 0))
        return weight if weight.columns() else None

    def columns(self) -> list[Any]:
        return [*self.blobs, *([] if self.size is None else [self.size])]

    def bytes(self, values: list[int]) -> int:
        """The weight of a row whose ``columns()`` are *values*: its blobs, and its message's
        size twice (text and HTML; the HTML's at most PAGE_BYTES)."""
        blobs = sum(values[:len(self.blobs)])
        size = values[len(self.blobs)] if self.size is not None else 0
        return blobs + size + min(size, PAGE_BYTES)


def _spans(model: type[Model], source: Database, weight: _Weight) -> Iterator[tuple[Any, Any]]:
    """(first, last) primary keys of pages of rows weighing about PAGE_BYTES in all, and at
    most PAGE rows."""
    first = last = None
    rows = total = 0
    for keys in _keys(model, source, *weight.columns()):
        for key, *values in keys:
            heft = weight.bytes(values)
            if first is not None and (rows == PAGE or total + heft > PAGE_BYTES):
                yield first, last
                first, rows, total = None, 0, 0
            first = key if first is None else first
            last, rows, total = key, rows + 1, total + heft
    if first is not None:
        yield first, last


def _keys(model: type[Model], source: Database,
          *extra: Any) -> Iterator[list[tuple[Any, ...]]]:
    """(primary key, *extra) of every row, in key order, a few thousand at a time."""
    pk, last = model._meta.primary_key, None
    while True:
        query = model.select(pk, *extra).order_by(pk).limit(10 * PAGE)
        if last is not None:
            query = query.where(pk > last)
        keys = list(query.tuples().execute(source))
        if not keys:
            return
        yield keys
        last = keys[-1][0]


def _ordered_by_id(model: type[Model]) -> bool:
    """Integer keys sort alike everywhere; text keys (small tables) are sorted in Python, since
    SQLite and PostgreSQL collate text differently."""
    return model not in SEEDED


def _move_sequences(source: Database, target: Database) -> int:
    """Past the copied ids, and ticket numbers past every number ever issued; the next one."""
    for model in MODELS:
        if isinstance(model._meta.primary_key, AutoField):
            table = model._meta.table_name
            target.execute_sql(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM \"{table}\"")
    issued = Counter.select(Counter.value).where(Counter.name == "ticket").scalar(source) or 0
    numbers = [int(n) for (n,) in Ticket.select(Ticket.number).tuples().execute(source)
               if n.isdigit()]
    last = max([issued, *numbers])
    target.execute_sql("SELECT setval('ticket_number_seq', %s)", (last,))
    return last + 1


def _verify(source: Database, target: Database) -> list[TableReport]:
    """Row counts and checksums of every table, equal on both sides, or DatabaseError."""
    reports = []
    for model in MODELS:
        table = model._meta.table_name
        mine, theirs = _checksum(model, source), _checksum(model, target)
        if mine != theirs:
            how = (f"{mine[0]} rows in SQLite, {theirs[0]} in PostgreSQL" if mine[0] != theirs[0]
                   else "same row count, different checksums")
            raise DatabaseError(f"db copy: table {table} differs after copying ({how}); "
                                "nothing was kept")
        reports.append(TableReport(table, *mine))
    return reports


def _checksum(model: type[Model], database: Database) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    pages: Iterable[list[tuple[Any, ...]]] = _pages(model, database)
    if not _ordered_by_id(model):
        pages = [sorted(row for page in pages for row in page)]
    for page in pages:
        for row in page:
            digest.update(repr(tuple(_portable(v) for v in row)).encode())
            count += 1
    return count, digest.hexdigest()


def _portable(value: object) -> object:
    """A value as both databases give it back: bytes for blobs (PostgreSQL hands out
    memoryviews), ISO text for times, NUL as stored on PostgreSQL."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
