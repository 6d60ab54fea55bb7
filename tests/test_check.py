"""``check`` (spec §11.1): a monitoring plugin by the Nagios/Icinga conventions, in each of its
states, through the command line; time is shifted with libfaketime."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import signal
import socket
import time

import pytest

from helpdesk_fetch.store import db
from tests.chaos import start_fetch
from tests.mails import message
from tests.proc import environment, helpdesk_fetch
from tests.servers import PASSWORD
from tests.test_ingest_maildir import make_maildir

# The Monitoring Plugins guidelines: 'label'=value[UOM];[warn];[crit];[min];[max], "U" for a
# value that cannot be known, and the UOMs s, ms, us, %, B, KB, MB, TB, c (or none).
PERFDATUM = re.compile(r"^('[^'=]+'|[^'= ]+)=(U|-?[0-9]+(\.[0-9]+)?)(us|ms|s|%|B|KB|MB|TB|c)?"
                       r"(;[0-9.:~@-]*){0,4}$")
LINE = re.compile(r"^HELPDESK-FETCH (OK|WARNING|CRITICAL|UNKNOWN) - ([^|\n]+?)(?: \| (.*))?\n$")
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def plugin(result) -> tuple[str, str, dict[str, str]]:
    """(state, summary, {label: datum}) of a plugin's output, checked against the guidelines."""
    output = result.stdout if isinstance(result.stdout, str) else result.stdout.decode()
    match = LINE.match(output)
    assert match, output
    state, summary, perfdata = match.group(1), match.group(2), match.group(3) or ""
    exit_code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert exit_code == EXIT[state], (exit_code, output)
    data = {}
    for datum in perfdata.split():
        assert PERFDATUM.match(datum), datum
        label, _, rest = datum.partition("=")
        data[label] = rest
    return state, summary, data


def local_box(tmp_path, messages=()) -> dict:
    make_maildir(tmp_path / "box", list(messages))
    return {"name": "local", "protocol": "maildir", "path": "box"}


def later(minutes: int) -> tuple[str, ...]:
    return ("faketime", "-f", f"+{minutes}m")


@pytest.mark.both_backends
def test_ok_with_perfdata(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path, [message("One"), message("Two")]),
                           {"name": "off", "protocol": "maildir", "path": "box",
                            "enabled": False}])
    assert run("fetch", config=config).exit_code == 0

    state, summary, perfdata = plugin(run("check", config=config))

    assert state == "OK"
    assert summary == "1 enabled account fetched within 15 min, 2 messages in the last hour"
    assert list(perfdata) == ["age_local", "fetched_1h", "delivered_1h", "failed_messages",
                              "outbox", "hook_events"]  # disabled accounts are not watched
    assert re.fullmatch(r"0(\.[0-9])?;;15;0", perfdata["age_local"])
    assert perfdata["fetched_1h"] == "2;;;0" and perfdata["failed_messages"] == "0;0;;0"
    data = run.json("check", config=config)
    assert (data["state"], data["exit_code"], data["summary"], data["problems"]) == (
        "OK", 0, summary, [])
    assert {d["label"]: d["value"] for d in data["perfdata"]} == {
        "age_local": data["perfdata"][0]["value"], "fetched_1h": 2, "delivered_1h": 0,
        "failed_messages": 0, "outbox": 0, "hook_events": 0}
    assert data["perfdata"][0] == {"label": "age_local", "metric": "age",
                                   "value": data["perfdata"][0]["value"], "uom": "",
                                   "warn": None, "crit": "15", "min": "0", "account": "local"}


def test_critical_when_an_account_had_no_success_for_max_age(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path)])
    never = plugin(run("check", config=config))
    assert never[:2] == ("CRITICAL", "local: no successful run recorded; the database "
                         f"{tmp_path / 'helpdesk.db'} does not exist yet: nothing has been "
                         "fetched into it (the first `helpdesk-fetch fetch` creates it)")
    assert never[2]["age_local"] == "U;;15;0"
    assert run("fetch", config=config).exit_code == 0
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Piped")).exit_code == 0

    assert plugin(helpdesk_fetch("check", config=config, wrapper=later(14)))[:2] == (
        "OK", "1 enabled account fetched within 15 min, 0 messages in the last hour, "
              "1 piped in by deliver")
    # At max-age itself, the state agrees with the threshold in the perfdata ("15": above 15)
    finished = dt.datetime.fromisoformat(
        run.json("status", config=config)["accounts"][0]["last_run"]["finished_at"])
    edge = (finished + dt.timedelta(minutes=15, seconds=1)).astimezone(dt.UTC)
    state, _, perfdata = plugin(helpdesk_fetch(
        "check", config=config, env={**environment(), "TZ": "UTC"},
        wrapper=("faketime", "-f", f"@{edge:%Y-%m-%d %H:%M:%S}")))
    assert (state, perfdata["age_local"]) == ("OK", "15;;15;0")
    state, summary, perfdata = plugin(helpdesk_fetch("check", config=config,
                                                     wrapper=later(20)))
    assert (state, summary) == ("CRITICAL", "local: no successful run for 20 min")
    assert perfdata["age_local"].startswith("20")
    relaxed = helpdesk_fetch("check", "--max-age", "30", config=config, wrapper=later(20))
    assert plugin(relaxed)[0] == "OK"


def test_a_database_that_does_not_exist_yet_is_a_warning_of_its_own(tmp_path, write_config,
                                                                    run):
    config = write_config([dict(local_box(tmp_path), enabled=False)])

    state, summary, _ = plugin(run("check", config=config))
    data = json.loads(run("check", "--json", config=config).stdout)

    assert (state, summary) == ("WARNING", f"the database {tmp_path / 'helpdesk.db'} does not "
                                "exist yet: nothing has been fetched into it (the first "
                                "`helpdesk-fetch fetch` creates it)")
    assert [(p["state"], p["account"]) for p in data["problems"]] == [("WARNING", None)]
    assert not (tmp_path / "helpdesk.db").exists()


def test_critical_after_three_failed_runs_naming_each_account(dovecot, mail_user, tmp_path,
                                                              write_config, run):
    wrong = {"password": "not-the-password"}
    config = write_config([dovecot.account("helpdesk", mail_user, **wrong),
                           dovecot.account("support", f"{mail_user}-s", **wrong),
                           local_box(tmp_path)])
    for _ in range(2):
        assert run("fetch", config=config).exit_code == 1
    assert run("check", "--max-age", "60", config=config).exit_code == 2  # never succeeded
    write_config([dovecot.account("helpdesk", mail_user, **wrong),
                  dovecot.account("support", f"{mail_user}-s"), local_box(tmp_path)])
    run("fetch", config=config)  # support succeeds now, helpdesk fails a third time

    state, summary, _ = plugin(run("check", config=config))

    assert state == "CRITICAL"
    assert summary.startswith("helpdesk: no successful run recorded, failed its last 3 runs: "
                              "login as ")  # the account named once
    assert "support" not in summary and "local" not in summary
    assert PASSWORD not in summary and "not-the-password" not in summary
    problems = json.loads(run("check", "--json", config=config).stdout)["problems"]
    assert [(p["state"], p["account"]) for p in problems] == [("CRITICAL", "helpdesk")]


def test_a_streak_counts_finished_runs_only(tmp_path, write_config, run):
    """A run still going, or killed, is no failure, and hides none: the failures in a row are
    those of the runs that ended, as for the news of spec §11.2."""
    box = tmp_path / "box"
    box.mkdir()  # a directory, but no Maildir: each run fails (exit 1)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    missing = f"local: no successful run recorded: {box} is not a Maildir"

    def killed(subject: str) -> None:
        make_maildir(box, [])
        (box / "new" / f"{subject.replace(' ', '-')}.test").write_bytes(message(subject))
        dies = helpdesk_fetch("fetch", config=config,
                              env=environment(HELPDESK_FETCH_CRASH_AT="after_commit"))
        assert dies.returncode == -signal.SIGKILL, dies.stderr
        shutil.rmtree(box)
        box.mkdir()

    def judged() -> str:
        state, summary, _ = plugin(run("check", "--max-age", "60", config=config))
        assert state == "CRITICAL"  # never a success
        return summary

    for _ in range(2):
        assert run("fetch", config=config).exit_code == 1
    killed("Stored, then the run is killed")  # its row says "running": it died, not failed
    assert judged().startswith(missing)
    assert "failed its last" not in judged()
    assert run("fetch", config=config).exit_code == 1  # the third failure: the killed run
    # is recorded as interrupted now, between the second and the third
    assert judged().startswith("local: no successful run recorded, failed its last 3 runs: "
                               f"{box} is not a Maildir")
    killed("Killed again")  # a run that died (or one still going) hides no streak
    assert "failed its last 3 runs" in judged()
    assert run("fetch", config=config).exit_code == 1
    assert "failed its last 4 runs" in judged()


def test_a_run_still_going_hides_no_streak(tmp_path, write_config, run):
    """A server that accepts and never greets: three runs fail by their timeout; while a
    fourth waits (a longer timeout), its "running" row is the account's latest."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    account = {"name": "silent", "protocol": "imap", "host": "127.0.0.1",
               "port": silent.getsockname()[1], "security": "none", "username": "u",
               "password": "p", "timeout_seconds": 1}
    config = write_config([account])
    with silent:
        for _ in range(3):
            assert run("fetch", config=config).exit_code == 1
        write_config([dict(account, timeout_seconds=300)])
        going = start_fetch(config)
        try:
            while run.json("status", config=config)["accounts"][0]["last_run"][
                    "outcome"] != "running":
                assert going.poll() is None, going.communicate()
                time.sleep(0.1)

            state, summary, _ = plugin(run("check", config=config))
        finally:
            going.terminate()
            going.communicate()

    assert state == "CRITICAL"
    assert summary.startswith("silent: no successful run recorded, failed its last 3 runs: "
                              "connect"), summary


def test_warning_for_failed_messages_and_a_disabled_ingest(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path, [message("One"), b""])])
    run("fetch", config=config)

    state, summary, perfdata = plugin(run("check", config=config))

    assert (state, summary) == ("WARNING", "1 message waits in error folders or quarantine "
                                           "(errors list)")
    assert perfdata["failed_messages"] == "1;0;;0"
    run("ingest", "disable", "--reason", "cloning the VM", config=config)
    # Ingest off: no run is expected, so an hour without one is no longer CRITICAL.
    state, summary, _ = plugin(helpdesk_fetch("check", config=config, wrapper=later(60)))
    assert state == "WARNING"
    assert re.fullmatch(r"ingest disabled on this machine since \S+ by \S+: cloning the VM; "
                        r"1 message waits in error folders or quarantine \(errors list\)",
                        summary), summary


def test_warning_for_auto_mails_and_hook_events_queued_too_long(tmp_path, write_config, run):
    hook = tmp_path / "hook"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    config = write_config([local_box(tmp_path)], hooks={"command": [str(hook)]},
                          smtp={"host": "127.0.0.1", "port": 1, "security": "none",
                                "from_address": "helpdesk@example.com"})
    run("fetch", config=config)
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Queued")).exit_code == 0
    assert plugin(helpdesk_fetch("check", "--max-age", "60", config=config,
                                 wrapper=later(29)))[0] == "OK"

    state, summary, perfdata = plugin(helpdesk_fetch("check", "--max-age", "60", config=config,
                                                     wrapper=later(31)))

    assert (state, summary) == ("WARNING", "2 auto-mails queued for more than 30 min; 1 hook "
                                           "event queued for more than 30 min")
    assert (perfdata["outbox"], perfdata["hook_events"]) == ("2;;;0", "1;;;0")


@pytest.mark.both_backends
def test_warning_for_hook_events_given_up_in_the_last_day(tmp_path, write_config, run):
    hook = tmp_path / "ticket-event"
    hook.write_text("#!/bin/sh\necho 'chat server down' >&2\nexit 1\n")
    hook.chmod(0o755)
    config = write_config([local_box(tmp_path)],
                          hooks={"command": [str(hook)], "max_attempts": 1})
    run("fetch", config=config)
    for subject in ("One", "Two"):  # each event is tried once after its commit, and dropped
        assert run("deliver", "--resource", "it-support", config=config,
                   input=message(subject)).exit_code == 0

    state, summary, perfdata = plugin(run("check", "--max-age", "60", config=config))

    assert (state, summary) == ("WARNING", f"2 hook events were given up after max_attempts "
                                           f"in the last 24 h, never delivered to the hook "
                                           f"{hook} (2 ticket.created; hooks list shows why, "
                                           f"hooks retry --all runs them again)")
    assert perfdata["hook_events"] == "0;;;0"  # none waits: they are lost
    assert run.json("status", config=config)["hook_queue"]["given_up"] == 2
    a_day_later = helpdesk_fetch("check", "--max-age", "2000", config=config,
                                 wrapper=later(24 * 60 + 1))
    assert plugin(a_day_later)[0] == "OK"


def test_no_accounts_deliver_only_is_judged_by_what_comes_in(tmp_path, write_config, run,
                                                            database_url):
    """Spec §2: a file without accounts stops fetch, not deliver. Fed by deliver alone, the
    check says so instead of "0 accounts", and what it judged."""
    config = write_config([])
    assert "does not exist yet" in plugin(run("check", config=config))[1]  # nothing came yet
    db.open_database(database_url).close()  # as the first deliver leaves it

    state, summary, perfdata = plugin(run("check", config=config))

    assert (state, summary) == ("OK", "no [[accounts]]: mail comes by deliver only; 0 messages "
                                      "delivered in the last hour, error folders, quarantine "
                                      "and queues checked")
    assert perfdata["delivered_1h"] == "0;;;0" and not any(k.startswith("age_")
                                                           for k in perfdata)
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Piped")).exit_code == 0
    assert plugin(run("check", config=config))[1].startswith(
        "no [[accounts]]: mail comes by deliver only; 1 message delivered in the last hour")
    assert run("deliver", "--resource", "it-support", config=config, input=b"").exit_code == 65
    assert plugin(run("check", config=config))[:2] == (
        "WARNING", "1 message waits in error folders or quarantine (errors list)")


@pytest.mark.both_backends
def test_no_accounts_after_fetch_ran_or_nothing_at_all_is_critical(tmp_path, write_config,
                                                                   run):
    empty = write_config([], resources=[], path=tmp_path / "empty.toml")
    state, summary, _ = plugin(run("check", config=empty))
    assert (state, summary.split("; the database")[0]) == (
        "CRITICAL", "the accounts file defines no [[accounts]] and no [[resources]]: no mail "
                    "can be fetched or delivered; is it empty, cut short, or the wrong file?")
    config = write_config([local_box(tmp_path, [message("One")])])
    assert run("fetch", config=config).exit_code == 0
    write_config([])  # cut short: every fetch now exits 2

    state, summary, _ = plugin(run("check", config=config))

    assert (state, summary) == ("CRITICAL", "the accounts file defines no [[accounts]] table, "
                                            "yet fetch read local here in the last 24 h: every "
                                            "fetch now fails (exit 2); is the file cut short, "
                                            "or the wrong one?")
    assert run("fetch", config=config).exit_code == 2
    # A day on, an installation that turned to deliver is judged as one.
    assert plugin(helpdesk_fetch("check", config=config, wrapper=later(24 * 60 + 1)))[0] == "OK"
    write_config([{"name": "local", "protocol": "maildir", "path": "box", "enabled": False}])
    assert plugin(run("check", config=config))[:2] == (
        "OK", "no enabled account (1 disabled): no mailbox is read; 0 messages delivered in "
              "the last hour, error folders, quarantine and queues checked")


def test_unknown_when_the_database_cannot_be_read(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path)])
    (tmp_path / "helpdesk.db").write_bytes(b"this is not a database, " * 100)

    state, summary, perfdata = plugin(run("check", config=config))

    assert (state, perfdata) == ("UNKNOWN", {})
    assert summary.startswith(f"cannot open the database sqlite:///{tmp_path}/helpdesk.db: ")
    as_json = run("check", "--json", config=config)
    assert (as_json.exit_code, json.loads(as_json.stdout)["state"]) == (3, "UNKNOWN")


def test_unknown_when_the_database_password_is_not_where_the_check_runs(tmp_path,
                                                                        write_config, run):
    """`sudo -u helpdesk helpdesk-fetch check` clears the environment that cron's fetch has:
    the check cannot look (UNKNOWN), which is not every run failing (CRITICAL)."""
    config = write_config([local_box(tmp_path)], settings={
        "database": "postgresql://helpdesk@127.0.0.1:1/helpdesk",
        "database_password_env": "HELPDESK_TEST_UNSET_DB_PASSWORD"})

    state, summary, _ = plugin(run("check", config=config))

    assert state == "UNKNOWN" and "HELPDESK_TEST_UNSET_DB_PASSWORD" in summary


def test_a_bug_of_ours_is_unknown_in_words(tmp_path, write_config, run, monkeypatch):
    from helpdesk_fetch.health import check

    def broken(config, **kwargs):
        raise KeyError("age_local")

    monkeypatch.setattr(check, "check", broken)
    config = write_config([local_box(tmp_path)])

    state, summary, _ = plugin(run("check", config=config))

    assert (state, summary) == ("UNKNOWN", "unexpected error (please report it): 'age_local'")


def test_a_broken_accounts_file_is_critical_a_missing_one_unknown(tmp_path, run):
    missing = plugin(run("check", config=tmp_path / "none.toml"))
    assert missing[0] == "UNKNOWN" and "accounts file not found" in missing[1]
    broken = tmp_path / "accounts.toml"
    broken.write_text('[settings]\ntimeout_seconds = "soon"\n')

    state, summary, _ = plugin(run("check", config=broken))

    assert state == "CRITICAL"
    assert summary == (f"the accounts file is invalid, every run fails: {broken}: key "
                       "'settings.timeout_seconds': expected an integer, got a string")


def test_an_unreadable_ingest_switch_is_critical(tmp_path, write_config, run):
    (tmp_path / "not-a-dir").write_text("")
    config = write_config([local_box(tmp_path)], settings={"state_dir": "not-a-dir"})

    state, summary, _ = plugin(run("check", config=config))

    assert state == "CRITICAL" and ("Not a directory; nothing is ingested on this machine "
                                    "until it can be read; fetch reads no mailbox;") in summary


def test_a_wrong_command_line_is_unknown_on_stdout(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path)])

    result = run("check", "--max-age", "0", config=config)

    assert result.exit_code == 3
    assert result.stdout.startswith("HELPDESK-FETCH UNKNOWN - Invalid value for '--max-age'")
    assert json.loads(run("check", "--json", config=config).stdout)["state"] == "CRITICAL"
