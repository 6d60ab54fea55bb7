"""``db copy``: a populated SQLite database moves to PostgreSQL, losing no ticket (spec §8)."""

from __future__ import annotations

import hashlib
import json
import zlib

import pytest

from helpdesk_fetch import db
from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.models import MODELS, FailedMessage, Message, Outbox, RawMessage
from tests.conftest import DB_PASSWORD_ENV
from tests.mails import message, message_id_of
from tests.pgserver import PASSWORD
from tests.test_corpus import MESSAGES as CORPUS
from tests.test_ingest_maildir import make_maildir


@pytest.fixture
def populated(tmp_path, write_config, run):
    """A SQLite database with what a year of use leaves: threads, attachments, a closed
    ticket, a message that failed, a queued auto-mail, run history."""
    first = message("Printer broken", attachments=[("log.txt", "text/plain", b"jam\n" * 100)])
    mails = [first, message("Re: Printer broken", in_reply_to=f"<{message_id_of(first)}>"),
             b"", *[path.read_bytes() for path in CORPUS[:40]]]
    make_maildir(tmp_path / "box", mails)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "resource": "it-support"}])
    assert run("fetch", config=config).exit_code == 0
    assert run("tickets", "close", "2", config=config).exit_code == 0
    db.open_database(f"sqlite:///{tmp_path}/helpdesk.db")
    out = Message.create(ticket=1, direction="out", subject="We have your request",
                         received_at=utcnow())
    Outbox.create(message=out, kind="new_ticket", recipients='["carol@example.org"]',
                  created_at=utcnow(), next_attempt_at=utcnow())
    FailedMessage.update(reason=FailedMessage.reason + "\x00 (a NUL from long ago)").execute()
    return config


def counts_and_raws(database) -> tuple[dict, dict]:
    with database.bind_ctx(MODELS):
        counts = {m._meta.table_name: m.select().count() for m in MODELS}
        raws = {r.message_id: hashlib.sha256(zlib.decompress(r.data)).hexdigest()
                for r in RawMessage.select()}
    return counts, raws


def test_db_copy_moves_everything_and_verifies_it(populated, postgres, tmp_path, write_config,
                                                  run, monkeypatch):
    target = postgres.create_database()
    monkeypatch.setenv(DB_PASSWORD_ENV, PASSWORD)

    result = run("db", "copy", "--to", target, "--password-env", DB_PASSWORD_ENV, "--json",
                 config=populated)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] is True and report["target"] == target
    sqlite = db.connect(f"sqlite:///{tmp_path}/helpdesk.db")
    pg = db.connect(target, password=PASSWORD)
    (sqlite_counts, sqlite_raws), (pg_counts, pg_raws) = counts_and_raws(sqlite), \
        counts_and_raws(pg)
    assert sqlite_counts == pg_counts == {t["table"]: t["rows"] for t in report["tables"]}
    assert sqlite_counts["ticket"] > 30 and sqlite_counts["attachment"] > 5
    assert sqlite_counts["outbox"] == sqlite_counts["failed_message"] == 1
    assert sqlite_raws == pg_raws
    with sqlite.bind_ctx(MODELS):
        assert {m.id: m.sha256 for m in Message.select() if m.direction == "in"} == sqlite_raws

    moved = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                           "resource": "it-support"}],
                         settings={"database": target, "database_password_env": DB_PASSWORD_ENV},
                         path=tmp_path / "moved.toml")
    tickets = run.json("tickets", "list", config=populated)
    assert run.json("tickets", "list", config=moved) == tickets
    for ticket in tickets[::3]:
        assert run.json("tickets", "show", str(ticket["id"]), config=moved) == \
            run.json("tickets", "show", str(ticket["id"]), config=populated)
    assert run.json("status", config=moved)["error_messages"] == 1

    (tmp_path / "box" / "new" / "1800000000.M1P2.moved").write_bytes(message("After the move"))
    assert run("fetch", config=moved).exit_code == 0
    newest = run.json("tickets", "list", config=moved)[-1]
    assert int(newest["number"]) == max(int(t["number"]) for t in tickets) + 1
    assert newest["number"] == str(report["next_ticket_number"])


def test_db_copy_refuses_a_database_that_is_not_empty(populated, postgres, run, monkeypatch):
    target = postgres.create_database()
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # libpq's own variable works too
    assert run("db", "copy", "--to", target, config=populated).exit_code == 0
    before = counts_and_raws(db.connect(target, password=PASSWORD))

    again = run("db", "copy", "--to", target, config=populated)

    assert again.exit_code == 2
    assert "is not empty" in again.stderr and "rows in ticket" in again.stderr
    assert counts_and_raws(db.connect(target, password=PASSWORD)) == before


def test_db_copy_needs_a_sqlite_source_and_a_postgresql_target(populated, postgres, tmp_path,
                                                               write_config, run, monkeypatch):
    monkeypatch.setenv(DB_PASSWORD_ENV, PASSWORD)
    to_sqlite = run("db", "copy", "--to", f"sqlite:///{tmp_path}/other.db", config=populated)
    assert to_sqlite.exit_code == 2 and "must be a postgresql:// URL" in to_sqlite.stderr
    pg_config = write_config([], settings={"database": postgres.create_database(),
                                           "database_password_env": DB_PASSWORD_ENV},
                             path=tmp_path / "pg.toml")
    from_pg = run("db", "copy", "--to", postgres.create_database(), config=pg_config)
    assert from_pg.exit_code == 2 and "moves a SQLite database" in from_pg.stderr
