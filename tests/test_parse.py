"""Parsing (spec §4.3): every case of the mail set gives what it promises; the gaps real mail
showed stay closed."""

from __future__ import annotations

import pytest

from helpdesk_fetch.message.parse import ParseError, parse
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
                                   "(comment only)", "=?utf-8?B?TXlTdXJ2ZXk=?="])
def test_a_from_that_is_no_address_gives_no_sender(value):
    parsed = parse(b"From: " + value.encode() + b"\r\nSubject: s\r\n\r\nbody\r\n")
    assert parsed.from_addr == ""


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


def test_without_any_empty_line_the_first_line_that_is_no_header_starts_the_body():
    parsed = parse(b"From: a@example.org\r\nSubject: VPN\r\nThe VPN is down: since 9.\r\n"
                   b"X-Not: a header, but body text\r\n")

    assert parsed.subject == "VPN"
    assert parsed.text == "The VPN is down: since 9.\r\nX-Not: a header, but body text\r\n"


def test_with_no_header_after_it_the_first_line_that_is_no_header_starts_the_body():
    parsed = parse(b"From: a@example.org\r\nSubject: VPN\r\nHello,\r\n\r\nthe VPN is down.\r\n")

    assert (parsed.subject, parsed.text) == ("VPN", "Hello,\r\n\r\nthe VPN is down.\r\n")


def test_a_stray_line_in_the_header_block_is_dropped_and_the_headers_after_it_kept():
    parsed = parse(b"From: a@example.org\r\nthis is junk\r\nSubject: kept\r\n\r\nbody\r\n")

    assert (parsed.subject, parsed.text) == ("kept", "body\r\n")
