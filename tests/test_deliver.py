"""``deliver``: one message on stdin, as Postfix ``pipe`` runs it — 0 stored, 75 the MTA keeps it
and tries again, 65 kept in quarantine. Run as a separate process: the exit status is the API."""

from __future__ import annotations

import os
import pwd
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mails import message
from tests.proc import environment, helpdesk_fetch
from tests.test_automail import at

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

EX_TEMPFAIL, EX_DATAERR = 75, 65


def quarantined(state_dir: Path) -> list[bytes]:
    box = state_dir / "quarantine" / "new"
    return [p.read_bytes() for p in sorted(box.iterdir())] if box.is_dir() else []


def test_piped_message_becomes_a_ticket_once(tmp_path, write_config, run):
    config = write_config([])
    raw = message("Disk almost full", sender="nagios@example.com")

    first = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=raw)
    again = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=raw)

    assert (first.returncode, first.stdout, first.stderr) == (0, b"", b"")
    assert again.returncode == 0
    [ticket] = run.json("tickets", "list", config=config)
    assert (ticket["subject"], ticket["resource"], ticket["message_count"]) == (
        "Disk almost full", "it-support", 1)
    shown = run.json("tickets", "show", ticket["number"], config=config)
    assert shown["messages"][0]["account"] == "deliver:it-support"


def test_an_installation_fed_only_by_deliver_keeps_ignored_mail_for_ignored_days(
        write_config, run):
    """No fetch ever runs there to prune (spec §9.4: kept for ignored_days): deliver does."""
    config = write_config([])
    auto = message("Out of office", sender="otto@example.org",
                   headers={"Auto-Submitted": "auto-replied"})
    kept = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=auto)
    assert kept.returncode == 0 and len(run.json("ignored", "list", config=config)) == 1

    later = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                           input=message("Printer broken"), wrapper=("faketime", "-f", "+31d"))

    assert later.returncode == 0, later.stderr
    assert run.json("ignored", "list", config=config) == []
    assert len(run.json("tickets", "list", config=config)) == 1


def test_one_message_piped_twice_at_the_same_moment_is_stored_once(tmp_path, write_config, run):
    """Postfix delivering one message to two aliases that pipe to the same resource."""
    config = write_config([])
    for round_ in range(3):
        raw = message(f"Big report {round_}", attachments=[("r.bin", "application/octet-stream",
                                                            os.urandom(3_000_000))])
        argv = [sys.executable, "-m", "helpdesk_fetch", "--config", str(config), "deliver",
                "--resource", "it-support"]
        both = [subprocess.Popen(argv, stdin=subprocess.PIPE, env=environment())
                for _ in range(2)]
        for proc in both:
            proc.stdin.write(raw)
        for proc in both:
            proc.stdin.close()
        assert [proc.wait(timeout=120) for proc in both] == [0, 0]
    tickets = run.json("tickets", "list", config=config)
    assert sorted((t["subject"], t["message_count"]) for t in tickets) == [
        (f"Big report {i}", 1) for i in range(3)]


def test_procmail_envelope_line_and_account_option(tmp_path, write_config, run):
    config = write_config([{"name": "monitoring", "protocol": "maildir", "path": "box",
                            "resource": "ops", "automail": False}],
                          resources=[{"name": "ops", "members": ["ops@example.com"]}])
    raw = message("Switch 7 down")

    result = helpdesk_fetch("deliver", "--account", "monitoring", config=config,
                            input=b"From nagios@example.com Thu Nov 27 10:00:00 2025\n" + raw)

    assert result.returncode == 0, result.stderr
    [ticket] = run.json("tickets", "list", config=config)
    assert ticket["resource"] == "ops"
    assert run.json("tickets", "show", ticket["number"], config=config)["messages"][0][
        "account"] == "monitoring"
    shown = run("tickets", "show", ticket["number"], config=config).output
    assert "From nagios" not in shown


def test_a_from_header_in_the_obsolete_syntax_is_no_envelope_line():
    """RFC 5322 §4.5.3 allows space before the colon: `From  : John` is the sender, kept."""
    from helpdesk_fetch.ingest.deliver import strip_envelope

    header = b"From  : John Doe <jdoe@machine.example>\r\nTo: a@example.org\r\n\r\nHi\r\n"
    assert strip_envelope(header) == header
    assert strip_envelope(b"From: x@example.org\r\n\r\n") == b"From: x@example.org\r\n\r\n"
    assert strip_envelope(b"From - Mon Jan  1 00:00:00 2026\n" + header) == header


def test_unparseable_message_is_quarantined_with_65_and_retryable(tmp_path, write_config, run):
    config = write_config([], settings={"max_message_bytes": 2000})
    big = message("Core dump attached", body="c" * 5000)

    empty = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=b"\n")
    large = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=big)

    assert empty.returncode == EX_DATAERR and b"quarantine" in empty.stderr
    assert large.returncode == EX_DATAERR and b"max_message_bytes" in large.stderr
    assert sorted(quarantined(tmp_path)) == sorted([b"\n", big])
    listed = run.json("errors", "list", config=config)
    assert [e["place"] for e in listed] == ["quarantine", "quarantine"]
    assert listed[1]["subject"] == "Core dump attached"
    assert run.json("status", config=config)["error_messages_by_place"]["quarantine"] == 2

    write_config([], settings={"max_message_bytes": 20000})
    result = run("errors", "retry", "--all", config=config)

    assert f"{listed[1]['id']} (deliver:it-support): ingested -> ticket" in result.output
    assert quarantined(tmp_path) == [b"\n"]
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Core dump attached"]
    run("errors", "retry", "--all", config=config)
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=big).returncode == 0
    assert len(run.json("tickets", "list", config=config)) == 1


def test_a_quarantine_that_cannot_be_written_is_a_temporary_failure(tmp_path, write_config, run):
    config = write_config([])
    (tmp_path / "quarantine").write_text("")  # even root cannot make the Maildir in here

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=b"\n")

    assert result.returncode == EX_TEMPFAIL
    assert result.stderr.decode() == (
        "helpdesk-fetch: temporary failure, the MTA keeps the message: cannot keep the message "
        f"in the quarantine Maildir {tmp_path / 'quarantine'}: Not a directory\n")
    assert run.json("errors", "list", config=config) == []


def test_unreachable_database_is_a_temporary_failure(tmp_path, write_config):
    config = write_config([], settings={"database": "postgresql://helpdesk@127.0.0.1:1/helpdesk"})

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                            input=message("Lost?"))

    assert result.returncode == EX_TEMPFAIL
    assert b"temporary failure" in result.stderr and b"database" in result.stderr
    assert quarantined(tmp_path) == []


@pytest.mark.parametrize("broken", [
    ["deliver"],  # neither --resource nor --account
    ["deliver", "--resource", "it-support", "--account", "box"],  # both
    ["deliver", "--resource", "no-such-resource"],
    ["deliver", "--no-such-option"],
])
def test_usage_and_configuration_errors_keep_the_message_queued(write_config, broken):
    config = write_config([])

    result = helpdesk_fetch(*broken, config=config, input=message("Keep me"))

    assert result.returncode == EX_TEMPFAIL, result.stderr
    if "--account" in broken:
        assert b"deliver needs --resource NAME or --account NAME, not both" in result.stderr


def test_a_deliver_that_keeps_failing_is_news_to_check(tmp_path, write_config, run):
    """A typo in master.cf keeps every message in the MTA's queue, which bounces them days
    later: check says so (WARNING at once, CRITICAL after --max-age), until that transport
    works; a second transport that works hides nothing."""
    config = write_config([])
    for _ in range(2):
        assert helpdesk_fetch("deliver", "--resource", "it-suport", config=config,
                              input=message("Queued")).returncode == EX_TEMPFAIL
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=message("Other")).returncode == 0  # another pipe: fine

    fresh = run("check", config=config)
    late = at("+16m", config, "check")  # past --max-age (15)

    assert fresh.exit_code == 1 and fresh.stdout.startswith("HELPDESK-FETCH WARNING - ")
    assert ("deliver (resource it-suport, which the accounts file does not define) has failed "
            "2 times since ") in fresh.stdout
    assert "the MTA keeps the mail: " in fresh.stdout and "no resource 'it-suport'" in fresh.stdout
    assert late.returncode == 2 and late.stdout.startswith("HELPDESK-FETCH CRITICAL - ")
    [failing] = run.json("status", config=config)["deliver_failing"]
    assert (failing["target"], failing["count"]) == ("resource.it-suport", 2)
    assert "deliver (resource it-suport, which the accounts file does not define) has " \
        "failed 2 times since " in " ".join(run("status", config=config).output.split())
    write_config([], resources=[{"name": "it-suport", "members": ["alice@example.com"]}])
    assert helpdesk_fetch("deliver", "--resource", "it-suport", config=config,
                          input=message("Queued")).returncode == 0  # the resource made
    assert "deliver (" not in at("+16m", config, "check").stdout


def test_a_mistyped_deliver_target_is_forgotten_once_nothing_tries_it(tmp_path, write_config,
                                                                      run):
    """Fixed in master.cf, a target the accounts file does not define never works to clear its
    failures: they are forgotten two hours after its last attempt (a transport still broken
    is tried again within that: Postfix's maximal_backoff_time is 4,000 s)."""
    config = write_config([])
    assert helpdesk_fetch("deliver", "--resource", "it-suport", config=config,
                          input=message("Queued")).returncode == EX_TEMPFAIL

    hour = at("+1h", config, "check")
    assert hour.returncode == 2 and ("deliver (resource it-suport, which the accounts file "
                                     "does not define) has failed 1 time since ") in hour.stdout
    assert "deliver (" not in at("+2h", config, "check").stdout
    assert run.json("status", config=config)["deliver_failing"] == []
    assert list(tmp_path.glob("deliver-failing.*")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a file another user's")
def test_a_deliver_record_check_cannot_read_is_critical_not_none(tmp_path, write_config, run):
    config = write_config([])
    assert helpdesk_fetch("deliver", "--resource", "nope", config=config,
                          input=message("Queued")).returncode == EX_TEMPFAIL
    [record] = tmp_path.glob("deliver-failing.*")
    nobody = pwd.getpwnam("nobody")
    os.chown(record, nobody.pw_uid, nobody.pw_gid)  # another user's, mode 600 (pipe's umask)
    record.chmod(0o600)

    checked = helpdesk_fetch("check", config=config, wrapper=AS_ORDINARY_USER)

    assert checked.returncode == 2, checked
    assert checked.stdout.startswith(b"HELPDESK-FETCH CRITICAL - ") and b"cannot read" in \
        checked.stdout  # not taken for "deliver works"


def test_ingest_disabled_keeps_the_message_queued(tmp_path, write_config, run):
    config = write_config([])
    run("ingest", "disable", "--reason", "clone", config=config)

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                            input=message("Not now"))

    assert result.returncode == EX_TEMPFAIL and b"ingest is disabled" in result.stderr
    assert run.json("tickets", "list", config=config) == []
    assert "deliver failed" not in run("check", config=config).stdout  # a switch, no failure


# Root writes any file; without these capabilities it obeys file modes like the MTA's user.
AS_ORDINARY_USER = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about the SQLite file
def test_read_only_database_is_a_temporary_failure(tmp_path, write_config, run):
    config = write_config([])
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=message("First")).returncode == 0
    raw = message("Written by someone who may not")
    (tmp_path / "helpdesk.db").chmod(0o444)

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=raw,
                            wrapper=AS_ORDINARY_USER if os.geteuid() == 0 else ())

    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert (f"the database file {tmp_path / 'helpdesk.db'} belongs to ").encode() in result.stderr
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert (f"(mode 444), and {me}, who runs helpdesk-fetch, cannot write it; fix: chmod u+rw "
            f"{tmp_path / 'helpdesk.db'}").encode() in result.stderr
    assert quarantined(tmp_path) == []
    (tmp_path / "helpdesk.db").chmod(0o600)
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=raw).returncode == 0
    assert len(run.json("tickets", "list", config=config)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about the SQLite file
def test_locked_database_is_a_temporary_failure(tmp_path, write_config, run):
    """SQLite waits busy_timeout (30 s) for another writer, then gives up: 75."""
    config = write_config([])
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=message("First")).returncode == 0
    raw = message("Waits for the lock")
    holder = sqlite3.connect(tmp_path / "helpdesk.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                                input=raw)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert result.returncode == EX_TEMPFAIL and b"locked" in result.stderr
    assert quarantined(tmp_path) == []
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=raw).returncode == 0
    assert len(run.json("tickets", "list", config=config)) == 2


def test_deliver_waits_while_db_copy_holds_the_database(tmp_path, write_config, run):
    from helpdesk_fetch import state

    config = write_config([])

    with state.delivery_lock(tmp_path, exclusive=True):
        result = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                                input=message("During the copy"))

    assert result.returncode == EX_TEMPFAIL and b"being copied" in result.stderr
    assert run.json("tickets", "list", config=config) == []
