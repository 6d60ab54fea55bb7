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
from collections.abc import Iterable, Sequence

from peewee import AutoField, Field, Model

from helpdesk_fetch import models
from helpdesk_fetch.models import Message, SourceKey, Ticket


def quote(name: str) -> str:
    return f'"{name}"'


class Insert:
    """``INSERT`` of one row of *model*, every column bound; ``run`` returns the new id."""

    def __init__(self, model: type[Model], param: str, *, ignore_conflict: bool = False) -> None:
        meta = model._meta
        self.fields: list[Field] = [f for f in meta.sorted_fields if not isinstance(f, AutoField)]
        columns = ", ".join(quote(f.column_name) for f in self.fields)
        marks = ", ".join(param for _ in self.fields)
        self.returning = isinstance(meta.primary_key, AutoField)
        self.sql = (f"INSERT INTO {quote(meta.table_name)} ({columns}) VALUES ({marks})"
                    + (" ON CONFLICT DO NOTHING" if ignore_conflict else "")
                    + (f" RETURNING {quote(meta.primary_key.column_name)}"
                       if self.returning else ""))

    def run(self, values: dict) -> int | None:
        """Insert *values* (by field name; missing ones take the field's default)."""
        params = [f.db_value(values[f.name] if f.name in values else _default(f))
                  for f in self.fields]
        cursor = models.database.execute_sql(self.sql, params)
        if not self.returning:
            return None
        row = cursor.fetchone()
        return row[0] if row else None


def _default(field: Field):
    return field.default() if callable(field.default) else field.default


class Statements:
    """Every statement of the per-message path, for one parameter style (``?`` or ``%s``)."""

    def __init__(self, param: str) -> None:
        p = param
        self.param = param
        # One query for both duplicate checks of spec §4.1: the source key first, then the bytes.
        self.duplicate = (
            'SELECT "found" FROM (SELECT 1 AS "how", coalesce("message_id", 0) AS "found" '
            f'FROM "source_key" WHERE "account" = {p} AND "key" = {p} '
            'UNION ALL SELECT 2, "id" FROM "message" '
            f'WHERE "account" = {p} AND "sha256" = {p}) AS "hit" ORDER BY "how" LIMIT 1')
        self.own_outbound = (f'SELECT 1 FROM "message" WHERE "message_id" = {p} '
                             "AND \"direction\" = 'out' LIMIT 1")
        self.ticket_by_number = f'SELECT * FROM "ticket" WHERE "number" = {p}'
        self.ticket_by_id = f'SELECT * FROM "ticket" WHERE "id" = {p}'
        self.update_ticket = (f'UPDATE "ticket" SET "updated_at" = {p}, "status" = {p}, '
                              f'"escalation_due_at" = {p}, "closed_at" = {p} WHERE "id" = {p}')
        self.ticket = Insert(Ticket, p)
        self.message = Insert(Message, p)
        self.raw_message = Insert(models.RawMessage, p)
        self.attachment = Insert(models.Attachment, p)
        self.source_key = Insert(SourceKey, p, ignore_conflict=True)

    def tickets_of(self, message_ids: Sequence[str]) -> str:
        """(message_id, ticket_id) of stored messages with these Message-IDs, newest first."""
        marks = ", ".join(self.param for _ in message_ids)
        return (f'SELECT "message_id", "ticket_id" FROM "message" WHERE "message_id" IN ({marks}) '
                'ORDER BY "id" DESC')


@functools.cache
def _statements(param: str) -> Statements:
    return Statements(param)


def statements() -> Statements:
    """The statements for the database the models are bound to."""
    return _statements(models.database.param)


def run(sql: str, params: Iterable = ()):
    """Execute *sql* on the models' database; the cursor."""
    return models.database.execute_sql(sql, tuple(params))


def one_ticket(sql: str, params: Iterable) -> Ticket | None:
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
    ticket = Ticket(**values)
    ticket._dirty.clear()
    return ticket
