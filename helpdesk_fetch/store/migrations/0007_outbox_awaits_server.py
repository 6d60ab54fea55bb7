# Generated from a schema diff on 2026-12-06 04:58.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_column('outbox', 'awaits_server', BooleanField(default=False)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('outbox', 'awaits_server'))
