"""Sizes in 64 bits where a server's word is recorded: a message too large to take is set aside
with the size the server lists (spec §4.4), which may be any, and PostgreSQL's integer stops at
2 GiB ("integer out of range" failed the account on every run). The other size columns hold
what was stored, at most max_message_bytes (under 1 GiB): widening them would rewrite the
message and attachment tables under an exclusive lock. SQLite's INTEGER holds 64 bits already.
Written by hand; never edit once released."""
from peewee import *


def up(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        migrator.migrate(migrator.alter_column_type("failed_message", "size", BigIntegerField()))


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        migrator.migrate(migrator.alter_column_type("failed_message", "size", IntegerField()))
