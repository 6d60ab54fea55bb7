"""Hostile and broken mail (spec §4.3, §4.4): the mail set (tests/mailset) delivered byte for
byte into a real mailbox and fetched over IMAP and POP3, each case checked for what it promises;
any collection of mail over POP3; and a property test that mutates messages of a collection.
Each message is ingested with what can be recovered, or set aside with its reason; none crashes
the run or blocks the message after it."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk_fetch.config import load
from helpdesk_fetch.ingest.pipeline import DUPLICATE, FAILED, IGNORED, STORED, Pipeline, Source
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import IgnoredMessage, Message, RawMessage
from tests import hostile_shapes
from tests.chaos import ERROR_FOLDER, fetch
from tests.mails import message
from tests.mailset import CASES, View
from tests.proc import helpdesk_fetch

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow


def _huge() -> bytes:
    """30 MB with its attachment: over the default max_message_bytes of 25 MiB."""
    blob = base64.encodebytes(b"\xa5" * (22 * 1024 * 1024 + 600_000))
    return (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n"
            b"Message-ID: <huge@example.org>\r\nSubject: case huge\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="h"\r\n\r\n--h\r\nContent-Type: text/plain'
            b'\r\n\r\nsee attachment\r\n--h\r\nContent-Type: application/octet-stream; name="b.bin"'
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + blob.replace(b"\n", b"\r\n") + b"--h--\r\n")


def stored_views(database: Path) -> list[tuple[str | None, View]]:
    """(Message-ID, view) of each inbound ticket message, with its attachments in order."""
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT id, subject, text, html, from_addr, from_name, to_addrs,"
                            " message_id, date FROM message WHERE direction = 'in'").fetchall()
        attachments = conn.execute("SELECT message_id, filename, content_type, size, sha256"
                                   " FROM attachment ORDER BY id").fetchall()
    return [(row["message_id"], View(
        row["subject"], row["from_addr"], row["from_name"], json.loads(row["to_addrs"]),
        row["message_id"], row["date"] and dt.datetime.fromisoformat(row["date"]), row["text"],
        row["html"], [tuple(a)[1:] for a in attachments if a[0] == row["id"]])) for row in rows]


def failures(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT subject, reason FROM failed_message").fetchall()


def ignored(database: Path) -> dict[str, str]:
    """Message-ID -> reason of the mail that opened no ticket (spec §9.4)."""
    with sqlite3.connect(database) as conn:
        return dict(conn.execute("SELECT message_id, reason FROM ignored_message").fetchall())


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_mail_set_over_imap_and_pop3(protocol, dovecot, mail_user, write_config, tmp_path):
    mail = []
    for name, case in CASES.items():
        mail += [case.raw, message(f"canary after {name}")]
    mail += [_huge(), message("canary after huge")]
    dovecot.deliver(mail_user, mail)
    config = write_config([dovecot.account("box", mail_user, protocol=protocol)])

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stored = stored_views(tmp_path / "helpdesk.db")
    aside = failures(tmp_path / "helpdesk.db")
    canaries = [v for _, v in stored if v.subject.startswith("canary after")]
    assert len(canaries) == len(CASES) + 1  # nothing blocked the message after it
    kept = ignored(tmp_path / "helpdesk.db")
    for name, case in CASES.items():
        if case.expect.ignored:  # an auto-reply or bounce of no ticket: its bytes are kept
            assert kept.get(case.expect.message_id) == case.expect.ignored, name
        if case.expect.set_aside or case.expect.duplicate_of or case.expect.ignored:
            continue
        field, value = case.key()
        found = [view for _, view in stored if getattr(view, field) == value]
        assert len(found) == 1, f"{name}: stored {len(found)} times; set aside: {aside}"
        assert case.expect.problems(found[0]) == [], f"{name} ({case.why})"
    set_aside = [c for c in CASES.values() if c.expect.set_aside]
    too_large = [reason for _, reason in aside if "max_message_bytes" in reason]
    assert len(too_large) == 1 and len(aside) == len(set_aside) + 1, aside
    assert "max_message_bytes" in result.stderr
    twins = [c for c in CASES.values() if c.expect.duplicate_of]
    assert len(kept) == len([c for c in CASES.values() if c.expect.ignored]), kept
    assert len(stored) + len(aside) + len(twins) + len(kept) == len(mail)
    left = dovecot.messages(mail_user)
    if protocol == "imap":
        assert left == []
        assert len(dovecot.messages(mail_user, ERROR_FOLDER)) == len(aside)
    else:  # POP3 leaves them on the server and skips them from now on
        assert len(left) == len(aside)
        assert (fetch(config).returncode, len(dovecot.messages(mail_user))) == (0, len(aside))


# -- the adversarial shapes of issue 20.1, and the parse budget --------------------------------

def test_the_adversarial_shapes_never_stall_the_mailbox(dovecot, mail_user, write_config,
                                                        tmp_path):
    """Each shape at 100 KB and 1 MB, followed by a normal message: each is stored (parsed in
    linear time) or set aside by parse_seconds; every normal message is stored."""
    shapes = hostile_shapes.generate()
    mail = []
    for name, size, raw in shapes:
        mail += [raw, message(f"canary after {name} {size}")]
    dovecot.append(mail_user, mail)
    config = write_config([dovecot.account("box", mail_user)], settings={"parse_seconds": 20})

    started = time.monotonic()
    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 240  # 28 shapes; each at most 20 s, most far less
    with sqlite3.connect(tmp_path / "helpdesk.db") as conn:
        stored = [row[0] for row in conn.execute(
            "SELECT subject FROM message WHERE direction = 'in'")]
        ignored = [row[0] for row in conn.execute("SELECT subject FROM ignored_message")]
    assert len([s for s in stored if s.startswith("canary after")]) == len(shapes)
    aside = failures(tmp_path / "helpdesk.db")
    assert all("took longer than parse_seconds" in reason for _, reason in aside), aside
    filed = ([s for s in stored if s.startswith("shape ")] + [subject for subject, _ in aside]
             + ignored)  # the bounce-shaped one names nothing stored: backscatter
    assert len(filed) == len(shapes) and dovecot.messages(mail_user) == []


def slow_message(subject: str) -> bytes:
    """Linear, but seconds of parsing: 150,000 MIME parts."""
    return hostile_shapes.many_parts(5_000_000).replace(b"shape many-parts", subject.encode())


def test_a_message_over_parse_seconds_is_set_aside_and_the_run_goes_on(dovecot, mail_user,
                                                                      write_config, tmp_path):
    dovecot.append(mail_user, [message("before"), slow_message("too slow"), message("after")])
    config = write_config([dovecot.account("box", mail_user)], settings={"parse_seconds": 1})

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert "parsing took longer than parse_seconds (1 s)" in result.stderr
    assert {v.subject for _, v in stored_views(tmp_path / "helpdesk.db")} == {"before", "after"}
    assert failures(tmp_path / "helpdesk.db") == [
        ("too slow", "parsing took longer than parse_seconds (1 s)")]
    assert len(dovecot.messages(mail_user, ERROR_FOLDER)) == 1
    assert dovecot.messages(mail_user) == []


def test_deliver_and_errors_retry_parse_under_the_same_budget(dovecot, mail_user, write_config,
                                                            tmp_path, run):
    """Every path that parses goes through the parse worker: a slow message piped in is kept in
    quarantine (65); after parse_seconds is raised, errors retry ingests it and the one fetch
    set aside."""
    dovecot.append(mail_user, [slow_message("slow by IMAP")])
    settings = {"parse_seconds": 1}
    config = write_config([dovecot.account("box", mail_user)], settings=settings)
    assert fetch(config).returncode == 0
    piped = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                           input=slow_message("slow by pipe"))
    assert piped.returncode == 65, piped.stderr
    assert b"parsing took longer than parse_seconds (1 s)" in piped.stderr
    assert len(failures(tmp_path / "helpdesk.db")) == 2

    config = write_config([dovecot.account("box", mail_user)], settings={"parse_seconds": 120})
    retried = run("errors", "retry", "--all", config=config)

    assert retried.exit_code == 0, retried.output
    subjects = {v.subject for _, v in stored_views(tmp_path / "helpdesk.db")}
    assert subjects == {"slow by IMAP", "slow by pipe"}
    assert dovecot.messages(mail_user, ERROR_FOLDER) == []


def test_run_budget_seconds_holds_while_messages_are_slow_to_parse(dovecot, mail_user,
                                                                  write_config, tmp_path):
    """No new message after the run's budget: the rest wait for the next run, whatever their
    parsing would cost."""
    dovecot.append(mail_user, [slow_message(f"slow {i}") for i in range(8)])
    config = write_config([dovecot.account("box", mail_user)],
                          settings={"parse_seconds": 2, "run_budget_seconds": 3})

    started = time.monotonic()
    result = fetch(config)
    took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert took < 3 + 2 + 5, f"{took:.1f} s"  # the budget, one parse, start-up and commits
    assert "run_budget_seconds used up" in result.stderr, result.stderr
    left = len(dovecot.messages(mail_user))
    # Each takes about parse_seconds to parse: set aside, or stored when it made it in time.
    done = failures(tmp_path / "helpdesk.db") + stored_views(tmp_path / "helpdesk.db")
    assert left > 0 and left + len(done) == 8, result.stderr


def test_any_collection_byte_for_byte_over_pop3(mail_collection, dovecot, mail_user,
                                                write_config, tmp_path):
    """Unlike IMAP APPEND (test_corpus.py), local delivery keeps the files' own bytes: bare LFs,
    8-bit headers, lines over POP3's limits. A canary follows each message."""
    mail = []
    for number, raw in enumerate(mail_collection):
        mail += [raw, message(f"canary {number}")]
    dovecot.deliver(mail_user, mail)
    served = dovecot.messages(mail_user)
    config = write_config([dovecot.account("corpus", mail_user, protocol="pop3")])

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    canaries = [v for _, v in stored_views(tmp_path / "helpdesk.db")
                if v.subject.startswith("canary ")]
    assert len(canaries) == len(mail_collection)
    left = dovecot.messages(mail_user)  # POP3 leaves the messages it could not ingest
    assert len(failures(tmp_path / "helpdesk.db")) == len(left)
    with sqlite3.connect(tmp_path / "helpdesk.db") as conn:
        count = conn.execute("SELECT count(*) FROM message WHERE direction = 'in'").fetchone()[0]
        kept, duplicates = conn.execute("SELECT ignored, duplicates FROM account_run").fetchone()
    # Byte-identical copies and copies of one mail (spec §4.1) are stored once; bounces and
    # auto-replies of no ticket are kept as ignored mail (§9.4).
    assert duplicates >= len(served) - len(set(served))
    assert count + kept + duplicates + len(left) == len(served)


# -- property: mutated mail never crashes the pipeline or blocks the next message --------------

_TOKENS = [b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"=?", b"?=", b"=?utf-8?B?", b"?Q?",
           b"--", b'boundary="', b"Content-Type: multipart/mixed; boundary=x\r\n", b"charset=",
           b"name*0*=", b"''", b"<", b">", b'"', b"\\", b":", b";", b" ", b"\t", b"=\r\n",
           b"Content-Transfer-Encoding: base64\r\n", b"begin 644 x\r\n",
           b"Content-Type: message/rfc822\r\n"]
_where = st.floats(min_value=0, max_value=1)
MUTATIONS = st.lists(st.one_of(
    st.tuples(st.just("insert"), _where,
              st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=24))),
    st.tuples(st.just("delete"), _where, st.integers(1, 400)),
    st.tuples(st.just("flip"), _where, st.integers(0, 255)),
    st.tuples(st.just("copy"), _where, st.integers(1, 2000)),
    st.tuples(st.just("cut"), _where, st.just(0))), min_size=1, max_size=8)


def mutate(raw: bytes, operations) -> bytes:
    data = bytearray(raw)
    for kind, where, arg in operations:
        at = int(where * len(data))
        if kind == "insert":
            data[at:at] = arg
        elif kind == "delete":
            del data[at:at + arg]
        elif kind == "flip" and at < len(data):
            data[at] = arg
        elif kind == "copy":
            data[at:at] = data[at:at + arg]
        elif kind == "cut":
            del data[max(at, 1):]
    return bytes(data)


@pytest.fixture
def pipeline(write_config):
    """The pipeline fetch runs, on a database of this test; shared by all examples on purpose:
    each one must leave it fit for the next message."""
    pipeline = Pipeline(load(write_config()))
    yield pipeline
    pipeline.close()


_examples = itertools.count()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_mail_is_stored_or_set_aside(mail_collection, pipeline, data):
    """Through parse + pipeline, in-process (300 examples per collection): stored whole, or
    failed with a reason and recorded; either way the next message is stored."""
    raw = mutate(data.draw(st.sampled_from(mail_collection), label="message"),
                 data.draw(MUTATIONS, label="mutations"))
    number = next(_examples)
    source = Source("fuzz", "it-support")

    outcome = pipeline.ingest(source, raw, f"fuzz:{number}")

    assert outcome.kind in (STORED, IGNORED, DUPLICATE, FAILED)
    if outcome.kind == IGNORED:  # a bounce or auto-reply of no ticket: kept whole (§9.4)
        kept = IgnoredMessage.get_by_id(outcome.message_row)
        assert blobs.decompress(kept.raw) == raw and kept.reason == outcome.ignored
    elif outcome.kind == FAILED:
        assert outcome.reason
        pipeline.record_failure(source, outcome, raw=raw, size=len(raw), location="test")
    elif outcome.kind == STORED:
        stored = Message.get(Message.sha256 == outcome.sha256)
        for text in (stored.text, stored.subject, stored.from_addr, stored.html or ""):
            assert "\x00" not in text
            text.encode("utf-8")
        assert blobs.decompress(RawMessage.get_by_id(stored.id).data) == raw  # kept whole
    assert pipeline.ingest(source, message(f"canary {number}"), f"canary:{number}").kind == STORED
