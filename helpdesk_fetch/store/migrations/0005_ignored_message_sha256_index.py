# Generated from a schema diff on 2026-12-05 08:36.
from peewee import *

def up(migrator, db):
    migrator.migrate(migrator.add_index('ignored_message', ('account', 'sha256')))


def down(migrator, db):
    migrator.migrate(migrator.drop_index('ignored_message', 'ignored_message_account_sha256'))
