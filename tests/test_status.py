"""``status``: everything at a glance, the stable JSON of spec §3, and the run history's age."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import stat

import pytest

from tests.mails import message
from tests.proc import helpdesk_fetch
from tests.test_cli import held
from tests.test_ingest_maildir import make_maildir

RUN_KEYS = {"started_at": str, "finished_at": str, "seconds": float, "outcome": str,
            "fetched": int, "new_tickets": int, "threaded": int, "rejected": int,
            "duplicates": int, "errors": int, "error": (str, type(None)), "host": str}


def test_status_json_schema(tmp_path, write_config, run):
    make_maildir(tmp_path / "box", [message("One"), b"", message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"},
                           {"name": "idle", "protocol": "maildir", "path": "box",
                            "enabled": False}])
    run("fetch", config=config)
    run("deliver", "--resource", "it-support", config=config, input=b"\n")

    data = run.json("status", config=config)

    assert data["ingest_disabled"] is False and data["ingest_switch"] is None
    assert data["automail"] is False and isinstance(data["database"], str)
    assert data["error_messages"] == 2
    assert data["error_messages_by_place"] == {"imap": 0, "pop3": 0, "maildir": 1,
                                               "quarantine": 1, "mailbox": 0}
    assert data["outbox_pending"] == 0
    assert data["outbox"] == {"pending": 0, "failing": 0, "oldest": None, "refused": 0,
                              "last_error": None}
    assert data["tickets_by_status"] == {"new": 2, "confirmed_unread": 0, "in_progress": 0,
                                         "closed": 0}
    assert data["history_days"] == 90
    local, idle = data["accounts"]
    assert set(local) == {"name", "protocol", "server", "enabled", "last_run", "error_messages",
                          "last_failure", "canary"}
    assert local["canary"] == {"sent_at": None, "received_at": None, "travel_seconds": None,
                               "error": None}
    assert data["hooks"] is False
    assert data["hook_queue"] == {"pending": 0, "failing": 0, "oldest": None, "given_up": 0,
                                  "last_error": None}
    assert (local["name"], local["protocol"], local["enabled"]) == ("local", "maildir", True)
    for key, kind in RUN_KEYS.items():
        assert isinstance(local["last_run"][key], kind), key
    assert (local["last_run"]["fetched"], local["last_run"]["new_tickets"],
            local["last_run"]["errors"]) == (3, 2, 1)
    assert local["error_messages"] == 1 and "empty" in local["last_failure"]["reason"]
    assert set(local["last_failure"]) == {"id", "reason", "at"}
    assert (idle["enabled"], idle["last_run"], idle["last_failure"]) == (False, None, None)


def test_status_for_people(tmp_path, write_config, run):
    make_maildir(tmp_path / "box", [message("One"), b""])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    run("fetch", config=config)

    text = run("status", config=config).output

    assert "Ingest: enabled" in text
    assert "local" in text and "the message is empty" in text
    assert "Failed messages waiting: 1 (1 in the Maildir error folder)" in text
    assert "errors retry --all" in text
    assert "Auto-mails: off" in text and "Tickets: new: 1" in text
    run("ingest", "disable", "--reason", "cloning the VM", config=config)
    assert "INGEST IS DISABLED" in run("status", config=config).output
    assert "cloning the VM" in run("status", config=config).output


def test_disabling_ingest_twice_keeps_since_when_and_by_whom(tmp_path, write_config, run):
    """A second `ingest disable` (a colleague, a script) must not pass for the first: the
    switch keeps its time and author, says so, and takes a new --reason only when given one."""
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("ingest", "disable", "--reason", "cloning the VM", config=config).exit_code == 0
    first = run.json("ingest", "status", config=config)["ingest_switch"]

    again = run("ingest", "disable", config=config)
    assert again.exit_code == 0
    assert (f"Ingest was already disabled, since {first['disabled_at']} by {first['by']} "
            "(cloning the VM).") in again.output.replace("\n", " ")
    assert run.json("ingest", "status", config=config)["ingest_switch"] == first

    renamed = run("ingest", "disable", "--reason", "clone for the upgrade test", config=config)
    assert "its reason is now: clone for the upgrade test" in renamed.output.replace("\n", " ")
    assert run.json("ingest", "status", config=config)["ingest_switch"] == dict(
        first, reason="clone for the upgrade test")

    assert run("ingest", "enable", config=config).output == "Ingest enabled.\n"
    assert run("ingest", "enable", config=config).output == "Ingest was already enabled.\n"


@pytest.mark.parametrize("text", ["", "{}", '"maintenance"', "[1]", '{"by": 7}', "down\n"])
def test_a_switch_made_by_hand_is_off_and_shown(tmp_path, write_config, run, text):
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"state_dir": "state"})
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "ingest-disabled").write_text(text)

    for command in (["ingest", "disable"], ["ingest", "status"], ["status"], ["fetch"]):
        result = run(*command, config=config)
        assert result.exit_code == 0, (command, result.output)
    assert run.json("status", config=config)["ingest_disabled"] is True


def test_a_state_dir_it_makes_is_private(tmp_path, write_config, run):
    """Locks, the ingest switch and the quarantine live there: not for other users to list."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"state_dir": "var/state"})
    old = os.umask(0o022)
    try:
        assert run("fetch", config=config).exit_code == 0  # its lock is made there
    finally:
        os.umask(old)
    assert [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "var", tmp_path / "var/state")
            ] == [0o700, 0o700]  # the ones above it too


def test_an_unwritable_state_dir_is_a_configuration_error(tmp_path, write_config, run):
    (tmp_path / "not-a-dir").write_text("")  # even root cannot put the switch in here
    config = write_config(settings={"state_dir": "not-a-dir"})

    for command in ("disable", "enable"):
        result = run("ingest", command, config=config)
        assert result.exit_code == 2, result.output
        assert (f"key 'settings.state_dir': cannot "
                f"{'write' if command == 'disable' else 'remove'} the ingest switch "
                f"{tmp_path / 'not-a-dir' / 'ingest-disabled'}: ") in result.stderr


def test_an_unreadable_ingest_switch_stops_fetch_loudly(tmp_path, write_config, run):
    """Under cron a broken state_dir must not pass for "ingest disabled" while mail piles up."""
    box = make_maildir(tmp_path / "box", [message("Waiting")])
    (tmp_path / "not-a-dir").write_text("")
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"state_dir": "not-a-dir"})
    problem = (f"key 'settings.state_dir': cannot read the ingest switch "
               f"{tmp_path / 'not-a-dir' / 'ingest-disabled'}: Not a directory; nothing is "
               "ingested on this machine until it can be read")

    for quiet in ((), ("-q",)):
        result = run(*quiet, "fetch", config=config)
        assert result.exit_code == 2
        assert result.stderr == f"helpdesk-fetch: error: {config}: {problem}\n"
    assert len(list((box / "new").iterdir())) == 1  # fail safe: no mailbox was read

    for command in (("status",), ("ingest", "status")):
        data = run.json(*command, config=config)
        assert data["ingest_disabled"] is True and data["ingest_switch_error"] == problem
        shown = run(*command, config=config)
        assert shown.exit_code == 0 and "INGEST SWITCH UNREADABLE" in shown.output
        assert problem in " ".join(shown.output.split())
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Keep me")).exit_code == 75


def test_run_history_is_pruned_after_history_days(tmp_path, write_config, run):
    assert shutil.which("faketime"), "libfaketime is missing: run `sudo make test-deps`"
    make_maildir(tmp_path / "box", [message("Big", body="b" * 3000), b""])
    account = {"name": "local", "protocol": "maildir", "path": "box"}
    config = write_config([account], settings={"history_days": 30, "max_message_bytes": 1000})
    forty_days_ago = ("faketime", "-f", "-40d")
    assert helpdesk_fetch("fetch", config=config, wrapper=forty_days_ago).returncode == 0
    write_config([account], settings={"history_days": 30, "max_message_bytes": 10000})
    helpdesk_fetch("errors", "retry", "--all", config=config, wrapper=forty_days_ago)
    assert len(run.json("errors", "list", "--all", config=config)) == 2  # one resolved

    assert run("fetch", config=config).exit_code == 0

    from helpdesk_fetch.clock import utcnow
    from helpdesk_fetch.store import db
    from helpdesk_fetch.store.models import AccountRun

    db.open_database(f"sqlite:///{tmp_path}/helpdesk.db")
    [recent] = AccountRun.select()  # the run of 40 days ago is gone
    assert recent.started_at > utcnow() - dt.timedelta(days=1)
    [left] = run.json("errors", "list", "--all", config=config)
    assert left["state"] == "pending"  # waiting messages are never pruned
    assert run.json("status", config=config)["accounts"][0]["last_run"]["fetched"] == 0



def test_accounts_the_run_budget_left_out_are_recorded_as_skipped(tmp_path, write_config,
                                                                   run):
    """A server that accepts the connection and never greets takes the account's timeout,
    which is the whole run_budget_seconds: the account after it is skipped, and its history
    says so, unless another run holds it (then it is that run's account, which records it)."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    make_maildir(tmp_path / "box", [message("Waits for the next run")])
    config = write_config(
        [{"name": "silent", "protocol": "imap", "host": "127.0.0.1",
          "port": silent.getsockname()[1], "security": "none", "username": "u",
          "password": "p", "timeout_seconds": 1},
         {"name": "later", "protocol": "maildir", "path": "box"}],
        settings={"run_budget_seconds": 1})

    with silent:
        with held("later", config):
            assert run("fetch", config=config).exit_code == 1
        assert _last_run(run, config, "later") is None  # the other run's: not skipped here
        result = run("fetch", config=config)
        data = run.json("status", config=config)
        text = run("status", config=config).output

    assert result.exit_code == 1
    assert "account 'later': skipped, run_budget_seconds used up" in result.stderr
    later = _last_run(run, config, "later")
    assert (later["outcome"], later["error"], later["fetched"]) == (
        "skipped", "the run's time budget was used up", 0)
    assert data["accounts"][0]["last_run"]["outcome"] == "failed"
    [row] = [line.split("\t") for line in text.splitlines() if line.startswith("later\t")]
    assert row[2] == "skipped" and row[-1] == "the run's time budget was used up"
    [listed] = [a for a in run.json("accounts", "list", config=config) if a["name"] == "later"]
    assert listed["last_run"]["outcome"] == "skipped"
    assert run.json("tickets", "list", config=config) == []  # nothing of it was read


def _last_run(run, config, name: str):
    [account] = [a for a in run.json("status", config=config)["accounts"] if a["name"] == name]
    return account["last_run"]


def test_a_runs_counts_add_up_to_what_it_read(tmp_path, write_config, run):
    """read = new + replies + rejected + dupes + ignored + errors, the messages set aside
    without being downloaded (too large) included. At 80 columns no column is always empty:
    rejected and ignored are shown when a run had some, the failed messages waiting are said
    below the row."""
    from tests.test_terminal import at_80_columns

    one = message("One")
    auto_reply = message("Out of office", headers={"Auto-Submitted": "auto-replied"})
    make_maildir(tmp_path / "box", [one, one, auto_reply, b"", message("Huge", body="x" * 8000)])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"max_message_bytes": 5000})
    run("fetch", config=config)

    last = run.json("status", config=config)["accounts"][0]["last_run"]
    lines = at_80_columns("status", config=config)

    counted = ("new_tickets", "threaded", "rejected", "duplicates", "ignored", "errors")
    assert [last[k] for k in ("fetched", *counted)] == [5, 1, 0, 0, 1, 1, 2]
    assert last["fetched"] == sum(last[k] for k in counted)
    header = lines.index("Accounts") + 1
    assert lines[header].split() == ["account", "last", "run", "outcome", "read", "new",
                                     "replies", "dupes", "ignored", "errors"]  # no rejected
    assert lines[header + 1].split()[-6:] == ["5", "1", "0", "1", "1", "2"]
    assert "; 2 failed messages waiting" in lines[header + 2]
    assert all(len(line) <= 80 for line in lines[header:header + 3]), lines
