"""tickets/: the tag secret that never fails open, the one write path of a ticket row, and the
database errors every ticket command meets (spec §3, §4.5)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.mails import message
from tests.test_ingest_maildir import make_maildir


def _arrives(box, raw: bytes, name: str) -> None:
    (box / "new" / name).write_bytes(raw)


def _one_ticket(tmp_path, write_config, run):
    make_maildir(tmp_path / "box", [message("Printer on fire", message_id="<first@example.org>")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0
    [ticket] = run.json("tickets", "list", config=config)
    return config, ticket


def test_a_database_that_lost_its_tag_secret_is_refused(tmp_path, write_config, run):
    """Spec §4.5: never an empty or a new key; fetch reads nothing, ticket commands stop."""
    config, ticket = _one_ticket(tmp_path, write_config, run)
    with sqlite3.connect(tmp_path / "helpdesk.db") as connection:
        connection.execute("DELETE FROM setting WHERE key = 'tag_secret'")
    _arrives(tmp_path / "box", message(f"Re: {ticket['tag']} more smoke"), "2.reply")

    fetched = run("fetch", config=config)
    shown = run("tickets", "show", ticket["number"], config=config)

    for result in (fetched, shown):
        assert result.exit_code == 1, result.output
        assert "lost the secret behind ticket tags" in result.stderr
        assert "Traceback" not in result.stderr
    assert len(list((tmp_path / "box" / "new").iterdir())) == 1  # still waiting
    with sqlite3.connect(tmp_path / "helpdesk.db") as connection:
        assert connection.execute("SELECT count(*) FROM message").fetchone() == (1,)
        assert connection.execute(
            "SELECT count(*) FROM setting WHERE key = 'tag_secret'").fetchone() == (0,)


def test_an_empty_tag_secret_is_refused_too(tmp_path, write_config, run):
    config, ticket = _one_ticket(tmp_path, write_config, run)
    with sqlite3.connect(tmp_path / "helpdesk.db") as connection:
        connection.execute("UPDATE setting SET value = '' WHERE key = 'tag_secret'")
    result = run("tickets", "close", ticket["number"], config=config)
    assert result.exit_code == 1 and "lost the secret" in result.stderr


def test_an_agent_status_change_keeps_a_reply_stored_since_it_was_read(tmp_path, write_config,
                                                                       run, open_db):
    """One write path: set-status re-reads the row under a lock and writes only its columns,
    so the escalation deadline re-armed by a reply that landed in between is kept."""
    from helpdesk_fetch.tickets import queries

    config, ticket = _one_ticket(tmp_path, write_config, run)
    from helpdesk_fetch.store.models import Ticket

    open_db()
    stale = Ticket.get_by_id(ticket["id"])  # what `tickets set-status` read
    _arrives(tmp_path / "box", message("Re: smoke", in_reply_to="<first@example.org>"),
             "2.reply")
    subprocess.run(["faketime", "-f", "+2h", sys.executable, "-m", "helpdesk_fetch",
                    "--config", str(config), "fetch"], check=True)
    rearmed = run.json("tickets", "show", ticket["number"], config=config)
    assert rearmed["escalation_due_at"] > ticket["escalation_due_at"]

    open_db()  # the CLI above bound the models to a read-only connection
    queries.set_status(stale, "in_progress")

    after = run.json("tickets", "show", ticket["number"], config=config)
    assert after["status"] == "in_progress"
    assert after["escalation_due_at"] == rearmed["escalation_due_at"]
    assert len(after["messages"]) == 2


def test_changing_a_ticket_before_there_is_a_database_creates_none(tmp_path, write_config, run):
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    database = tmp_path / "helpdesk.db"
    said = (f"helpdesk-fetch: error: no such ticket: there is no database yet at {database} "
            "(the first fetch or deliver creates it)\n")

    for command in (("close", "1042"), ("set-status", "1042", "in_progress"),
                    ("set-status", "--id", "1", "closed"), ("close", "[TicketID 1042QKXP]")):
        result = run("tickets", *command, config=config)
        assert (result.exit_code, result.stderr) == (2, said), command

    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.toml"]
    assert run.json("tickets", "list", config=config) == []  # reading creates nothing either
    assert not database.exists()


def test_a_database_error_in_a_ticket_command_is_one_line(tmp_path, write_config, run):
    """Spec §3: every command, not only fetch, meets a broken database with one line, exit 1."""
    config, ticket = _one_ticket(tmp_path, write_config, run)
    with sqlite3.connect(tmp_path / "helpdesk.db") as connection:
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.execute("DROP TABLE attachment")

    result = run("tickets", "show", ticket["number"], config=config)

    assert result.exit_code == 1
    assert result.stderr.startswith("helpdesk-fetch: error: database: no such table")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_a_database_locked_by_another_process_is_one_line(tmp_path, write_config, run):
    """`tickets close` while another process holds the write lock: after the busy timeout
    (30 s), one line and exit 1, not a traceback."""
    config, ticket = _one_ticket(tmp_path, write_config, run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(120)",
         str(tmp_path / "helpdesk.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = run("tickets", "close", ticket["number"], config=config)
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 1, result.output
    assert "database is locked" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started >= 25


def test_a_message_shown_in_part_says_so(tmp_path, write_config, run):
    """A message with 2,000 parts shows its first 1,000, and says that the rest is only in the
    raw message: in `tickets show` and as "notice" in --json (null when all is shown)."""
    parts = [(f"part{i}.txt", "application/octet-stream", b"x") for i in range(2000)]
    make_maildir(tmp_path / "box", [message("Many parts", attachments=parts),
                                    message("Plain")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0
    many, plain = run.json("tickets", "list", config=config)

    shown = run.json("tickets", "show", many["number"], config=config)
    text = run("tickets", "show", many["number"], config=config)

    [mail] = shown["messages"]
    assert len(mail["attachments"]) == 999  # the text part is the thousandth
    assert mail["notice"] == ("the message has more than 1000 parts; only the first 1000 are "
                              "shown, the rest is kept only in the raw message")
    assert f"Notice: {mail['notice']}" in text.output
    [other] = run.json("tickets", "show", plain["number"], config=config)["messages"]
    assert other["notice"] is None
    assert "Notice:" not in run("tickets", "show", plain["number"], config=config).output


def test_tickets_show_prints_the_text_without_carriage_returns(tmp_path, write_config, run):
    """Mail's lines end in CRLF; the text keeps them (and --json with it), but the terminal
    is shown lines, not the control picture of CR at the end of each."""
    make_maildir(tmp_path / "box", [message("Two lines", body="Line one\nLine two\n")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0

    shown = run("tickets", "show", "1001", config=config).output

    assert "Line one\nLine two" in shown and "\u240d" not in shown
    assert re.search(r"^opened \d{4}-\d\d-\d\d \d\d:\d\d, escalation due \d{4}-", shown,
                     re.MULTILINE)  # local time, on a line of its own
    assert run("tickets", "close", "1001", config=config).exit_code == 0
    again = run("tickets", "close", "1001", config=config)
    assert again.exit_code == 0
    assert re.match(r"Ticket 1001 was closed already \(closed \S+ \S+\); nothing changed",
                    again.output), again.output
    closed = run("tickets", "show", "1001", config=config).output
    assert re.search(r"^opened \S+ \S+, closed \d{4}-\d\d-\d\d \d\d:\d\d$", closed,
                     re.MULTILINE)  # no deadline of a ticket nobody works on


def test_a_message_without_date_sender_or_subject_shows_no_none(tmp_path, write_config, run):
    """Its time is when it was received (said so), the missing sender and subject are named as
    missing; --json carries received_at beside the null date."""
    bare = b"To: helpdesk@example.com\r\nMessage-ID: <bare@example.org>\r\n\r\nHelp.\r\n"
    make_maildir(tmp_path / "box", [bare])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0

    shown = run("tickets", "show", "1001", config=config).output
    [mail] = run.json("tickets", "show", "1001", config=config)["messages"]

    assert "None" not in shown
    assert "requester (no sender)" in shown
    assert re.search(r"^<- \d{4}-\d\d-\d\d \d\d:\d\d \(received; no Date\)  \(no sender\)$",
                     shown, re.MULTILINE), shown
    assert "   Subject: (no subject)" in shown
    assert mail["date"] is None and mail["from"] == ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", mail["received_at"])


def test_tickets_list_of_a_resource_nobody_has_is_a_usage_error(tmp_path, write_config, run):
    """A typo must not look like a resource without tickets: exit 2, and which exist; a
    resource of the accounts file with no ticket yet lists none."""
    config, _ = _one_ticket(tmp_path, write_config, run)
    write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                 resources=[{"name": "it-support", "members": ["alice@example.com"]},
                            {"name": "sales", "members": ["sam@example.com"]}])

    typo = run("tickets", "list", "--resource", "it-suport", config=config)
    empty = run("tickets", "list", "--resource", "sales", "--json", config=config)

    assert typo.exit_code == 2 and typo.stdout == ""
    assert typo.stderr == ("helpdesk-fetch: error: no resource 'it-suport' in the accounts file "
                           "or on any ticket; resources: it-support, sales\n")
    assert (empty.exit_code, empty.stdout) == (0, "[]\n")
