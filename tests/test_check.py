"""``check`` (spec §11.1): a monitoring plugin by the Nagios/Icinga conventions, in each of its
states, through the command line; time is shifted with libfaketime."""

from __future__ import annotations

import json
import re

import pytest

from tests.mails import message
from tests.proc import helpdesk_fetch
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
    assert list(perfdata) == ["age_local", "fetched_1h", "failed_messages", "outbox",
                              "hook_events"]  # disabled accounts are not watched
    assert re.fullmatch(r"0(\.[0-9])?;;15;0", perfdata["age_local"])
    assert perfdata["fetched_1h"] == "2;;;0" and perfdata["failed_messages"] == "0;0;;0"
    data = run.json("check", config=config)
    assert (data["state"], data["exit_code"], data["summary"], data["problems"]) == (
        "OK", 0, summary, [])
    assert {d["label"]: d["value"] for d in data["perfdata"]} == {
        "age_local": data["perfdata"][0]["value"], "fetched_1h": 2, "failed_messages": 0,
        "outbox": 0, "hook_events": 0}
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

    assert plugin(helpdesk_fetch("check", config=config, wrapper=later(14)))[0] == "OK"
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
                              "account 'helpdesk': ")
    assert "support" not in summary and "local" not in summary
    assert PASSWORD not in summary and "not-the-password" not in summary
    problems = json.loads(run("check", "--json", config=config).stdout)["problems"]
    assert [(p["state"], p["account"]) for p in problems] == [("CRITICAL", "helpdesk")]


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


def test_unknown_when_the_database_cannot_be_read(tmp_path, write_config, run):
    config = write_config([local_box(tmp_path)])
    (tmp_path / "helpdesk.db").write_bytes(b"this is not a database, " * 100)

    state, summary, perfdata = plugin(run("check", config=config))

    assert (state, perfdata) == ("UNKNOWN", {})
    assert summary.startswith(f"cannot open the database sqlite:///{tmp_path}/helpdesk.db: ")
    as_json = run("check", "--json", config=config)
    assert (as_json.exit_code, json.loads(as_json.stdout)["state"]) == (3, "UNKNOWN")


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
