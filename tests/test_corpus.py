"""Every message of the shared corpus survives a real IMAP mailbox: ingested or set aside,
never lost, never crashing the run (spec §4.3, §4.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk_fetch.message.parse import parse

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
MESSAGES = sorted(CORPUS.rglob("*.eml"))


def test_the_corpus_is_there():
    assert len(MESSAGES) >= 100, f"the shared corpus is missing at {CORPUS}"


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_message_parses(path):
    parsed = parse(path.read_bytes())
    assert isinstance(parsed.text, str) and isinstance(parsed.subject, str)
    for text in (parsed.text, parsed.subject, parsed.from_addr, parsed.html or ""):
        text.encode("utf-8")  # storable: no lone surrogates
        assert "\x00" not in text


def test_the_whole_corpus_through_imap(dovecot, mail_user, write_config, run):
    dovecot.append(mail_user, [path.read_bytes() for path in MESSAGES])
    # Some corpus files are byte-identical, or become so when IMAP serves LF files as CRLF;
    # a byte-identical message of the same account is stored once (spec §4.1).
    distinct = len(set(dovecot.messages(mail_user)))
    config = write_config([dovecot.account("corpus", mail_user)])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert dovecot.messages(mail_user) == []
    stored = sum(t["message_count"] for t in run.json("tickets", "list", config=config))
    set_aside = len(dovecot.messages(mail_user, "HD Error Messages"))
    last_run = run.json("status", config=config)["accounts"][0]["last_run"]
    # Bounces and auto-replies that belong to no ticket are kept as ignored mail, and copies of
    # one mail (the same Message-ID, From, Date and Subject) count as duplicates (§9, §4.1).
    copies = last_run["duplicates"] - (len(MESSAGES) - distinct)
    assert copies >= 0
    assert stored + last_run["ignored"] + copies + set_aside == distinct
    assert run.json("status", config=config)["error_messages"] == set_aside
    assert run("fetch", config=config).exit_code == 0
