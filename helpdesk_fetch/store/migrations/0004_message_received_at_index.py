# Generated from a schema diff on 2026-12-03 08:32.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_index('message', ('received_at',)))


def down(migrator, db):
    migrator.migrate(migrator.drop_index('message', 'message_received_at'))
