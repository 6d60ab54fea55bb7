"""Runs of body lines set aside before parsing (bodyruns.py) change nothing a parse finds: every
message parses the same with runs as short as one line as without any; large base64 bodies are
decoded straight from the raw bytes, to the same bytes."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk_fetch.message import bodyruns
from helpdesk_fetch.message.bodyruns import Runs
from helpdesk_fetch.message.parse import ParseError, parse
from tests.mails import message

NEVER = 10**9  # a run this long never occurs: the stdlib parser sees every line


def parsed(raw: bytes, min_run: int):
    try:
        return parse(raw, min_run=min_run)
    except ParseError as error:
        return str(error)


def same_parse(raw: bytes) -> None:
    assert parsed(raw, 1) == parsed(raw, NEVER)
    assert parsed(raw, 2) == parsed(raw, NEVER)


def test_every_message_parses_the_same(mail_bytes):
    same_parse(mail_bytes)


H = b"From: a@example.org\r\nSubject: s\r\nMessage-ID: <x@example.org>\r\nMIME-Version: 1.0\r\n"
B64 = base64.encodebytes(os.urandom(3000)).replace(b"\n", b"\r\n")


def multipart(*parts: bytes, boundary: bytes = b"b", preamble: bytes = b"") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return (H + b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n' + preamble
            + body + b"--" + boundary + b"--\r\nepilogue line\r\nanother\r\n")


ATTACHED = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + B64
CASES = {
    "base64 attachment": multipart(b"Content-Type: text/plain\r\n\r\nhi", ATTACHED),
    "base64 text body": multipart(b"Content-Type: text/plain; charset=utf-8\r\n"
                                  b"Content-Transfer-Encoding: base64\r\n\r\n"
                                  + base64.encodebytes("Grüße\n".encode() * 200)),
    "bad padding": multipart(ATTACHED.rstrip(b"=\r\n") + b"\r\n"),
    "spaces in base64": multipart(ATTACHED.replace(b"\r\nA", b"\r\n A")
                                  .replace(b"\r\nB", b" B\r\n")),
    "junk in base64": multipart(ATTACHED.replace(b"AA", b"A!", 3)),
    "pad mid-way": multipart(ATTACHED + b"QUJD\r\n" + B64[:40] + b"==\r\n"),
    "bare CR": H.replace(b"\r\n", b"\r") + b"\r" + b"line\r" * 30 + b"--b\rmore\r",
    "bare LF": H.replace(b"\r\n", b"\n") + b"\n" + b"line\n" * 30,
    "From lines": H + b"\r\n" + b"text\r\nFrom me\r\n" * 20,
    "colons": H + b"\r\n" + b"plain\r\nkey: value\r\n" * 20,
    "boundary-like lines": multipart(b"Content-Type: text/plain\r\n\r\n" + b"--c\r\nx\r\n" * 10,
                                     b"Content-Type: text/plain\r\n\r\nzz"),
    "8-bit lines": H + b"Content-Type: text/plain; charset=latin-1\r\n\r\n" + b"caf\xe9\r\n" * 30,
    "no header/body separator": b"From: a@example.org\r\nnot a header\r\n" + b"body\r\n" * 20,
    "nested message": multipart(b"Content-Type: message/rfc822\r\n\r\n"
                                + multipart(ATTACHED, boundary=b"inner")),
    "delivery status": (H + b'Content-Type: multipart/report; boundary="r"\r\n\r\n--r\r\n'
                        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n"
                        b"\r\nFinal-Recipient: rfc822; a@b\r\n" + b"junk line\r\n" * 12
                        + b"\r\n--r--\r\n"),
    "preamble": multipart(ATTACHED, preamble=b"This is MIME.\r\n" * 10),
    "unclosed boundary": (H + b'Content-Type: multipart/mixed; boundary="u"\r\n\r\n--u\r\n'
                          + ATTACHED + b"and text\r\n" * 10),
    "placeholder lookalike": H + b"\r\n" + b"HDRUN0123456789abcdef.0.\r\n" * 20,
    "the tool's own mail": message("Screenshot", attachments=[("a.png", "image/png",
                                                               os.urandom(20000))],
                                   html="<p>" + "text " * 3000 + "</p>"),
}


@pytest.mark.parametrize("name", CASES)
def test_hostile_structures_parse_the_same(name):
    same_parse(CASES[name])


LINES = st.sampled_from([
    b"", b"--b", b"--b--", b"--inner", b" folded", b"\tfolded", b"From x", b"X-Head: value",
    b"Content-Type: multipart/mixed; boundary=inner", b"Content-Type: message/rfc822",
    b"Content-Transfer-Encoding: base64", b"QUJDREVGR0g=", b"QUJD", b"plain words", b"=3D",
    b"caf\xe9", b"\x00nul"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=60), st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_any_sequence_of_lines_parses_the_same(lines, newline):
    raw = (b'Content-Type: multipart/mixed; boundary="b"' + newline + newline
           + newline.join(lines) + newline)
    same_parse(raw)


def test_a_large_base64_body_is_decoded_straight_from_the_raw_bytes():
    content = os.urandom(600_000)
    raw = message("Scan", attachments=[("scan.bin", "application/octet-stream", content)])

    skeleton, runs = Runs.take_out(raw)

    assert len(skeleton) < 2000 and len(runs.spans) >= 1
    assert [a.content for a in parse(raw).attachments] == [content]


# The runs are found by searching for the lines that break them (bodyruns._searched), not by the
# regex that defines them (_run_pattern): both must find the very same runs.
PIECES = st.sampled_from([b"", b"a", b"plain words", b"-", b"--b", b" x", b"\tx", b"From x",
                          b"From", b"Fromage", b"a:b", b":", b"x\ry", b"\r", b"\x0c", b"\x0b",
                          b"caf\xe9", b"abc\r\r", b"=3D"])
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n"])


def regex_runs(raw: bytes, start: int, min_lines: int) -> list[tuple[int, int]]:
    return [m.span() for m in bodyruns._run_pattern(min_lines).finditer(raw, start)]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(PIECES, ENDINGS), max_size=50), PIECES,
       st.sampled_from([1, 2, 3, 8]), st.booleans())
def test_the_search_finds_the_runs_the_regex_defines(lines, last, min_lines, from_body):
    raw = b"".join(text + ending for text, ending in lines) + last
    start = bodyruns._body_start(raw) if from_body else 0
    if start and raw[start - 1:start] != b"\n":
        start = 0
    found = bodyruns._searched(raw, start, min_lines)

    assert found == regex_runs(raw, start, min_lines)


@pytest.mark.parametrize("body", [
    b"word words\r\n" * 20,  # one run
    (b"plain line\r\n" * 9 + b"key: value\r\n") * 10,  # runs between colon lines
    b"text\rmore text\r\n" * 10 + b"plain\r\n" * 10,  # bare CRs end runs
    b"line\n" * 12 + b"no line break at the end",
])
def test_a_message_with_few_breaking_lines_is_searched(body):
    raw = H + b"\r\n" + body
    start = bodyruns._body_start(raw)

    assert bodyruns._searched(raw, start, 8) is not None
    assert bodyruns._runs(raw, start, 8) == regex_runs(raw, start, 8)


@pytest.mark.parametrize("body", [
    (b"plain line\r\n" * 9 + b"key: value\r\n") * (bodyruns.MAX_BREAKS + 2),
    (b"- item\r\n" + b"plain line\r\n" * 8) * (bodyruns.MAX_BREAKS + 2),
    (b"x\r:\n" + b"plain line\r\n" * 8) * (bodyruns.MAX_BREAKS + 2),
])
def test_past_max_breaks_the_regex_finds_the_runs(body):
    raw = H + b"\r\n" + body
    start = bodyruns._body_start(raw)

    assert bodyruns._searched(raw, start, 8) is None
    assert bodyruns._runs(raw, start, 8) == regex_runs(raw, start, 8) != []
