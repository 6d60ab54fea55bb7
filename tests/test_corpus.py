"""Every message of a collection of mail survives a real IMAP mailbox: ingested or set aside,
never lost, never crashing the run (spec §4.3, §4.4).

The collection is the mail set (tests/mailset), and with ``--corpus DIR`` (``make test-corpus``)
any directory of messages as well."""

from __future__ import annotations

import pytest

from helpdesk_fetch.message.parse import ParseError, parse

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


def test_every_message_parses_to_storable_text(mail_bytes):
    if mail_bytes.isspace():
        with pytest.raises(ParseError):
            parse(mail_bytes)
        return
    parsed = parse(mail_bytes)
    assert isinstance(parsed.text, str) and isinstance(parsed.subject, str)
    for text in (parsed.text, parsed.subject, parsed.from_addr, parsed.from_name,
                 parsed.html or "", *(a.filename for a in parsed.attachments)):
        text.encode("utf-8")  # storable: no lone surrogates
        assert "\x00" not in text


def test_the_whole_collection_through_imap(mail_collection, dovecot, mail_user, write_config,
                                           run):
    dovecot.append(mail_user, mail_collection)
    # Some messages are byte-identical, or become so when IMAP serves LF files as CRLF;
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
    copies = last_run["duplicates"] - (len(mail_collection) - distinct)
    assert copies >= 0
    assert stored + last_run["ignored"] + copies + set_aside == distinct
    assert run.json("status", config=config)["error_messages"] == set_aside
    assert run("fetch", config=config).exit_code == 0



@pytest.mark.parametrize("what", ["missing", "empty", "no message in it"])
def test_a_corpus_that_is_missing_or_holds_no_mail_fails_loudly(tmp_path, what):
    """`make test-corpus CORPUS=DIR` on a mistyped or empty DIR stops with a usage error that
    names DIR; a green run on nothing would say the corpus passed."""
    import subprocess
    import sys

    from tests.proc import ROOT, environment

    corpus = tmp_path / "corpus"
    if what != "missing":
        corpus.mkdir()
    if what == "no message in it":  # a note and a Maildir whose cur/ and new/ are empty
        (corpus / "README.txt").write_text("mail from the old server\n")
        for folder in ("cur", "new", "tmp"):
            (corpus / "box" / folder).mkdir(parents=True)
        (corpus / "box" / "tmp" / "1764399999.M1P1.half").write_bytes(b"Subject: half\r\n")

    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-m", "corpus", f"--corpus={corpus}", "tests/test_corpus.py"],
                          cwd=ROOT, env=environment(), capture_output=True, text=True,
                          timeout=300)

    assert done.returncode != 0, done.stdout
    assert f"--corpus {corpus}: " in done.stderr, done.stderr
    assert ("no such directory" if what == "missing" else "no messages in it") in done.stderr
    assert "passed" not in done.stdout
