"""The per-message SQL (sql.py, issue 7): a fixed, small number of queries per message whatever
the database and the mailbox hold (no N+1), and query plans that use the indexes."""

from __future__ import annotations

import pytest
from playhouse.test_utils import count_queries

from helpdesk_fetch.config import load
from helpdesk_fetch.ingest.pipeline import DUPLICATE, STORED, Pipeline, Source
from helpdesk_fetch.store import sql
from helpdesk_fetch.store.models import database
from tests.mails import message, message_id_of

# The queries of one message (BEGIN and COMMIT are not counted):
NEW = 7  # duplicate check, own auto-mail or copy?, ticket number, ticket, message, raw, source key
REPLY = 8  # duplicate check, own auto-mail or copy?, Message-IDs, ticket, update, message, raw, key
SAVEPOINT = 2  # fetch stores each message in a savepoint of its commit group: SAVEPOINT, RELEASE
SOURCE = Source("helpdesk", "it-support")


@pytest.fixture
def pipeline(write_config):
    pipeline = Pipeline(load(write_config()))
    yield pipeline
    pipeline.close()


def counted(pipeline: Pipeline, raw: bytes, key: str) -> tuple[str, int]:
    with count_queries() as queries:
        outcome = pipeline.ingest(SOURCE, raw, key)
    return outcome.kind, queries.count


def reply_to(raw: bytes, subject: str = "Re: it") -> bytes:
    parent = f"<{message_id_of(raw)}>"
    return message(subject, in_reply_to=parent, references=[parent])


def test_a_message_costs_the_same_queries_however_full_the_database(pipeline):
    first = message("Printer broken")
    assert counted(pipeline, first, "k0") == (STORED, NEW)
    assert counted(pipeline, reply_to(first), "k1") == (STORED, REPLY)

    for i in range(300):
        pipeline.ingest(SOURCE, message(f"Request {i}"), f"fill{i}")
    later = message("Laptop slow")

    assert counted(pipeline, later, "k2") == (STORED, NEW)
    assert counted(pipeline, reply_to(later), "k3") == (STORED, REPLY)


def test_tags_attachments_and_duplicates_are_bounded_too(pipeline):
    first = message("Printer broken")
    pipeline.ingest(SOURCE, first, "k0")
    number = database.execute_sql("SELECT number FROM ticket").fetchone()[0]
    tagged = message(f"Re: {pipeline.tagger.tag(number)} Printer broken")
    files = [(f"scan{i}.pdf", "application/pdf", b"%PDF" * 100) for i in range(3)]

    assert counted(pipeline, tagged, "k1") == (STORED, REPLY - 1)  # no Message-ID lookup
    assert counted(pipeline, message("Scans", attachments=files), "k2") == (STORED, NEW + 3)
    assert counted(pipeline, first, "k0") == (DUPLICATE, 2)  # the check, the key remembered
    assert counted(pipeline, first, "k9") == (DUPLICATE, 2)  # same bytes, another key


def test_a_fetch_adds_no_query_per_message_beyond_the_pipeline(dovecot, mail_user, write_config,
                                                                run):
    config = write_config([dovecot.account("helpdesk", mail_user)])
    run("fetch", config=config)  # the database exists: migrations are not counted below

    def fetch_counted(count: int) -> int:
        dovecot.append(mail_user, [message(f"Request {i}") for i in range(count)])
        with count_queries() as queries:
            assert run("fetch", config=config).exit_code == 0
        return queries.count

    few, many = fetch_counted(5), fetch_counted(25)

    assert many - few == 20 * (NEW + SAVEPOINT)


@pytest.mark.parametrize("name", ["duplicate", "own_or_copy", "ticket_by_number", "ticket_by_id",
                                  "tickets_of"])
def test_the_lookups_use_indexes(pipeline, name):
    statements = sql.statements()
    text = statements.tickets_of(["a", "b"]) if name == "tickets_of" else getattr(statements,
                                                                                    name)
    params = {"duplicate": 4, "tickets_of": 2, "own_or_copy": 6}.get(name, 1) * ["x"]

    plan = [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {text}", params)]

    reads = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
    assert reads and all(" USING " in step or step == "SCAN hit" for step in reads), plan
