# Generated from a schema diff on 2026-12-06 05:19.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_column('canary', 'error', TextField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('canary', 'error'))
