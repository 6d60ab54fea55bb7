"""Quiet repeats (spec §11.2): under cron (stderr not a terminal) an account's failure is reported
when it starts and when it ends, not on every run in between; the exit status, -v, the log
file and a terminal still show every failure; [alerts] mails the two events through [smtp]."""

from __future__ import annotations

import datetime as dt
import socket
import sys

import pexpect
import pytest

from helpdesk_fetch.cli import SYSLOG_ENV
from helpdesk_fetch.errors import without_timings
from helpdesk_fetch.health import alerts
from tests.mails import message
from tests.proc import ROOT, environment, helpdesk_fetch
from tests.servers import free_port

WRONG = {"password": "not-the-password"}


def test_failure_is_news_when_it_starts_and_when_it_ends(dovecot, mail_user, write_config,
                                                         tmp_path, smtp):
    log_file = tmp_path / "helpdesk-fetch.log"
    alerts = {"to": ["Admin <admin@example.com>"]}
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)],
                          smtp=smtp.config(), alerts=alerts)

    runs = [helpdesk_fetch("--log-file", str(log_file), "fetch", config=config)
            for _ in range(3)]

    assert [r.returncode for r in runs] == [1, 1, 1]
    first = runs[0].stderr.decode()
    assert first.startswith("helpdesk-fetch: account 'helpdesk': ") and first.count("\n") == 1
    assert [r.stderr for r in runs[1:]] == [b"", b""]  # cron mails once, not every minute
    assert log_file.read_text().count("account 'helpdesk': ") == 3  # the trail has every one
    verbose = helpdesk_fetch("-v", "fetch", config=config)
    assert verbose.returncode == 1 and b"account 'helpdesk': " in verbose.stderr
    at_a_terminal = pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config",
                                                   str(config), "fetch"],
                                  env=environment(), cwd=str(ROOT), timeout=60,
                                  encoding="utf-8")
    at_a_terminal.expect("account 'helpdesk': ")
    at_a_terminal.expect(pexpect.EOF)
    write_config([dovecot.account("helpdesk", mail_user)], smtp=smtp.config(), alerts=alerts)

    recovered = helpdesk_fetch("fetch", config=config)

    assert recovered.returncode == 0
    assert recovered.stderr.decode().startswith(
        "helpdesk-fetch: account 'helpdesk': recovered after 5 failed runs (failing since ")
    again = helpdesk_fetch("fetch", config=config)
    assert (again.returncode, again.stderr) == (0, b"")
    mails = [(rcpts, mail["Subject"], mail.get_content()) for rcpts, mail in smtp.mails()]
    assert [(rcpts, subject) for rcpts, subject, _ in mails] == [
        (["admin@example.com"], "helpdesk-fetch: account 'helpdesk' is failing"),
        (["admin@example.com"], "helpdesk-fetch: account 'helpdesk' recovered")]
    assert "account 'helpdesk': " in mails[0][2] and "not-the-password" not in mails[0][2]
    assert "recovered after 5 failed runs" in mails[1][2]
    assert all(mail["Auto-Submitted"] == "auto-generated" for _, mail in smtp.mails())


def test_quiet_cron_runs_still_hear_when_a_failure_ends(dovecot, mail_user, write_config):
    """`-q` (only errors) in the crontab: the failure's start is an error, and its end comes
    through with it (spec §11.2), while other warnings stay out."""
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)],
                          settings={"max_message_bytes": 5000})
    failing = [helpdesk_fetch("-q", "fetch", config=config) for _ in range(2)]
    write_config([dovecot.account("helpdesk", mail_user)], settings={"max_message_bytes": 5000})
    dovecot.append(mail_user, [message("Huge", body="x" * 8000)])  # a warning: error folder

    recovered = helpdesk_fetch("-q", "fetch", config=config)

    assert [r.returncode for r in failing] == [1, 1]
    assert b"account 'helpdesk': " in failing[0].stderr and failing[1].stderr == b""
    assert recovered.returncode == 0
    assert recovered.stderr.decode().splitlines() == [
        line for line in recovered.stderr.decode().splitlines() if "recovered after" in line]
    assert "account 'helpdesk': recovered after 2 failed runs" in recovered.stderr.decode()
    assert dovecot.messages(mail_user, dovecot.folder("HD Error Messages"))  # warned, unsaid


def test_an_unset_smtp_password_variable_costs_the_alert_mail_not_the_run(
        dovecot, mail_user, write_config, smtp, tmp_path):
    """Cron's environment lacks [smtp]'s password variable: the recovery is still said on
    stderr, the alert mail is reported as not sent (naming the file and key), and the run goes
    on to its hooks and exits as its accounts did, not 2 after ingesting."""
    smtp_config = dict(smtp.config(), username="helpdesk", password_env="HF_TEST_UNSET_SMTP_PW")
    hook_log = tmp_path / "events"
    hooks = {"command": [sys.executable, "-c", "import sys; open(sys.argv[1], 'ab')"
                         ".write(sys.stdin.buffer.read() + b'\\n')", str(hook_log)]}
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)], smtp=smtp_config,
                          alerts={"to": ["admin@example.com"]}, hooks=hooks)
    assert helpdesk_fetch("fetch", config=config).returncode == 1
    write_config([dovecot.account("helpdesk", mail_user)], smtp=smtp_config,
                 alerts={"to": ["admin@example.com"]}, hooks=hooks)
    dovecot.append(mail_user, [message("Printer on fire")])

    recovered = helpdesk_fetch("fetch", config=config)

    err = recovered.stderr.decode()
    assert recovered.returncode == 0, err
    assert "account 'helpdesk': recovered after 1 failed run" in err
    assert (f"alert mail to admin@example.com not sent: {config}: key 'smtp.password_env': "
            "environment variable HF_TEST_UNSET_SMTP_PW is not set") in err
    assert b'"event": "ticket.created"' in hook_log.read_bytes()
    assert smtp.messages == []


def test_syslog_and_the_log_file_keep_every_repeat_that_stderr_leaves_out(
        dovecot, mail_user, write_config, tmp_path):
    """Under cron, runs 2 and 3 of a failure are quiet on stderr, yet syslog and the log file
    get each of the three; the failure and its recovery name the account the same way."""
    address, log_file = tmp_path / "log.sock", tmp_path / "helpdesk-fetch.log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    env = environment(**{SYSLOG_ENV: str(address)})
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)])

    def fetch() -> tuple[int, str, list[str]]:
        """A cron run: its exit status, its stderr and what it sent to syslog."""
        done = helpdesk_fetch("--syslog", "--log-file", str(log_file), "fetch", config=config,
                              env=env)
        sent = []
        listener.settimeout(0.5)  # the run has ended: what it sent is waiting
        try:
            while True:
                sent.append(listener.recv(65536).decode())
        except TimeoutError:
            pass
        return done.returncode, done.stderr.decode(), sent

    try:
        failing = [fetch() for _ in range(3)]
        write_config([dovecot.account("helpdesk", mail_user)])
        recovered = fetch()
    finally:
        listener.close()

    assert [code for code, _, _ in failing] == [1, 1, 1]
    failure = "account 'helpdesk': login"
    assert failure in failing[0][1] and [err for _, err, _ in failing[1:]] == ["", ""]
    for _, _, sent in failing:  # syslog: each run's failure, at severity error (3), mail (2)
        assert [line for line in sent if failure in line and line.startswith("<19>")], sent
    assert log_file.read_text().count(failure) == 3
    code, err, sent = recovered
    recovery = "account 'helpdesk': recovered after 3 failed runs"
    assert code == 0 and err.startswith(f"helpdesk-fetch: {recovery}"), err
    assert [line for line in sent if recovery in line], sent
    assert log_file.read_text().count(recovery) == 1


def test_each_account_has_its_own_news(dovecot, mail_user, write_config):
    healthy = dovecot.account("support", f"{mail_user}-s")
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG), healthy])
    assert b"'helpdesk'" in helpdesk_fetch("fetch", config=config).stderr
    write_config([dovecot.account("helpdesk", mail_user, **WRONG),
                  dict(healthy, **WRONG)])

    result = helpdesk_fetch("fetch", config=config)

    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("helpdesk-fetch: account 'support': ")


def test_an_alert_mail_that_cannot_be_sent_is_reported(dovecot, mail_user, write_config):
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)],
                          smtp={"host": "127.0.0.1", "port": 1, "security": "none",
                                "from_address": "helpdesk@example.com"},
                          alerts={"to": ["admin@example.com"]})

    result = helpdesk_fetch("fetch", config=config)

    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and len(lines) == 2
    assert lines[1].startswith("helpdesk-fetch: alert mail to admin@example.com not sent: SMTP "
                               "server 127.0.0.1:1: ")


def test_a_changed_cause_is_news_once(dovecot, mail_user, write_config):
    """A failure that goes on for another reason is news again, once: a cron mail that said
    "login refused" must not hide that the server has stopped answering since."""
    config = write_config([dovecot.account("helpdesk", mail_user, **WRONG)])
    refused = [helpdesk_fetch("fetch", config=config) for _ in range(2)]
    write_config([dovecot.account("helpdesk", mail_user, port=free_port())])

    unreachable = [helpdesk_fetch("fetch", config=config) for _ in range(2)]

    assert [r.returncode for r in refused + unreachable] == [1, 1, 1, 1]
    assert b"login as " in refused[0].stderr and refused[1].stderr == b""
    lines = unreachable[0].stderr.decode().splitlines()
    assert len(lines) == 1 and "connection refused" in lines[0], lines
    assert unreachable[1].stderr == b""


def test_an_accounts_configuration_error_is_news_once(dovecot, mail_user, write_config):
    """Exit 2 on every run, but said once (spec §11.2): a folder not created yet, a password
    vault that is down, a Maildir the MTA has not made yet would mail cron every minute."""
    config = write_config([dovecot.account("helpdesk", mail_user, folder="No such folder")])

    runs = [helpdesk_fetch("fetch", config=config) for _ in range(3)]

    assert [r.returncode for r in runs] == [2, 2, 2]
    assert b"key 'folder': the server has no folder 'No such folder'" in runs[0].stderr
    assert [r.stderr for r in runs[1:]] == [b"", b""]


def test_server_timings_do_not_make_a_failure_news(dovecot, mail_user, write_config):
    """Dovecot ends its answers with timings ("(0.001 + 0.000 secs)"): the same refusal on
    the next run is the same cause, and the text stored and shown has no timings."""
    dovecot.append(mail_user, [message("Huge", body="x" * 8000)])
    config = write_config([dovecot.account("helpdesk", mail_user)],
                          settings={"max_message_bytes": 5000, "error_folder": "~Errors"})

    runs = [helpdesk_fetch("fetch", config=config) for _ in range(3)]

    assert [r.returncode for r in runs] == [1, 1, 1]
    first = runs[0].stderr.decode()
    assert "Invalid mailbox name: Begins with '~'" in first and "secs)" not in first, first
    assert [r.stderr for r in runs[1:]] == [b"", b""]


def test_without_timings_keeps_the_rest_of_the_text():
    said = "[CANNOT] Invalid mailbox name: Begins with '~' (0.001 + 0.000 secs)."
    assert without_timings(said) == "[CANNOT] Invalid mailbox name: Begins with '~'."
    assert without_timings("Create completed (0.005 + 0.000 + 0.004 secs).") == (
        "Create completed.")
    assert without_timings("no timings (in here) 2 secs") == "no timings (in here) 2 secs"


@pytest.mark.parametrize("said", [
    "Internal error occurred. Refer to server log for more information. [{}]",
    "[UNAVAILABLE] Temporary authentication failure. [mail.example.com:{}]"])
def test_the_time_a_server_stamps_into_an_error_makes_no_new_failure(said):
    """Dovecot stamps the time into an internal error and into a login its password backend
    could not check: the same failure a minute later is the same cause (else cron mails on
    every run); the stamp stays in what is shown, where it finds the server's log line."""
    first, later = said.format("2026-12-06 05:20:01"), said.format("2026-12-06 05:21:01")
    streak = alerts.Streak(runs=1, since=dt.datetime(2026, 12, 6), error=f"account 'a': {first}")

    assert alerts.repeated(streak, f"account 'a': {later}")
    assert not alerts.repeated(streak, "account 'a': Another failure. [2026-12-06 05:21:01]")
    assert without_timings(later) == later
