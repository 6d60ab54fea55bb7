"""Ticket tags (spec §4.5): written once, read leniently, forged ones ignored."""

from __future__ import annotations

from helpdesk_fetch.config import Settings
from helpdesk_fetch.tickets.tags import Tagger


def tagger(**settings) -> Tagger:
    return Tagger("installation-secret", Settings(**settings))


def test_tag_shape_and_check_letters():
    t = tagger()
    tag = t.tag("1042")
    assert tag.startswith("[TicketID 1042") and tag.endswith("]") and len(tag) == 19
    assert tag[-5:-1].isalpha() and tag[-5:-1].isupper()
    assert Tagger("another-secret", Settings()).tag("1042") != tag


def test_reading_ignores_case_space_and_brackets():
    t = tagger()
    letters = t.letters("1042")
    for subject in (f"Re: [TicketID 1042{letters}] help", f"AW: ticketid1042{letters.lower()}",
                    f"Fwd: (TICKETID 1042{letters}) x", f"TicketID 01042{letters}"):
        assert t.numbers_in(subject) == ["1042"], subject


def test_forged_or_partial_tags_are_ignored():
    t = tagger()
    wrong = "AAAA" if t.letters("1042") != "AAAA" else "BBBB"
    assert t.numbers_in(f"[TicketID 1042{wrong}]") == []
    assert t.numbers_in(f"[TicketID 1042{t.letters('1042')}X]") == []
    assert t.numbers_in(f"MyTicketID 1042{t.letters('1042')}") == []


def test_all_keywords_are_recognised_the_first_is_written():
    t = tagger(ticket_keywords=("Ticket", "Vorgang"), tag_prefix="<", tag_suffix=">")
    assert t.tag("7").startswith("<Ticket 7")
    assert t.numbers_in(f"Vorgang 7{t.letters('7')}") == ["7"]


def test_subject_with_tag_adds_it_once():
    t = tagger()
    once = t.subject_with_tag("Printer", "1042")
    assert once == f"{t.tag('1042')} Printer"
    assert t.subject_with_tag(f"Re: {once}", "1042") == f"Re: {once}"
