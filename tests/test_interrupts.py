"""A run stopped from outside (interrupts.py, ingest/run.py, health/status.py): Ctrl-C at a
terminal, SIGTERM from systemd or kill, SIGKILL. It says how many messages it stored and that the
rest stays on the server (no "Aborted!", no traceback), `status` shows the run as interrupted,
and the next run takes the rest, each message once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pexpect
import pytest

from tests.chaos import start_fetch
from tests.mails import message
from tests.proc import ROOT, environment, helpdesk_fetch
from tests.test_ingest_maildir import make_maildir

COUNT = 1500  # enough that a run is still busy when the signal comes


def busy_maildir(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message(f"Request {i}") for i in range(COUNT)])
    return write_config([{"name": "local", "protocol": "maildir", "path": "box"}])


def tickets_in(database) -> int:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT count(*) FROM ticket").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def wait_for_tickets(database, at_least: int) -> None:
    deadline = time.monotonic() + 60
    while tickets_in(database) < at_least:
        assert time.monotonic() < deadline, "the run stored nothing"
        time.sleep(0.02)


def assert_interrupted_run(run, config, stored: int) -> None:
    """`status` shows the run as interrupted with what it stored; the next run takes the rest."""
    [account] = run.json("status", config=config)["accounts"]
    last = account["last_run"]
    assert (last["outcome"], last["new_tickets"], last["finished_at"] is not None) == (
        "interrupted", stored, True)
    assert last["error"] == (f"interrupted after storing {stored} messages; the rest stays on "
                             "the server for the next run")
    assert run("fetch", config=config).exit_code == 0
    subjects = [t["subject"] for t in run.json("tickets", "list", config=config)]
    assert sorted(subjects) == sorted(f"Request {i}" for i in range(COUNT))  # each once


def test_sigterm_under_cron(tmp_path, write_config, run):
    config = busy_maildir(tmp_path, write_config)
    process = start_fetch(config)
    wait_for_tickets(tmp_path / "helpdesk.db", 30)

    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    stored = tickets_in(tmp_path / "helpdesk.db")
    assert process.returncode == -signal.SIGTERM  # it ends by the signal, as systemd expects
    assert stdout == ""
    assert stderr == (f"helpdesk-fetch: interrupted (SIGTERM): stopped after storing {stored} "
                      "messages; the rest stays on the server for the next run\n")
    assert 30 <= stored < COUNT
    assert_interrupted_run(run, config, stored)


def test_ctrl_c_at_a_terminal(tmp_path, write_config, run):
    config = busy_maildir(tmp_path, write_config)
    child = pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config", str(config),
                                           "fetch"],
                          env=environment(COLUMNS="80"), cwd=str(ROOT), dimensions=(24, 80),
                          timeout=60, encoding="utf-8")
    child.expect("messages")  # the progress display is up
    wait_for_tickets(tmp_path / "helpdesk.db", 30)

    child.sendintr()  # Ctrl-C, through the terminal
    child.expect(r"\s+".join([r"interrupted \(Ctrl-C\):", "stopped", "after", "storing",
                              r"(\d+)", "messages;", "the", "rest", "stays", "on", "the",
                              "server", "for", "the", "next", "run"]))  # broken between words
    stored = int(child.match.group(1))
    child.expect(pexpect.EOF)
    child.close()

    assert child.signalstatus == signal.SIGINT
    assert "Aborted!" not in child.before and "Traceback" not in child.before
    assert stored == tickets_in(tmp_path / "helpdesk.db")
    assert_interrupted_run(run, config, stored)


def test_a_killed_run_is_shown_as_interrupted(tmp_path, write_config, run):
    """SIGKILL: the run cannot record its end. Its row, written as it began, says "running"
    while it could still be; then `status` shows it as interrupted, and the account's next
    run records it so."""
    config = busy_maildir(tmp_path, write_config)
    killed = helpdesk_fetch("fetch", config=config, env=environment(
        HELPDESK_FETCH_CRASH_AT="after_commit:20"))
    assert killed.returncode == -signal.SIGKILL

    now = run.json("status", config=config)["accounts"][0]["last_run"]
    later = subprocess.run(["faketime", "-f", "+1h", sys.executable, "-m", "helpdesk_fetch",
                            "--config", str(config), "status", "--json"], cwd=ROOT,
                           env=environment(), capture_output=True, text=True, check=True)

    assert (now["outcome"], now["finished_at"]) == ("running", None)
    stored = tickets_in(tmp_path / "helpdesk.db")  # the 20th message's commit group, whole
    assert stored >= 20
    died = ("ended without recording its end (killed, or the machine went down) after storing "
            f"{stored} messages; the rest stayed on the server")
    assert '"outcome": "interrupted"' in later.stdout and died in later.stdout
    assert run("fetch", config=config).exit_code == 0
    with sqlite3.connect(tmp_path / "helpdesk.db") as connection:
        runs = connection.execute("SELECT outcome, error FROM account_run ORDER BY id").fetchall()
    assert runs == [("interrupted", died), ("ok", None)]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_what_was_stored_is_deleted_before_the_run_ends(tmp_path, write_config, run, dovecot,
                                                       mail_user, protocol):
    """SIGTERM (or Ctrl-C) over IMAP and POP3: the reader finishes its batch, and the messages
    stored before the signal are deleted in the same session (POP3: QUIT), so that the next run
    does not find them again as already stored."""
    dovecot.append(mail_user, [message(f"Request {i}") for i in range(COUNT)])
    config = write_config([dovecot.account("helpdesk", mail_user, protocol=protocol)])
    process = start_fetch(config)
    wait_for_tickets(tmp_path / "helpdesk.db", 30)

    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)

    stored = tickets_in(tmp_path / "helpdesk.db")
    assert process.returncode == -signal.SIGTERM and 30 <= stored < COUNT
    assert len(dovecot.messages(mail_user)) == COUNT - stored
    assert run.json("status", config=config)["accounts"][0]["last_run"]["outcome"] == (
        "interrupted")
    assert run("fetch", config=config).exit_code == 0
    [account] = run.json("status", config=config)["accounts"]
    assert (account["last_run"]["new_tickets"], account["last_run"]["duplicates"]) == (
        COUNT - stored, 0)
    assert dovecot.messages(mail_user) == []
