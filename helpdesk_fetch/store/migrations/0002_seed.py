"""The ticket-number sequence and the installation's secret for ticket tags."""
import datetime
import secrets

from peewee import PostgresqlDatabase

FIRST_TICKET_NUMBER = 1001


def up(migrator, db):
    db.execute_sql("INSERT INTO counter (name, value) VALUES ('ticket', %d)"
                   % (FIRST_TICKET_NUMBER - 1))
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("CREATE SEQUENCE ticket_number_seq START %d" % FIRST_TICKET_NUMBER)
    db.execute_sql("INSERT INTO setting (key, value) VALUES ('tag_secret', %s)" % db.param,
                   (secrets.token_hex(32),))
    db.execute_sql("INSERT INTO setting (key, value) VALUES ('created_at', %s)" % db.param,
                   (datetime.datetime.now(datetime.UTC).isoformat(),))


def down(migrator, db):
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql("DROP SEQUENCE ticket_number_seq")
    db.execute_sql("DELETE FROM setting WHERE key IN ('tag_secret', 'created_at')")
    db.execute_sql("DELETE FROM counter WHERE name = 'ticket'")
