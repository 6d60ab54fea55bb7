"""The parse worker (message/budget.py): it parses exactly as the parser in-process does, in
order and ahead of the caller; a message over the budget is stopped and reported, the worker is
replaced and the messages after it are parsed; a large attachment never travels to the worker."""

from __future__ import annotations

import io
import os
import time

import pytest

from helpdesk_fetch.message import worker
from helpdesk_fetch.message.bodyruns import Runs
from helpdesk_fetch.message.budget import WHOLE_BELOW, Parser, ParseTimeout, Request, Unparseable
from helpdesk_fetch.message.parse import ParseError, parse
from tests import hostile_shapes
from tests import kinds_samples as samples
from tests.mails import message
from tests.mailset import CASES as MAILSET
from tests.test_bodyruns import CASES


@pytest.fixture
def parser():
    worker = Parser(60)
    yield worker
    worker.close()


def slow_message() -> bytes:
    """Linear, but seconds of work: 150,000 MIME parts (only 1,000 are walked)."""
    return hostile_shapes.many_parts(5_000_000)


@pytest.mark.parametrize(("elide_at", "whole_below"), [(0, 0), (10**9, 0), (0, 10**9)],
                         ids=["long runs left out", "all runs sent", "sent whole"])
def test_the_worker_parses_like_the_parser(parser, elide_at, whole_below):
    """Also when every base64 run is left with the parent: attachments decoded there, text
    bodies and attached messages fetched by the worker when it needs them; and when each
    message goes whole, taken apart by the worker."""
    parser.elide_at, parser.whole_below = elide_at, whole_below
    mail = [*CASES.values(), *(case.raw for case in MAILSET.values()),
            *(sample() for sample in samples.ALL),
            *(make(20_000) for make in hostile_shapes.SHAPES.values())]

    tickets = [parser.submit(raw) for raw in mail]  # all ahead, then the results in order

    assert [outcome(parser.result, t) for t in tickets] == [outcome(parse, raw) for raw in mail]


def outcome(parsing, *args):
    """What parsing gives: the ParsedMessage, or that it could not."""
    try:
        return parsing(*args)
    except (ParseError, Unparseable):
        return "cannot be parsed"


def test_a_large_attachment_stays_with_the_parent():
    content = os.urandom(2_000_000)
    raw = message("Scan", attachments=[("scan.bin", "application/octet-stream", content)])

    request = Request.of(raw)

    sent = len(request.skeleton) + sum(end - start for (start, end), wanted in zip(
        request.header.spans, request.header.sent, strict=True) if wanted)
    assert sent < 10_000
    with Parser(60) as parser:
        assert [a.content for a in parser.parse(raw).attachments] == [content]


def test_a_message_under_a_mebibyte_goes_whole_and_the_worker_takes_it_apart(monkeypatch):
    """Under WHOLE_BELOW the worker takes the runs out and decodes the attachments (the
    parent's GIL is spared that); from there on the parent does, and keeps what it leaves out."""
    content = os.urandom(300_000)  # a base64 run far over ELIDE_AT
    raw = message("Small", attachments=[("a.bin", "application/octet-stream", content)])
    taken_out = []
    original = Runs.take_out.__func__
    monkeypatch.setattr(Runs, "take_out", classmethod(
        lambda cls, raw, **kw: taken_out.append(len(raw)) or original(cls, raw, **kw)))

    whole = Request.of(raw)
    assert (whole.header.whole, whole.skeleton, whole.runs.spans, taken_out) == (
        True, raw, [], [])  # nothing done here
    wire = io.BytesIO(b"".join(whole.chunks()))
    received = worker._Stream(wire, worker._read_header(wire) or pytest.fail("no header"))
    assert [a.content for a in received.parse().attachments] == [content]
    assert taken_out == [len(raw)]  # by the worker

    pieces = Request.of(raw, whole_below=len(raw))
    assert (pieces.header.whole, taken_out) == (False, [len(raw)] * 2)  # here, in the parent
    assert pieces.header.sent == [False]  # the attachment stays with the parent


def test_whole_below_is_a_size_in_bytes():
    raw = message("Padded", body="x")
    under = raw + b"a" * (WHOLE_BELOW - 1 - len(raw))

    assert Request.of(under).header.whole
    assert not Request.of(under + b"a").header.whole


def test_the_worker_decodes_the_attachments_of_a_message_sent_whole(parser):
    content = os.urandom(300_000)
    raw = message("Small", attachments=[("a.bin", "application/octet-stream", content)])

    (attachment,) = parser.parse(raw).attachments

    assert (attachment.content, attachment.run) == (content, None)


def test_results_not_asked_for_are_dropped(parser):
    first, second, third = (parser.submit(message(f"m{i}")) for i in range(3))

    assert parser.result(third).subject == "m2"
    parser.discard()
    assert parser.parse(message("after")).subject == "after"


def test_a_message_over_the_budget_is_stopped_and_the_next_ones_are_parsed():
    with Parser(1) as parser:
        tickets = [parser.submit(raw) for raw in (message("before"), slow_message(),
                                                  message("after"), message("and after"))]
        assert parser.result(tickets[0]).subject == "before"
        started = time.monotonic()
        with pytest.raises(ParseTimeout, match=r"took longer than parse_seconds \(1 s\)"):
            parser.result(tickets[1])
        assert time.monotonic() - started < 4
        assert [parser.result(t).subject for t in tickets[2:]] == ["after", "and after"]


def test_a_worker_that_dies_costs_one_message(parser):
    parser.parse(message("warm"))
    ticket = parser.submit(slow_message())
    time.sleep(0.5)
    parser._worker.proc.kill()  # the OOM killer, an administrator's kill

    with pytest.raises(Unparseable, match="the parse worker ended while parsing it"):
        parser.result(ticket)
    assert parser.parse(message("next")).subject == "next"


def test_a_worker_started_ahead_that_ended_unused_is_started_again(parser):
    parser.start()  # ahead, for an account whose mail turns out to be stored already
    ended = parser._worker
    ended.proc.kill()  # it died during its start-up
    ended.proc.wait()

    parser.start()  # the next account's

    assert parser._worker is not ended
    assert parser.parse(message("next account")).subject == "next account"


def test_a_worker_never_asked_is_not_waited_for_at_close():
    parser = Parser(10)
    parser.start()
    worker = parser._worker
    parser.close()
    assert worker.proc.returncode == -9  # killed, not waited for through its start-up


def test_a_running_worker_is_kept_by_start(parser):
    parser.parse(message("warm"))
    running = parser._worker
    parser.start()
    assert parser._worker is running


def test_an_empty_message_cannot_be_parsed(parser):
    with pytest.raises(Unparseable, match="^cannot be parsed: the message is empty$"):
        parser.parse(b"\r\n\r\n")
