"""Hostile and broken mail (spec §4.3, §4.4): the generated cases of issue 4 and the shared corpus,
delivered byte for byte into a real mailbox and fetched over IMAP and POP3; and a property test
that mutates corpus messages. Each message is ingested with what can be recovered, or set aside
with its reason; none crashes the run or blocks the message after it."""

from __future__ import annotations

import base64
import itertools
import json
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk_fetch.config import load
from helpdesk_fetch.ingest.pipeline import DUPLICATE, FAILED, STORED, Pipeline, Source
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import Message, RawMessage
from tests import hostile_shapes
from tests.chaos import ERROR_FOLDER, fetch
from tests.mails import message

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow

H = (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n"
     b"Message-ID: <%s@example.org>\r\n")


def _nested(depth: int) -> bytes:
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
                       for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return (H % b"nested" + b"Subject: case nested-1000-deep\r\nMIME-Version: 1.0\r\n" + opening
            + b"Content-Type: text/plain\r\n\r\ndeep down" + closing)


def _huge() -> bytes:
    """30 MB with its attachment: over the default max_message_bytes of 25 MiB."""
    blob = base64.encodebytes(b"\xa5" * (22 * 1024 * 1024 + 600_000))
    return (H % b"huge" + b"Subject: case huge\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="h"\r\n\r\n--h\r\nContent-Type: text/plain'
            b'\r\n\r\nsee attachment\r\n--h\r\nContent-Type: application/octet-stream; name="b.bin"'
            b"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + blob.replace(b"\n", b"\r\n") + b"--h--\r\n")


# name -> (raw message, what must be recovered from it)
CASES = {
    "to-quote": (b'From: a@example.org\r\nTo: "\r\nSubject: case to-quote\r\n\r\nbody\r\n',
                 lambda m: m["to"] == [] and m["text"].strip() == "body"),
    "name-star": (
        b"From: a@example.org\r\nSubject: case name-star\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        b"\r\nhi\r\n--b\r\nContent-Type: application/pdf; name*\r\nContent-Disposition: "
        b"attachment; filename*\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n",
        lambda m: m["text"].strip() == "hi" and m["attachments"] == [5]),
    "exchange-id": (b"From: a@example.org\r\nSubject: case exchange-id\r\nMessage-ID: "
                    b"<[3f2a-b1@EXCH01.corp.local]>\r\n\r\nbody\r\n",
                    lambda m: m["message_id"] == "[3f2a-b1@EXCH01.corp.local]"),
    "unknown-charset": (
        b"From: a@example.org\r\nSubject: case unknown-charset =?x-unknown-42?Q?caf=E9?=\r\n"
        b'Content-Type: text/plain; charset="x-unknown-42"\r\nContent-Transfer-Encoding: 8bit\r\n'
        b"\r\ncaf\xe9 cr\xe8me\r\n",
        lambda m: "café crème" in m["text"] and m["subject"].endswith("café")),
    "nested-1000-deep": (_nested(1000), lambda m: "deep down" in m["text"]),
    "boundary-never-closes": (
        H % b"unclosed" + b"Subject: case boundary-never-closes\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n--never\r\nContent-Type: '
        b"text/plain\r\n\r\nfirst part, and no closing boundary\r\n",
        lambda m: "no closing boundary" in m["text"]),
    "nul-bytes": (H % b"nul" + b"Subject: case nul-bytes\r\n\r\nbody with \x00NUL\x00 bytes\r\n",
                  lambda m: "NUL" in m["text"] and "\x00" not in m["text"]),
    "bare-cr": (b"From: a@example.org\rSubject: case bare-cr\r\rbody\rline two\r",
                lambda m: "line two" in m["text"] and m["from"] == "a@example.org"),
    "bare-lf": (b"From: a@example.org\nSubject: case bare-lf\n\nbody\nline two\n",
                lambda m: "line two" in m["text"]),
    "5000-byte-line": (H % b"long" + b"Subject: case 5000-byte-line\r\n\r\n" + b"x" * 5000
                       + b"\r\n", lambda m: m["text"].strip() == "x" * 5000),
    "8bit-headers": (b"From: J\xc3\xbcrgen <j@example.org>\r\n"
                     b"Subject: case 8bit-headers Gr\xfc\xdfe\r\n"
                     b"To: M\xfcller <m@example.org>\r\n\r\nbody\r\n",
                     lambda m: m["subject"] == "case 8bit-headers Grüße"
                     and m["from_name"] == "Jürgen" and m["to"] == ["m@example.org"]),
    "rfc2047-split": (b"From: a@example.org\r\nSubject: case rfc2047-split =?utf-8?Q?Gr=C3?=\r\n"
                      b" =?utf-8?Q?=BC=C3=9Fe?= und\r\n =?iso-8859-1?B?S/ZsbiBpc3Qg?=\r\n"
                      b"\t=?iso-8859-1?B?c2No9m4=?=\r\n\r\nbody\r\n",
                      lambda m: m["subject"] == "case rfc2047-split Grüße und Köln ist schön"),
    "missing-from-date-id": (b"Subject: case missing-from-date-id\r\n\r\nbody\r\n",
                             lambda m: (m["from"], m["message_id"], m["date"]) == ("", None,
                                                                                  None)),
}


def stored_messages(database: Path) -> dict[str, dict]:
    """Inbound ticket messages by subject, with the attachment sizes."""
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT id, subject, text, from_addr, from_name, to_addrs, message_id,"
                            " date FROM message WHERE direction = 'in'").fetchall()
        sizes = conn.execute("SELECT message_id, size FROM attachment").fetchall()
    found = {}
    for row in rows:
        found[row["subject"]] = {
            "subject": row["subject"], "text": row["text"], "from": row["from_addr"],
            "from_name": row["from_name"], "to": json.loads(row["to_addrs"]),
            "message_id": row["message_id"], "date": row["date"],
            "attachments": [size for owner, size in sizes if owner == row["id"]]}
    return found


def failures(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT subject, reason FROM failed_message").fetchall()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_generated_hostile_mail(protocol, dovecot, mail_user, write_config, tmp_path):
    mail = []
    for name, (raw, _) in CASES.items():
        mail += [raw, message(f"canary after {name}")]
    mail += [_huge(), message("canary after huge")]
    dovecot.deliver(mail_user, mail)
    config = write_config([dovecot.account("box", mail_user, protocol=protocol)])

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stored = stored_messages(tmp_path / "helpdesk.db")
    aside = failures(tmp_path / "helpdesk.db")
    canaries = [s for s in stored if s.startswith("canary after")]
    assert len(canaries) == len(CASES) + 1  # nothing blocked the message after it
    for name, (_, recovered) in CASES.items():
        row = next((m for s, m in stored.items() if s.startswith(f"case {name}")), None)
        assert row is not None, f"{name} was not ingested; set aside: {aside}"
        assert recovered(row), f"{name}: {row}"
    assert len(aside) == 1 and "max_message_bytes" in aside[0][1], aside
    assert "max_message_bytes" in result.stderr
    left = dovecot.messages(mail_user)
    assert len(stored) + len(aside) == len(mail)
    if protocol == "imap":
        assert left == []
        assert len(dovecot.messages(mail_user, ERROR_FOLDER)) == 1
    else:  # POP3 leaves it on the server and skips it from now on
        assert len(left) == 1
        assert (fetch(config).returncode, len(dovecot.messages(mail_user))) == (0, 1)


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
    assert len([s for s in stored if s.startswith("canary after")]) == len(shapes)
    aside = failures(tmp_path / "helpdesk.db")
    assert all("took longer than parse_seconds" in reason for _, reason in aside), aside
    filed = [s for s in stored if s.startswith("shape ")] + [subject for subject, _ in aside]
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
    assert set(stored_messages(tmp_path / "helpdesk.db")) == {"before", "after"}
    assert failures(tmp_path / "helpdesk.db") == [
        ("too slow", "parsing took longer than parse_seconds (1 s)")]
    assert len(dovecot.messages(mail_user, ERROR_FOLDER)) == 1
    assert dovecot.messages(mail_user) == []


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
    assert left > 0 and left + len(failures(tmp_path / "helpdesk.db")) == 8, result.stderr


CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
CORPUS_MAIL = [path.read_bytes() for path in sorted(CORPUS.rglob("*.eml"))]


def test_the_corpus_byte_for_byte_over_pop3(dovecot, mail_user, write_config, tmp_path):
    """Unlike IMAP APPEND (test_corpus.py), local delivery keeps the files' own bytes: bare LFs,
    8-bit headers, lines over POP3's limits. A canary follows each corpus message."""
    assert len(CORPUS_MAIL) >= 100, f"the shared corpus is missing at {CORPUS}"
    mail = []
    for number, raw in enumerate(CORPUS_MAIL):
        mail += [raw, message(f"canary {number}")]
    dovecot.deliver(mail_user, mail)
    served = dovecot.messages(mail_user)
    config = write_config([dovecot.account("corpus", mail_user, protocol="pop3")])

    result = fetch(config)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    stored = stored_messages(tmp_path / "helpdesk.db")
    assert len([s for s in stored if s.startswith("canary ")]) == len(CORPUS_MAIL)
    left = dovecot.messages(mail_user)  # POP3 leaves the messages it could not ingest
    assert len(failures(tmp_path / "helpdesk.db")) == len(left)
    with sqlite3.connect(tmp_path / "helpdesk.db") as conn:
        count = conn.execute("SELECT count(*) FROM message WHERE direction = 'in'").fetchone()[0]
    assert count + len(left) == len(set(served))  # byte-identical copies are stored once


# -- property: mutated corpus mail never crashes the pipeline or blocks the next message -------

_TOKENS = [b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\xc3", b"=?", b"?=", b"=?utf-8?B?", b"?Q?",
           b"--", b'boundary="', b"Content-Type: multipart/mixed; boundary=x\r\n", b"charset=",
           b"name*0*=", b"''", b"<", b">", b'"', b"\\", b":", b";", b" ", b"\t", b"=\r\n",
           b"Content-Transfer-Encoding: base64\r\n", b"begin 644 x\r\n",
           b"Content-Type: message/rfc822\r\n"]
_where = st.floats(min_value=0, max_value=1)
MUTATIONS = st.tuples(
    st.sampled_from(range(len(CORPUS_MAIL))),
    st.lists(st.one_of(
        st.tuples(st.just("insert"), _where,
                  st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=24))),
        st.tuples(st.just("delete"), _where, st.integers(1, 400)),
        st.tuples(st.just("flip"), _where, st.integers(0, 255)),
        st.tuples(st.just("copy"), _where, st.integers(1, 2000)),
        st.tuples(st.just("cut"), _where, st.just(0))), min_size=1, max_size=8))


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
@given(case=MUTATIONS)
def test_mutated_corpus_mail_is_stored_or_set_aside(pipeline, case):
    """Through parse + pipeline, in-process (300 examples): stored whole, or failed with a
    reason and recorded; either way the next message is stored."""
    index, operations = case
    raw = mutate(CORPUS_MAIL[index], operations)
    number = next(_examples)
    source = Source("fuzz", "it-support")

    outcome = pipeline.ingest(source, raw, f"fuzz:{number}")

    assert outcome.kind in (STORED, DUPLICATE, FAILED)
    if outcome.kind == FAILED:
        assert outcome.reason
        pipeline.record_failure(source, outcome, raw=raw, size=len(raw), location="test")
    elif outcome.kind == STORED:
        stored = Message.get(Message.sha256 == outcome.sha256)
        for text in (stored.text, stored.subject, stored.from_addr, stored.html or ""):
            assert "\x00" not in text
            text.encode("utf-8")
        assert blobs.decompress(RawMessage.get_by_id(stored.id).data) == raw  # kept whole
    assert pipeline.ingest(source, message(f"canary {number}"), f"canary:{number}").kind == STORED
