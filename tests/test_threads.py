"""Threading (spec §4.5): ticket tags written once, read leniently, forged ones ignored; replies
found by the Message-IDs they name."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from helpdesk_fetch.config import Settings
from helpdesk_fetch.tickets.tags import FORGERY_LINES, MAX_TAGS, Tagger
from tests.mails import message
from tests.test_ingest_maildir import make_maildir


def tagger(**settings) -> Tagger:
    return Tagger("installation-secret", Settings(**settings))


def installation_letters(database: Path, number: str) -> str:
    """The check letters of ticket *number* under the secret of *database*."""
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (secret,) = connection.execute(
            "SELECT value FROM setting WHERE key = 'tag_secret'").fetchone()
    return Tagger(secret, Settings()).letters(number)


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


def test_only_the_first_tags_of_a_subject_are_checked():
    """One mail used to try every tag its subject could hold (58 in 998 characters)."""
    t = tagger()
    guesses = " ".join(f"[TicketID {n}AAAA]" for n in range(1, MAX_TAGS + 1))
    real = t.tag("1042")

    assert t.numbers_in(f"{guesses} {real}") == []
    assert t.scan(f"Re: {real} Fwd: [TicketID 7ABCD]") == (["1042"], ["TicketID 7ABCD"])


def test_guesses_are_not_threaded_and_are_logged_without_flooding(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Printer broken")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])
    assert run("fetch", config=config).exit_code == 0
    letters = installation_letters(tmp_path / "helpdesk.db", "1001")
    wrong = "".join("B" if c == "A" else "A" for c in letters)
    padding = " ".join(f"[TicketID 99{n}QQQQ]" for n in range(MAX_TAGS))
    mail = [message(f"[TicketID 1001{wrong}] guess {n}") for n in range(12)]
    mail.append(message(f"{padding} [TicketID 1001{letters}] behind three others"))
    for n, raw in enumerate(mail):
        (box / "new" / f"2.M{n}P2.test").write_bytes(raw)

    result = run("-v", "fetch", config=config)

    assert result.exit_code == 0, result.output
    tickets = run.json("tickets", "list", config=config)
    assert [t["message_count"] for t in tickets] == [1] * 14  # nothing threaded into 1001
    # "check letters (": other tests of this process may have made "wrong" a secret to redact
    lines = [line for line in result.stderr.splitlines() if "check letters (" in line]
    assert len(lines) == FORGERY_LINES, result.stderr  # of 13: the padded subject's too
    assert f"TicketID 1001{wrong}" in lines[0] and "carol@example.org" in lines[0]
    assert "10 messages with forged ticket tags so far" in result.stderr


@pytest.mark.both_backends
def test_a_reply_to_our_receipt_alone_threads_by_its_message_id(dovecot, mail_user,
                                                                 write_config, smtp, run):
    """The customer answers our receipt from a client that drops the tag from the subject and
    names only the receipt (not their own request) in In-Reply-To: one of our own auto-mails
    is a stored Message-ID like any other."""
    config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                          smtp=smtp.config())
    dovecot.append(mail_user, [message("Printer broken", sender="carol@example.org")])
    assert run("fetch", config=config).exit_code == 0
    [receipt] = [m for _, m in smtp.mails() if m["X-Helpdesk-Fetch"].startswith("new_ticket;")]
    reply = message("Re: Printer broken", sender="carol@example.org",
                    in_reply_to=receipt["Message-ID"])
    assert b"TicketID" not in reply and b"References" not in reply
    dovecot.append(mail_user, [reply])

    assert run("fetch", config=config).exit_code == 0

    tickets = run.json("tickets", "list", config=config)
    assert [(t["message_count"], t["status"]) for t in tickets] == [(2, "confirmed_unread")]
    ticket = tickets[0]
    shown = run.json("tickets", "show", ticket["number"], config=config)
    assert [m["subject"] for m in shown["messages"] if m["direction"] == "in"] == [
        "Printer broken", "Re: Printer broken"]
