"""The SQL of the per-message path, written once instead of built by peewee for every message.

peewee renders each query by walking a tree of nodes; on the ingest path that cost more than
SQLite spent running the statements (a profile of ``fetch``: a quarter of the run in
``Context.sql``). The statements here are written out once per parameter style from the models'
own table and column names, and run through ``Database.execute_sql``: peewee's exception
mapping, query log (``count_queries``) and transactions all still apply. Double-quoted
identifiers, ``ON CONFLICT DO NOTHING`` and ``RETURNING`` mean the same on SQLite (3.35+) and
PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from peewee import AutoField, BlobField, Field, Model, SqliteDatabase

from helpdesk_fetch.store import models, peewee_adapter
from helpdesk_fetch.store.models import Message, SourceKey, Ticket

STREAM_BYTES = 1024 * 1024


def quote(name: str) -> str:
    return f'"{name}"'


class Insert:
    """``INSERT`` of one row of *model*, every column bound; ``run`` returns the new id.

    With *stream* (SQLite), a blob over ``STREAM_BYTES`` is inserted as ``zeroblob(size)`` and
    then written piece by piece: bound whole, SQLite would copy it once for the binding and once
    more for the record (a 25 MB attachment: 50 MB more at the peak). A blob may be given as a
    list of pieces (see ``store.compress``)."""

    def __init__(self, model: type[Model], param: str, *, ignore_conflict: bool = False,
                 stream: bool = False) -> None:
        meta = model._meta
        self.table = meta.table_name
        self.fields: list[Field[Any]] = [f for f in meta.sorted_fields
                                         if not isinstance(f, AutoField)]
        self.param, self.ignore_conflict, self.stream = param, ignore_conflict, stream
        # What run() needs of each field, looked up once: (name, column, blob, db_value, default)
        self._plan: list[tuple[str, str, bool, Callable[[Any], Any], Any]] = [
            (f.name, f.column_name, isinstance(f, BlobField), f.db_value, f.default)
            for f in self.fields]
        primary_key = meta.primary_key
        if primary_key is False:  # peewee's word for a table without one: none of ours
            raise ValueError(f"{self.table} has no primary key")
        self.returning = isinstance(primary_key, AutoField)
        self.pk = primary_key.column_name
        self.sql = self._sql(frozenset())

    @functools.cache  # noqa: B019 - a few statements, alive as long as the process anyway
    def _sql(self, zeroblobs: frozenset[str]) -> str:
        columns = ", ".join(quote(f.column_name) for f in self.fields)
        marks = ", ".join(f"zeroblob({self.param})" if f.column_name in zeroblobs else self.param
                          for f in self.fields)
        return (f"INSERT INTO {quote(self.table)} ({columns}) VALUES ({marks})"
                + (" ON CONFLICT DO NOTHING" if self.ignore_conflict else "")
                + (f" RETURNING {quote(self.pk)}" if self.returning else ""))

    def run(self, values: dict[str, Any]) -> int | None:
        """Insert *values* (by field name; missing ones take the field's default)."""
        params: list[object] = []
        streams: dict[str, list[bytes]] = {}
        for name, column, blob, db_value, default in self._plan:
            if name in values:
                value = values[name]
            else:  # a value of the field's type
                value = default() if callable(default) else default
            if blob and value is not None:
                pieces = value if isinstance(value, list) else [value]
                size = sum(memoryview(p).nbytes for p in pieces)
                if self.stream and size > STREAM_BYTES:
                    streams[column] = pieces
                    params.append(size)
                    continue
                value = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            params.append(db_value(value))
        cursor = models.database.execute_sql(self._sql(frozenset(streams)), params)
        row = cursor.fetchone() if self.returning else None
        if streams:
            self._write(cursor.lastrowid, streams)
        return row[0] if row else None

    def _write(self, rowid: int, streams: dict[str, list[bytes]]) -> None:
        connection = models.database.connection()
        with peewee_adapter.driver_errors():  # sqlite3 errors as peewee's, like execute_sql's
            for column, pieces in streams.items():
                with connection.blobopen(self.table, column, rowid) as blob:
                    for piece in pieces:
                        view = memoryview(piece).cast("B")
                        for start in range(0, view.nbytes, STREAM_BYTES):
                            blob.write(view[start:start + STREAM_BYTES])


class Statements:
    """Every statement of the per-message path, for one kind of database."""

    def __init__(self, param: str, sqlite: bool) -> None:
        p = param
        self.param = param
        # One query for both duplicate checks of spec §4.1: the source key first, then the bytes
        # (of a message; with `duplicate_or_ignored` also of ignored mail, found as 0).
        self.duplicate = (
            'SELECT "found" FROM (SELECT 1 AS "how", coalesce("message_id", 0) AS "found" '
            f'FROM "source_key" WHERE "account" = {p} AND "key" = {p} '
            'UNION ALL SELECT 2, "id" FROM "message" '
            f'WHERE "account" = {p} AND "sha256" = {p}) AS "hit" ORDER BY "how" LIMIT 1')
        self.duplicate_or_ignored = self.duplicate.replace(
            ') AS "hit"', ' UNION ALL SELECT 3, 0 FROM "ignored_message" '
            f'WHERE "account" = {p} AND "sha256" = {p}) AS "hit"')
        # One of our own auto-mails, else a copy of an inbound mail stored through any account
        # lately (spec §4.1): both found through the Message-ID index.
        self.own_or_copy = (
            'SELECT "direction", "id" FROM "message" '
            f'WHERE "message_id" = {p} AND ("direction" = \'out\' OR ("direction" = \'in\' '
            f'AND "from_addr" = {p} AND "subject" = {p} '
            f'AND ("date" = {p} OR ("date" IS NULL AND {p} IS NULL)) AND "received_at" >= {p})) '
            'ORDER BY "direction" DESC, "id" LIMIT 1')
        # A lock on a text until commit (a Message-ID, an alert's key) on PostgreSQL: two workers
        # reading two copies of a mail, or two alerts of one key, at once: the second waits for
        # the first's commit (SQLite's BEGIN IMMEDIATE already serialises them).
        self.text_lock = None if sqlite else f"SELECT pg_advisory_xact_lock(hashtext({p}))"
        self.ticket_by_number = f'SELECT * FROM "ticket" WHERE "number" = {p}'
        self.ticket_by_id = f'SELECT * FROM "ticket" WHERE "id" = {p}'
        # The write path's: on PostgreSQL the row stays locked until commit, so that an agent's
        # `tickets close` in between is not overwritten (SQLite's BEGIN IMMEDIATE serialises).
        lock = "" if sqlite else " FOR UPDATE"
        self.ticket_by_number_locked = self.ticket_by_number + lock
        self.ticket_by_id_locked = self.ticket_by_id + lock
        # The open ticket of an alert's key (spec §10.2): one at a time, the newest if ever more.
        self.alert_ticket = (f'SELECT * FROM "ticket" WHERE "correlation" = {p} '
                             "AND \"status\" <> 'closed' ORDER BY \"id\" DESC LIMIT 1")
        self.alert_ticket_locked = self.alert_ticket + lock
        self.ticket = Insert(Ticket, p)
        self.message = Insert(Message, p)
        self.raw_message = Insert(models.RawMessage, p, stream=sqlite)
        self.attachment = Insert(models.Attachment, p, stream=sqlite)
        self.source_key = Insert(SourceKey, p, ignore_conflict=True)
        self.ignored = Insert(models.IgnoredMessage, p, stream=sqlite)
        self.bouncing = Insert(models.BouncingAddress, p)

    @functools.cache  # noqa: B019 - a few column sets, alive as long as the process anyway
    def update_ticket(self, columns: tuple[str, ...]) -> str:
        """``UPDATE`` of these columns of one ticket (by id, the last parameter)."""
        names = Ticket._meta.fields
        assignments = ", ".join(f"{quote(names[c].column_name)} = {self.param}" for c in columns)
        return f'UPDATE "ticket" SET {assignments} WHERE "id" = {self.param}'

    def tickets_of(self, message_ids: Sequence[str]) -> str:
        """(message_id, ticket_id) of stored messages with these Message-IDs, newest first."""
        marks = ", ".join(self.param for _ in message_ids)
        return (f'SELECT "message_id", "ticket_id" FROM "message" WHERE "message_id" IN ({marks}) '
                'ORDER BY "id" DESC')


_bound: tuple[object, Statements] | None = None  # the database last asked for, its statements


def statements() -> Statements:
    """The statements for the database the models are bound to (asked several times per
    message: worked out once per database)."""
    global _bound
    database = models.database.obj
    if _bound is None or _bound[0] is not database:
        _bound = database, Statements(models.database.param, isinstance(database, SqliteDatabase))
    return _bound[1]


class Cursor(Protocol):
    """What the per-message path uses of a DB-API cursor (sqlite3's, psycopg2's)."""

    @property
    def description(self) -> Sequence[tuple[Any, ...]]: ...

    @property
    def lastrowid(self) -> int: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def __iter__(self) -> Iterator[tuple[Any, ...]]: ...


def run(sql: str, params: Iterable[object] = ()) -> Cursor:
    """Execute *sql* on the models' database; the cursor."""
    cursor: Cursor = models.database.execute_sql(sql, tuple(params))  # untyped in peewee
    return cursor


def one_ticket(sql: str, params: Iterable[object]) -> Ticket | None:
    """The Ticket that *sql* selects (``SELECT *``), converted as peewee would, or None."""
    cursor = run(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    columns = Ticket._meta.columns
    values = {}
    for (name, *_), value in zip(cursor.description, row, strict=True):
        field = columns[name]
        values[field.name] = field.python_value(value)
    return peewee_adapter.as_saved(Ticket(**values))
