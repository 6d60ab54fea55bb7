"""Parsing (spec §4.3, §4.4): every case of the mail set gives what it promises; the gaps real
mail showed stay closed; and parsing is linear in the size of its input (issue 20.1): every
adversarial shape of tests/hostile_shapes.py, at 100 KB and at 1 MB, is parsed (and its
Authentication-Results read, and classified) within a generous bound, and the pieces that
replaced quadratic ones do what those did."""

from __future__ import annotations

import email.message
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk_fetch.message import authres, classify
from helpdesk_fetch.message.budget import Parser
from helpdesk_fetch.message.htmltext import MAX_RENDER, html_to_text
from helpdesk_fetch.message.parse import (
    MAX_HEADER,
    MAX_SUBJECT,
    ParseError,
    addresses,
    parse,
    parse_headers,
    split_params,
)
from tests import hostile_shapes
from tests.mailset import CASES, View


@pytest.mark.parametrize("name", CASES)
def test_each_case_of_the_mail_set_gives_what_it_promises(name):
    case = CASES[name]
    if case.expect.set_aside:
        with pytest.raises(ParseError):
            parse(case.raw)
        return

    parsed = parse(case.raw)

    assert case.expect.problems(View.of(parsed)) == [], case.why


def test_a_sender_without_a_domain_keeps_its_name_and_local_part():
    parsed = parse(b"From: Moderator-Address <Moderator>\r\nReply-To: list\r\n"
                   b"To: helpdesk, carol@example.org\r\nSubject: approve\r\n\r\nbody\r\n")

    assert (parsed.from_name, parsed.from_addr) == ("Moderator-Address", "moderator")
    assert parsed.reply_to is None  # a reply is never planned to a domain-less address
    assert parsed.to_addrs == ["carol@example.org"]


@pytest.mark.parametrize("value", ['""', "<>", '"Just A Name"', "two words", "a;b",
                                   "(comment only)", "=?utf-8?B?TXlTdXJ2ZXk=?=", "@example.org",
                                   "a@b@example.org", "carol@"])
def test_a_from_that_is_no_address_gives_no_sender(value):
    parsed = parse(b"From: " + value.encode() + b"\r\nSubject: s\r\n\r\nbody\r\n")
    assert parsed.from_addr == ""


@pytest.mark.parametrize(("value", "name", "address"), [
    ("carol@example.org dave@example.org", "", "carol@example.org"),  # no comma
    ("Carol Customer carol@example.org", "Carol Customer", "carol@example.org"),  # no brackets
    ("=?utf-8?q?J=C3=B6rg?= joerg@example.de", "Jörg", "joerg@example.de"),
    ("carol@example.org (Carol) dave@example.org", "", "carol@example.org"),
    ('"Carol" carol@example.org', "Carol", "carol@example.org"),
])
def test_a_from_without_its_commas_or_brackets_gives_the_first_whole_address(value, name,
                                                                             address):
    """Not a piece of one: the stdlib reads "a@x b@y" as "@y", "Name a@x" as "name a@x"."""
    parsed = parse(f"From: {value}\r\nTo: helpdesk@example.com support@example.com\r\n"
                   "Subject: s\r\n\r\nbody\r\n".encode())

    assert (parsed.from_name, parsed.from_addr) == (name, address)
    assert parsed.to_addrs == ["helpdesk@example.com", "support@example.com"]


@pytest.mark.parametrize("value", ["Boss boss@example.org <mallory@evil.example>",
                                   '"x" boss@example.org <mallory@evil.example>'])
def test_an_address_in_a_display_name_never_comes_before_the_real_one(value):
    parsed = parse(f"From: {value}\r\nSubject: s\r\n\r\nbody\r\n".encode())
    assert parsed.from_addr == "mallory@evil.example"


@pytest.mark.parametrize("value", ['"boss@example.org" <boss>', '(boss@example.org) x y',
                                   '<Undisclosed-Recipient:@example.org;>',
                                   '(a (b) boss@example.org) x', '(a \\) boss@example.org) x',
                                   '"Boss boss@example.org x@y', "=?utf-8?q?boss@example.org?= x"])
def test_an_address_in_quotes_a_comment_or_an_encoded_word_is_never_taken_for_the_sender(
        value):
    parsed = parse(f"From: {value}\r\nSubject: s\r\n\r\nbody\r\n".encode())
    assert "@" not in parsed.from_addr  # a domain-less one at most (boss), never the boss


@pytest.mark.parametrize(("value", "expected"), [
    ("Name <a@[192.0.2.1]>", ["a@[192.0.2.1]"]),  # a domain literal
    ('"a\\"b"@example.org', ['"a\\"b"@example.org']),  # an escaped quote in a quoted local part
    ('"john doe"@example.org', ['"john doe"@example.org']),
    ("Name a@example.org, c@example.org", ["c@example.org", "a@example.org"]),  # one unread
    ("a@example.org b@", ["a@example.org"]),  # the stdlib reads nothing of it
])
def test_whole_addresses_of_every_form_are_kept(value, expected):
    """What the stdlib reads comes first, what stands beside it after."""
    assert [address for _, address in addresses(value)] == expected


@pytest.mark.parametrize("fold", [b"\r\n ", b"\r\n\t", b"\n ", b"\r "])
def test_a_boundary_folded_inside_its_quotes_is_unfolded(fold):
    """RFC 5322 §2.2.3: unfolding removes the line break and keeps the white space."""
    nl = fold[:-1]
    raw = nl.join([b"From: a@example.org", b"Subject: folded", b"MIME-Version: 1.0",
                   b'Content-Type: multipart/mixed; boundary="foo' + fold + b'bar"', b"",
                   b"--foo" + fold[-1:] + b"bar", b"Content-Type: text/plain", b"", b"hello",
                   b"--foo" + fold[-1:] + b"bar",
                   b'Content-Type: application/pdf; name="a.pdf"', b"", b"%PDF",
                   b"--foo" + fold[-1:] + b"bar--", b""])

    parsed = parse(raw)

    assert parsed.text.strip() == "hello"
    assert [(a.filename, a.content) for a in parsed.attachments] == [("a.pdf", b"%PDF")]


def test_text_has_one_kind_of_line_end_whatever_the_mail_had():
    """A plain part read over IMAP has CRLF, text rendered from HTML LF: `tickets show --json`
    gives LF for both."""
    raw = (b"From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nHallo,\r\n\r\nder Drucker.\r\n")
    assert parse(raw).text == "Hallo,\n\nder Drucker.\n"


def test_without_any_empty_line_the_first_line_that_is_no_header_starts_the_body():
    parsed = parse(b"From: a@example.org\r\nSubject: VPN\r\nThe VPN is down: since 9.\r\n"
                   b"X-Not: a header, but body text\r\n")

    assert parsed.subject == "VPN"
    assert parsed.text == "The VPN is down: since 9.\nX-Not: a header, but body text\n"


def test_with_no_header_after_it_the_first_line_that_is_no_header_starts_the_body():
    parsed = parse(b"From: a@example.org\r\nSubject: VPN\r\nHello,\r\n\r\nthe VPN is down.\r\n")

    assert (parsed.subject, parsed.text) == ("VPN", "Hello,\n\nthe VPN is down.\n")


def test_a_stray_line_in_the_header_block_is_dropped_and_the_headers_after_it_kept():
    parsed = parse(b"From: a@example.org\r\nthis is junk\r\nSubject: kept\r\n\r\nbody\r\n")

    assert (parsed.subject, parsed.text) == ("kept", "body\n")


# -- linear in the size of the input (issue 20.1) ----------------------------------------------

def bound(size: int) -> float:
    """Seconds a shape of *size* bytes may take: far more than a linear parse needs on a busy
    machine (0.1-2 s per MB), far less than the quadratic steps took (100 KB: 8 to over 60 s)."""
    return 3.0 + 10.0 * size / 1_000_000


@pytest.fixture(scope="module")
def parser():
    """A worker that stops any shape still quadratic at its bound, instead of for minutes."""
    worker = Parser(bound(max(hostile_shapes.SIZES)))
    yield worker
    worker.close()


@pytest.mark.parametrize(("shape", "size"), [(s, n) for n in hostile_shapes.SIZES
                                             for s in hostile_shapes.SHAPES])
def test_every_shape_is_parsed_in_linear_time(parser, shape, size):
    raw = hostile_shapes.SHAPES[shape](size)
    parser.seconds = bound(size)
    started = time.monotonic()

    parsed = parser.parse(raw)  # ParseTimeout when over the bound
    authres.vouched_domains(parsed.headers.get("authentication-results", []), "mx.example.com")
    classify.classify(parsed)

    assert time.monotonic() - started < bound(size) + 2
    assert parsed.subject.startswith(f"shape {shape}")


def test_a_long_subject_is_cut_before_it_is_decoded():
    parsed = parse(hostile_shapes.long_subject(1_000_000))

    assert len(parsed.subject) == MAX_SUBJECT
    assert parsed.subject.startswith("shape long-subject ää")


def test_headers_kept_for_the_classifier_are_bounded():
    raw = (b"From: a@example.org\r\nSubject: s\r\n"
           + b"Delivered-To: x@example.org\r\n" * 500
           + b"Authentication-Results: mx; " + b"x" * 100_000 + b"\r\n\r\nbody\r\n")

    parsed = parse(raw)

    assert len(parsed.headers["delivered-to"]) == 50
    assert len(parsed.headers["authentication-results"][0]) <= MAX_HEADER


def test_eight_bit_headers_are_still_decoded_in_the_body_charset():
    raw = (b"From: J\xfcrgen <j@example.org>\r\nSubject: Gr\xfc\xdfe\r\n"
           + b"".join(b"X-N%d: caf\xe9\r\n" % i for i in range(3000))
           + b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nbody\r\n")

    parsed = parse(raw)

    assert (parsed.subject, parsed.from_name) == ("Grüße", "Jürgen")


def test_the_header_of_a_message_set_aside_is_read_only_so_far():
    raw = b"From: a@example.org\r\nSubject: kept\r\n" + b"X-Junk: " + b"j" * 2_000_000

    started = time.monotonic()
    parsed = parse_headers(raw)

    assert parsed.subject == "kept" and time.monotonic() - started < 5


# -- MIME parameters in one pass, as the stdlib splits them --------------------------------------

@given(st.text(alphabet='a=;" \\\t', max_size=40))
def test_parameters_split_like_the_stdlib(value):
    assert split_params(value) == email.message._parseparam(value)


def test_a_quoted_file_name_full_of_semicolons():
    small, large = (parse(hostile_shapes.quoted_semicolons(size)) for size in (1_000, 100_000))

    assert [a.filename for a in small.attachments] == [";" * 200]
    # Cut at MAX_HEADER, the value loses its closing quote, and the name its semicolons' quotes.
    assert [a.filename for a in large.attachments] == ["_" + ";" * 199]


# -- HTML in one pass ----------------------------------------------------------------------------

@pytest.mark.parametrize(("page", "text"), [
    ("<p>Hello <b>agent</b></p><p>second</p>", "Hello agent\n\nsecond"),
    ("line<br>break<br/>again", "line\nbreak\nagain"),
    ("<ul><li>one<li>two</ul>", "- one\n- two"),
    ("<table><tr><td>a<td>b</table>", "a b"),
    ("<pre>  keep   this  \n  too</pre>", "keep   this\n  too"),
    ("a &amp; b &lt;c&gt; &#228; &nbsp;x", "a & b <c> ä \xa0x"),
    ("<script>if (a<b) alert('<p>x</p>')</script>shown", "shown"),
    ("<STYLE>p { color: red }</STYLE>shown", "shown"),
    ("<head><title>hidden</title></head><body>shown</body>", "shown"),
    ("<!-- hidden <p>x</p> -->shown<!-- never closed", "shown"),
    ("<!DOCTYPE html><?xml x?>shown", "shown"),
    ("a < b and c > d", "a < b and c > d"),
    ("<a <a <a href=x>link", "link"),
    ("<p>" + "x " * 10 + "</p>" + "\n" * 10 + "<p>y</p>", ("x " * 10).strip() + "\n\ny"),
])
def test_html_to_text(page, text):
    assert html_to_text(page) == text


def test_html_beyond_what_is_rendered_is_left_out_of_the_text():
    page = "<p>" + "a" * MAX_RENDER + "</p><p>never seen</p>"

    assert "never seen" not in html_to_text(page)


# -- multipart boundaries without a regex per message (message/boundaries.py, issue 18) ---------

_BOUNDARY_CHARS = st.text(st.sampled_from("aZ09'()+_,-./:=? \t\\[]^$*|{}#&~\u00e9"),
                          min_size=1, max_size=30)


@given(boundary=_BOUNDARY_CHARS,
       tail=st.text(st.sampled_from("-- \t\r\nx\\"), max_size=6),
       prefix=st.sampled_from(["", "-", "x", " "]))
def test_a_boundary_matches_the_lines_the_feedparser_regex_matches(boundary, tail, prefix):
    import email.feedparser
    import re

    from helpdesk_fetch.message import boundaries

    separator = "--" + boundary
    pattern = ("(?P<sep>" + re.escape(separator)
               + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
    fast, regex = boundaries.compile_pattern(pattern), re.compile(pattern)
    assert isinstance(fast, boundaries.Boundary)
    assert isinstance(email.feedparser.re, boundaries._FeedparserRe)  # parse.py installed it
    for line in (prefix + separator + tail, separator + tail, separator[:-1] + tail):
        want, got = regex.match(line), fast.match(line)
        assert (want is None) == (got is None), line
        if want is not None and got is not None:
            assert (got.group("end"), got.group("linesep")) == (want.group("end"),
                                                                 want.group("linesep"))


def test_other_patterns_are_compiled_as_they_are():
    import re

    from helpdesk_fetch.message import boundaries

    for pattern, flags in ((r"(?P<sep>--a)(?P<end>--)?$", 0), (r"\r\n|\r|\n", 0),
                           ("(?P<sep>" + re.escape("--b") + r")(?P<end>--)?(?P<ws>[ \t]*)"
                            r"(?P<linesep>\r\n|\r|\n)?$", re.IGNORECASE),
                           (r"(?P<sep>--a.b)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$",
                            0)):  # an unescaped "." is no escaped separator
        assert boundaries.compile_pattern(pattern, flags) == re.compile(pattern, flags)


def test_a_multipart_message_is_parsed_the_same_with_the_regex_per_boundary(monkeypatch):
    import email.feedparser
    import re

    raw = (b"From: a@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b.1+(x)?"\r\n\r\npreamble\r\n'
           b"--b.1+(x)?\r\nContent-Type: multipart/alternative; boundary=\"in*ner\"\r\n\r\n"
           b"--in*ner\r\nContent-Type: text/plain\r\n\r\nplain text\r\n"
           b"--in*ner\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--in*ner--\r\n"
           b"--b.1+(x)? \t\r\nContent-Type: application/pdf; name=a.pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b.1+(x)?--\r\nepilogue\r\n")
    fast = parse(raw)
    monkeypatch.setattr(email.feedparser, "re", re)
    slow = parse(raw)
    assert fast == slow
    assert fast.text.strip() == "plain text" and [a.filename for a in fast.attachments] == ["a.pdf"]


def test_a_content_type_is_worked_out_once_per_value_and_a_huge_one_is_not_kept():
    """The parse worker lives for the whole run: its cache of Content-Type values holds short
    values only, so a crafted header of megabytes is not kept after its message."""
    from helpdesk_fetch.message import parse as parsing

    short = b"From: a@example.org\nContent-Type: text/plain; charset=utf-8\n\nHello\n"
    huge = (b"From: a@example.org\nContent-Type: text/plain; x=" + b"a" * 2_000_000
            + b"\n\nHello\n")
    parsing._content_type.cache_clear()

    assert parse(huge).text.strip() == "Hello"
    assert parsing._content_type.cache_info().currsize == 0
    assert parse(short).text.strip() == parse(short).text.strip() == "Hello"
    assert parsing._content_type.cache_info().currsize == 1
    assert parsing._content_type.cache_info().hits >= 1


def test_a_delivery_status_part_that_is_prose_keeps_its_words():
    """Some MTAs label their explanation message/delivery-status: its words are kept, not
    dropped as a block without fields."""
    raw = (b"From: Mail Administrator <Postmaster@ci.example>\r\nTo: a@example.org\r\n"
           b"Subject: Mail System Error - Returned Mail\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"This Message was undeliverable due to the following reason:\r\n\r\n"
           b"<u@ci.example> has restricted SMS e-mail\r\n\r\n"
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
           b"Reporting-MTA: dns; mta.ci.example\r\n\r\nFinal-Recipient: rfc822; u@ci.example\r\n"
           b"Action: failed\r\nStatus: 5.3.0\r\n\r\n--b--\r\n")
    prose, fields = parse(raw).attachments
    assert b"<u@ci.example> has restricted SMS e-mail" in prose.content
    assert fields.content.startswith(b"Reporting-MTA: dns; mta.ci.example\n\n")
