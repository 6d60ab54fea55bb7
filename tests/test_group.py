"""Group commit (spec §4.2, store/group.py): a fetch run's messages are stored in savepoints of
one transaction; one message's failure undoes no other's; nothing is deleted from the mailbox and
nothing is said to be stored before the commit that holds it; a group is committed before the run
waits for a slow mailbox. The crash tests (test_crash.py) kill runs inside open groups too."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from helpdesk_fetch.config import load
from helpdesk_fetch.ingest.pipeline import FAILED, STORED, Pipeline, Source
from helpdesk_fetch.store.group import ALONE_BYTES, CommitGroup
from tests.chaos import ERROR_FOLDER, fetch, start_fetch, stored
from tests.conftest import PG_PASSWORD
from tests.mails import message, message_id_of
from tests.proxy import Fault, FaultProxy

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL
SOURCE = Source("helpdesk", "it-support")
POISON = "Poison"  # the subject the database refuses (a constraint of the test's own)


def committed_subjects(database_url: str) -> list[str]:
    """The subjects of the inbound messages another session sees: only what is committed."""
    query = "SELECT subject FROM message WHERE direction = 'in' ORDER BY id"
    if database_url.startswith("sqlite:"):
        path = database_url.removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as connection:
            return [row[0] for row in connection.execute(query)]
    import psycopg2

    from tests.pgserver import ROLE

    connection = psycopg2.connect(database_url.replace(f"{ROLE}@", f"{ROLE}:{PG_PASSWORD}@"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()


def reply_to(raw: bytes) -> bytes:
    parent = f"<{message_id_of(raw)}>"
    return message("Re: it", in_reply_to=parent, references=[parent])


def refuse_poison(database) -> None:
    """Make the database refuse any inbound message with the subject POISON (a constraint)."""
    if database.__class__.__name__.startswith("Sqlite"):
        database.execute_sql(f"CREATE TRIGGER poison BEFORE INSERT ON message WHEN NEW.subject = "
                             f"'{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned'); END")
    else:
        database.execute_sql(f"ALTER TABLE message ADD CONSTRAINT poison "
                             f"CHECK (subject <> '{POISON}')")


@pytest.fixture
def pipeline(write_config, open_db):
    refuse_poison(open_db())
    pipeline = Pipeline(load(write_config()))
    yield pipeline
    pipeline.close()


def test_a_group_is_seen_whole_at_its_commit_and_a_refused_message_undoes_no_other(
        pipeline, database_url):
    group = pipeline.group = CommitGroup(pipeline.database)
    done: list[str] = []
    outcomes = []
    for n, subject in enumerate(["First", POISON, "Third"]):
        outcome = pipeline.ingest(SOURCE, message(subject), f"k{n}")
        if outcome.kind != FAILED:
            group.stored(100)
            pipeline.after_commit(lambda subject=subject: done.append(subject))
        outcomes.append(outcome)

    assert [o.kind for o in outcomes] == [STORED, FAILED, STORED]
    assert "the database refused it" in outcomes[1].reason
    assert (committed_subjects(database_url), done) == ([], [])  # nothing before the commit
    group.commit()
    assert committed_subjects(database_url) == ["First", "Third"]
    assert done == ["First", "Third"]  # what waits for the commit ran after it, in order


def test_a_group_rolled_back_runs_none_of_its_actions(pipeline, database_url):
    group = pipeline.group = CommitGroup(pipeline.database)
    done: list[str] = []
    pipeline.ingest(SOURCE, message("Never committed"), "k0")
    group.stored(100)
    pipeline.after_commit(lambda: done.append("deleted"))

    group.rollback()

    assert (committed_subjects(database_url), done) == ([], [])
    pipeline.group = None
    assert pipeline.ingest(SOURCE, message("Never committed"), "k0").kind == STORED  # again


def test_a_group_is_due_by_age_count_or_size(pipeline):
    group = CommitGroup(pipeline.database, max_seconds=60, max_messages=3, max_bytes=1000)
    assert not group.due()  # not open
    group.begin()
    group.stored(10)
    group.stored(10)
    assert not group.due()
    group.stored(10)
    assert group.due()  # three messages
    group.commit()
    group.begin()
    group.stored(1000)
    assert group.due()  # 1,000 bytes
    group.commit()
    aged = CommitGroup(pipeline.database, max_seconds=0.05)
    aged.begin()
    time.sleep(0.1)
    assert aged.due()
    aged.commit()


def test_fetch_sets_aside_a_refused_message_and_stores_the_rest(dovecot, mail_user, write_config,
                                                                open_db, database_url):
    refuse_poison(open_db())
    dovecot.append(mail_user, [message(s) for s in ["One", "Two", POISON, "Four", "Five"]])
    config = write_config([dovecot.account("helpdesk", mail_user)])

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert committed_subjects(database_url) == ["One", "Two", "Four", "Five"]
    assert "the database refused it" in result.stderr
    assert dovecot.messages(mail_user) == []
    [aside] = dovecot.messages(mail_user, dovecot.folder(ERROR_FOLDER))
    assert f"Subject: {POISON}".encode() in aside


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stalled_mailbox_holds_no_group_open(dovecot, mail_user, write_config, tmp_path):
    """The server stops answering after two messages: while the run waits for the third, the
    two are committed (no transaction stays open on a slow mailbox), and still on the server.
    Then the server answers again, and the run ends as usual."""
    dovecot.append(mail_user, [message(f"Stalled {n}") for n in (1, 2, 3)])
    database = tmp_path / "helpdesk.db"
    with FaultProxy(dovecot.ports["pop3"]) as proxy:
        proxy.fault = Fault(stall_after_sent=b"RETR 3\r\n")
        config = write_config([dovecot.account("helpdesk", mail_user, protocol="pop3",
                                               security="none", port=proxy.port)])
        proc = start_fetch(config)
        try:
            for _ in range(600):  # a bound for a broken build, not a speed: 30 s of stall
                if len(stored(database)) == 2 or proc.poll() is not None:
                    break
                time.sleep(0.05)
            committed, still_there = len(stored(database)), len(dovecot.messages(mail_user))
        finally:
            proxy.release()
            _, stderr = proc.communicate(timeout=120)

    assert proxy.fired == 1
    assert (committed, still_there) == (2, 3), stderr
    assert proc.returncode == 0, stderr
    assert sorted(stored(database).values()) == [1, 1, 1]
    assert dovecot.messages(mail_user) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_deadlock_with_another_worker_commits_the_group_and_stores_the_message(
        pipeline, database_url, postgres):
    """PostgreSQL: this run's open group holds ticket A and wants B, another session holds B
    and wants A. PostgreSQL aborts this run's statement (the other session waits longer before
    it looks for deadlocks); the group is committed, which lets the other go on, and the
    message is stored on the second try."""
    import psycopg2

    first, second = message("First"), message("Second")
    pipeline.ingest(SOURCE, first, "a")
    pipeline.ingest(SOURCE, second, "b")  # no group: committed
    ids = [row[0] for row in pipeline.database.execute_sql("SELECT id FROM ticket ORDER BY id")]
    group = pipeline.group = CommitGroup(pipeline.database)
    assert pipeline.ingest(SOURCE, reply_to(first), "c").kind == STORED  # holds ticket A

    other = psycopg2.connect(host=str(postgres.socket_dir), port=postgres.port, user="postgres",
                             dbname=database_url.rsplit("/", 1)[1])
    cursor = other.cursor()
    cursor.execute("SET deadlock_timeout = '60s'")
    cursor.execute("SELECT 1 FROM ticket WHERE id = %s FOR UPDATE", (ids[1],))  # holds B
    backend = other.get_backend_pid()

    def wants_a() -> None:
        cursor.execute("SELECT 1 FROM ticket WHERE id = %s FOR UPDATE", (ids[0],))
        other.commit()

    thread = threading.Thread(target=wants_a)
    thread.start()
    try:
        for _ in range(600):  # until the other session waits for ticket A
            if postgres.admin("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                              (backend,)) == [("Lock",)]:
                break
            time.sleep(0.05)
        outcome = pipeline.ingest(SOURCE, reply_to(second), "d")  # wants B: a deadlock
        group.commit()
    finally:
        group.rollback()  # nothing left after the commit; after a failure: frees ticket A
        thread.join(60)
        other.close()

    assert outcome.kind == STORED, outcome.reason
    assert committed_subjects(database_url) == ["First", "Second", "Re: it", "Re: it"]


def test_a_large_message_has_the_open_group_committed_first(pipeline, database_url):
    """Storing a large message takes time; the messages before it do not wait for it."""
    group = pipeline.group = CommitGroup(pipeline.database)
    pipeline.ingest(SOURCE, message("Small"), "k0")
    group.stored(100)
    assert committed_subjects(database_url) == []

    group.begin(ALONE_BYTES)

    assert committed_subjects(database_url) == ["Small"]
    assert group.open
    group.commit()


def test_an_interrupt_during_a_commit_waits_for_its_actions(pipeline, database_url):
    """Ctrl-C or SIGTERM as a group commits: the commit and what waits for it (the deletes,
    the counts) are done first, so that nothing is stored without being counted."""
    import os
    import signal

    from helpdesk_fetch import interrupts

    group = pipeline.group = CommitGroup(pipeline.database)
    done: list[str] = []
    for n, subject in enumerate(["First", "Second"]):
        pipeline.ingest(SOURCE, message(subject), f"k{n}")
        group.stored(100)
        pipeline.after_commit(lambda subject=subject: done.append(subject))
    previous = signal.signal(signal.SIGINT, interrupts.handle)
    try:
        pipeline.after_commit(lambda: os.kill(os.getpid(), signal.SIGINT))  # as it commits
        group.stored(0)
        group.after_commit(lambda: done.append("after the signal"))
        with pytest.raises(interrupts.Interrupted):
            group.commit()
    finally:
        signal.signal(signal.SIGINT, previous)

    assert done == ["First", "Second", "after the signal"]
    assert committed_subjects(database_url) == ["First", "Second"]
    assert not group.open
