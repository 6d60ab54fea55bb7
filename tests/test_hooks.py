"""Hooks (spec §12): each ticket change queues its event in its own transaction; after commit the
[hooks] command runs once per event, the event as JSON on stdin, without a shell or our secrets;
failures, hangs and crashes are retried by later runs, in order per ticket, until max_attempts.
Mail that is not a request (spec §9) and monitoring alerts (§10.2) have events of their own: a
bounce is message.bounced, an auto-reply, a delay notice and ignored mail are none."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from tests import kinds_samples as samples
from tests.mails import message, message_id_of
from tests.proc import ROOT, environment, helpdesk_fetch
from tests.test_ingest_maildir import make_maildir
from tests.test_kinds import answering
from tests.test_routing import NAGIOS_RULE, RESOURCES, alert

KILLED = -9
ALL_EVENTS = ["ticket.created", "ticket.replied", "ticket.reopened", "ticket.rejected",
              "message.bounced"]


def script(path: Path, body: str) -> Path:
    """An executable shell script: the hook commands of these tests."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def recorder(tmp_path: Path) -> Path:
    """A hook that appends each event (one JSON line) to events.jsonl beside the accounts file
    (a hook runs in the accounts file's directory)."""
    return script(tmp_path / "record", 'cat >> events.jsonl\n')


def events(tmp_path: Path) -> list[dict]:
    path = tmp_path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().split() if path.exists() else []


def empty_box(tmp_path: Path) -> dict:
    make_maildir(tmp_path / "box", [])
    return {"name": "local", "protocol": "maildir", "path": "box", "resource": "it-support"}


@pytest.mark.both_backends
def test_each_ticket_change_runs_the_hook_once_with_its_event(tmp_path, write_config, run):
    hooks = {"command": [str(recorder(tmp_path))]}
    config = write_config([empty_box(tmp_path)], hooks=hooks)
    first = message("Printer broken", attachments=[("log.txt", "text/plain", b"paper jam")])
    replies = [message(f"Re: Printer broken ({n})", in_reply_to=f"<{message_id_of(first)}>")
               for n in range(3)]

    def deliver(raw: bytes) -> None:
        assert run("deliver", "--resource", "it-support", config=config,
                   input=raw).exit_code == 0

    deliver(first)
    number = run.json("tickets", "list", config=config)[0]["number"]
    deliver(replies[0])
    run("tickets", "close", number, config=config)
    deliver(replies[1])  # within reactivation_days: reopened
    run("tickets", "close", number, config=config)
    write_config([empty_box(tmp_path)], hooks=hooks, settings={"reactivation_days": 0})
    deliver(replies[2])  # rejected

    got = events(tmp_path)
    assert [e["event"] for e in got] == ["ticket.created", "ticket.replied", "ticket.reopened",
                                         "ticket.rejected"]
    assert [set(e) for e in got] == [{"event", "id", "ticket", "message"}] * 4
    assert len({e["id"] for e in got}) == 4 and [e["id"] for e in got] == sorted(
        e["id"] for e in got)
    shown = run.json("tickets", "show", number, config=config)
    for event, shown_message in zip(got, shown["messages"], strict=True):
        assert event["message"] == {k: v for k, v in shown_message.items()
                                    if k not in ("text", "html")}
    assert got[0]["message"]["attachments"][0]["filename"] == "log.txt"
    listed = run.json("tickets", "list", config=config)[0]
    assert got[3]["ticket"] == listed  # the ticket as `tickets list` shows it, then and now
    assert [(e["ticket"]["status"], e["ticket"]["message_count"]) for e in got] == [
        ("new", 1), ("confirmed_unread", 2), ("confirmed_unread", 3), ("closed", 4)]
    assert run.json("status", config=config)["hook_queue"] == {
        "pending": 0, "failing": 0, "oldest": None, "given_up": 0, "last_error": None}


def test_only_the_events_asked_for_are_queued(tmp_path, write_config, run):
    config = write_config([empty_box(tmp_path)],
                          hooks={"command": [str(recorder(tmp_path))],
                                 "events": ["ticket.replied"]})
    first = message("Printer broken")
    for raw in (first, message("Re: Printer", in_reply_to=f"<{message_id_of(first)}>")):
        run("deliver", "--resource", "it-support", config=config, input=raw)

    assert [e["event"] for e in events(tmp_path)] == ["ticket.replied"]
    assert run.json("status", config=config)["hook_queue"]["pending"] == 0


def test_no_shell_and_no_secret_of_ours_in_the_hooks_environment(tmp_path, write_config, run,
                                                                  monkeypatch):
    hook = script(tmp_path / "hook", 'cat > /dev/null\nprintf "%s\\n" "$@" > argv\n'
                                     'env > env\n')
    args = ["$(touch pwned)", "a; touch pwned", "*", "`touch pwned`"]
    secrets = {"IMAP_PW": "imap-secret-1", "SMTP_PW": "smtp-secret-2",
               "HELPDESK_IMAP_PASSWORD": "helpdesk-secret-3", "PGPASSWORD": "pg-secret-4",
               "COPY_OF_INLINE": "inline-secret-5"}
    for name, value in {**secrets, "KEEP_ME": "harmless"}.items():
        monkeypatch.setenv(name, value)
    imap = {"name": "imap", "protocol": "imap", "host": "127.0.0.1", "username": "u",
            "password_env": "IMAP_PW", "enabled": False}
    inline = {**imap, "name": "inline", "password": "inline-secret-5"}
    del inline["password_env"]
    config = write_config([imap, inline], hooks={"command": [str(hook), *args]},
                          smtp={"host": "127.0.0.1", "port": 1, "security": "none",
                                "username": "u", "password_env": "SMTP_PW",
                                "from_address": "helpdesk@example.com"})

    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Hello")).exit_code == 0

    assert (tmp_path / "argv").read_text().splitlines() == args
    assert not (tmp_path / "pwned").exists()
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines()
               if "=" in line)
    assert not set(secrets) & set(env)
    assert not set(secrets.values()) & set(env.values())
    assert env["KEEP_ME"] == "harmless"
    assert (env["HELPDESK_FETCH_EVENT"], env["HELPDESK_FETCH_EVENT_ID"]) == ("ticket.created",
                                                                               "1")
    assert env["HELPDESK_FETCH_CONFIG"] == str(config)


FAILS_FOR_PRINTERS = """\
event=$(cat)
echo "$HELPDESK_FETCH_EVENT_ID" >> calls
case "$event" in
  *Printer*) if [ -e fail ]; then echo "the chat server says no" >&2; exit 3; fi ;;
esac
printf '%s\\n' "$event" >> events.jsonl
"""


def test_a_failing_hook_is_retried_later_in_order_per_ticket(tmp_path, write_config, run):
    """Event 1 (ticket A) fails; event 2 (ticket B) is delivered; event 3 (ticket A again)
    waits behind event 1, even when it is due and event 1 is not; after the back-off both run,
    in order."""
    hook = script(tmp_path / "hook", FAILS_FOR_PRINTERS)
    (tmp_path / "fail").touch()
    printer = message("Printer broken")
    make_maildir(tmp_path / "box", [printer, message("VPN down")])
    account = {"name": "local", "protocol": "maildir", "path": "box"}
    config = write_config([account], hooks={"command": [str(hook)]})

    first = helpdesk_fetch("fetch", config=config)

    assert (first.returncode, first.stderr) == (0, b"")  # a failed attempt: no cron mail
    assert calls(tmp_path) == ["1", "2"]
    queue = run.json("status", config=config)["hook_queue"]
    assert (queue["pending"], queue["failing"]) == (1, 1)
    assert queue["last_error"] == {"id": 1, "event": "ticket.created", "attempts": 1,
                                   "error": "exited with status 3: the chat server says no"}
    assert "last hook failure: event 1 (ticket.created), attempt 1: exited with status 3" in \
        run("status", config=config).output
    reply = message("Re: Printer broken", in_reply_to=f"<{message_id_of(printer)}>")
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=reply).returncode == 0
    assert calls(tmp_path) == ["1", "2"]  # event 3 waits behind event 1
    (tmp_path / "fail").unlink()
    assert helpdesk_fetch("-v", "fetch", config=config).returncode == 0
    assert calls(tmp_path) == ["1", "2"]  # event 1 is not due before its back-off

    later = helpdesk_fetch("fetch", config=config, wrapper=("faketime", "-f", "+3m"))

    assert later.returncode == 0, later.stderr
    assert calls(tmp_path) == ["1", "2", "1", "3"]
    assert [e["id"] for e in events(tmp_path)] == [2, 1, 3]
    assert run.json("status", config=config)["hook_queue"]["pending"] == 0


def test_a_hook_that_gives_up_says_so_and_no_longer_holds_its_ticket(tmp_path, write_config,
                                                                      run):
    hook = script(tmp_path / "hook", 'cat > /dev/null\necho "$HELPDESK_FETCH_EVENT_ID" >> calls\n'
                                     '[ "$HELPDESK_FETCH_EVENT" != ticket.created ] || exit 1\n')
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(hook)],
                                                        "max_attempts": 1})
    first = message("Printer broken")

    created = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=first)

    assert created.returncode == 0
    assert b"hook: event 1 (ticket.created of ticket 1001) given up after 1 attempt: exited " \
           b"with status 1" \
        in created.stderr
    replied = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                             input=message("Re: P", in_reply_to=f"<{message_id_of(first)}>"))
    assert (replied.returncode, replied.stderr) == (0, b"")
    assert calls(tmp_path) == ["1", "2"]
    queue = run.json("status", config=config)["hook_queue"]
    assert (queue["pending"], queue["given_up"]) == (0, 1)
    assert "1 given up after max_attempts" in run("status", config=config).output


@pytest.mark.both_backends
def test_hooks_retry_runs_given_up_events_again_once_the_command_works(tmp_path, write_config,
                                                                        run):
    """A hook down for longer than its max_attempts (a chat server down over a weekend) loses
    its events only until the administrator runs them again."""
    hook = script(tmp_path / "hook", FAILS_FOR_PRINTERS)
    (tmp_path / "fail").touch()
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(hook)],
                                                        "max_attempts": 1})
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Printer broken")).exit_code == 0
    given_up = run.json("hooks", "list", config=config)
    assert [{k: e[k] for k in ("id", "event", "ticket", "state", "attempts", "next_attempt_at",
                               "delivered_at", "last_error")} for e in given_up] == [
        {"id": 1, "event": "ticket.created", "ticket": "1001", "state": "given_up",
         "attempts": 1, "next_attempt_at": None, "delivered_at": None,
         "last_error": "exited with status 3: the chat server says no"}]
    assert given_up[0]["given_up_at"] is not None

    still = run("hooks", "retry", "1", config=config)  # not fixed yet

    assert still.exit_code == 1
    assert still.stdout == ("event 1 (ticket.created of ticket 1001): given up: 1 attempt "
                            "failed: exited with status 3: the chat server says no\n")
    assert still.stderr == ""  # not also told to run the command it ran
    (tmp_path / "fail").unlink()

    fixed = run("hooks", "retry", "--all", config=config)

    assert (fixed.exit_code, fixed.output) == (0, "event 1 (ticket.created of ticket 1001): "
                                                  "delivered\n")
    assert calls(tmp_path) == ["1", "1", "1"]
    assert [e["ticket"]["number"] for e in events(tmp_path)] == ["1001"]
    assert run.json("hooks", "list", config=config) == []
    assert [e["state"] for e in run.json("hooks", "list", "--all", config=config)] == [
        "delivered"]
    assert run.json("status", config=config)["hook_queue"]["given_up"] == 0
    again = run("hooks", "retry", "1", "--json", config=config)
    assert again.exit_code == 0 and calls(tmp_path) == ["1", "1", "1"]  # not run again
    assert [(r["id"], r["outcome"], r["ok"]) for r in json.loads(again.stdout)] == [
        (1, "delivered_already", True)]
    unknown = run("hooks", "retry", "1", "7", config=config)  # a typo runs nothing
    assert unknown.exit_code == 2 and "no hook event with id 7 (see `helpdesk-fetch hooks " \
        "list --all`)" in unknown.stderr


def test_hooks_retry_runs_a_failing_event_without_its_back_off_in_its_tickets_order(
        tmp_path, write_config, run):
    hook = script(tmp_path / "hook", FAILS_FOR_PRINTERS)
    (tmp_path / "fail").touch()
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(hook)]})
    printer = message("Printer broken")
    for raw in (printer, message("Re: Printer", in_reply_to=f"<{message_id_of(printer)}>")):
        assert run("deliver", "--resource", "it-support", config=config,
                   input=raw).exit_code == 0
    assert calls(tmp_path) == ["1"]  # event 2 waits behind event 1, which waits 2 minutes

    behind = run("hooks", "retry", "2", config=config)

    assert behind.exit_code == 1 and calls(tmp_path) == ["1"]  # its ticket's order holds
    assert behind.output == ("event 2 (ticket.replied of ticket 1001): waiting: not run now: "
                             "event 1 of its ticket waits before it (hooks retry 1 runs "
                             "both)\n")
    still = run("hooks", "retry", "1", config=config)
    assert still.exit_code == 1 and calls(tmp_path) == ["1", "1"]  # now, not in 2 minutes
    assert "event 1 (ticket.created of ticket 1001): failed: attempt 2 of 10 failed: exited " \
           "with status 3: the chat server says no; tried again from " in still.output
    assert [(e["id"], e["state"], e["attempts"]) for e in run.json(
        "hooks", "list", config=config)] == [(1, "failing", 2), (2, "waiting", 0)]
    listed = run("hooks", "list", config=config).output.splitlines()
    assert listed[0].split("\t") == ["id", "event", "ticket", "queued", "attempts", "state",
                                      "last error"]
    assert listed[1].split("\t")[4:] == ["2", "failing",
                                         "exited with status 3: the chat server says no"]
    (tmp_path / "fail").unlink()

    done = run("hooks", "retry", "1", config=config)

    assert (done.exit_code, done.output) == (0, "event 1 (ticket.created of ticket 1001): "
                                                "delivered\n")
    assert calls(tmp_path) == ["1", "1", "1", "2"]  # the queue ran: event 2 after event 1
    assert [e["event"] for e in events(tmp_path)] == ["ticket.created", "ticket.replied"]


def test_hooks_retry_needs_the_hooks_command_and_an_event(tmp_path, write_config, run):
    config = write_config([empty_box(tmp_path)])

    missing = run("hooks", "retry", "--all", config=config)
    neither = run("hooks", "retry", config=config)

    assert missing.exit_code == 2
    assert f"{config}: key 'hooks': there is no [hooks] command" in missing.stderr
    assert neither.exit_code == 2 and "give the ids of the events to retry, or --all" in \
        neither.stderr


def test_a_hanging_hook_is_killed_with_everything_it_started(tmp_path, write_config, run):
    hook = script(tmp_path / "hook", "sleep 300 &\necho $! > child.pid\nsleep 300\n")
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(hook)],
                                                        "timeout_seconds": 1})
    started = time.monotonic()

    result = run("deliver", "--resource", "it-support", config=config, input=message("Hi"))

    assert result.exit_code == 0
    assert time.monotonic() - started < 30
    queue = run.json("status", config=config)["hook_queue"]
    assert queue["failing"] == 1
    assert queue["last_error"]["error"] == ("still running after timeout_seconds (1 s); its "
                                            "process group was killed")
    child = Path("/proc") / (tmp_path / "child.pid").read_text().strip() / "stat"
    for _ in range(50):  # the kernel needs a moment to take it down
        if not child.exists() or child.read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.1)
    assert not child.exists() or child.read_text().split(") ")[1].startswith("Z")


def test_a_crash_between_commit_and_hook_delays_the_event_but_never_loses_it(tmp_path,
                                                                              write_config):
    hook = script(tmp_path / "hook", 'cat > /dev/null\necho "$HELPDESK_FETCH_EVENT_ID" >> calls\n')
    box = make_maildir(tmp_path / "box", [message("Printer broken")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          hooks={"command": [str(hook)]})

    crashed = helpdesk_fetch("fetch", config=config,
                             env=environment(HELPDESK_FETCH_CRASH_AT="after_commit"))

    assert crashed.returncode == KILLED
    assert calls(tmp_path) == []  # stored, but killed before the hook ran
    assert helpdesk_fetch("fetch", config=config).returncode == 0
    assert calls(tmp_path) == ["1"]
    assert helpdesk_fetch("fetch", config=config).returncode == 0
    assert calls(tmp_path) == ["1"]  # once delivered, never again
    assert list((box / "new").iterdir()) == []


def test_a_crash_after_the_hook_ran_runs_it_again_once_the_claim_expires(tmp_path, write_config,
                                                                          run):
    hook = script(tmp_path / "hook", 'cat > /dev/null\necho "$HELPDESK_FETCH_EVENT_ID" >> calls\n')
    make_maildir(tmp_path / "box", [message("Printer broken")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          hooks={"command": [str(hook)], "timeout_seconds": 30})

    crashed = helpdesk_fetch("fetch", config=config,
                             env=environment(HELPDESK_FETCH_CRASH_AT="after_hook_run"))

    assert crashed.returncode == KILLED
    assert calls(tmp_path) == ["1"]
    assert helpdesk_fetch("fetch", config=config).returncode == 0
    assert calls(tmp_path) == ["1"]  # claimed by the dead run: nobody else runs it meanwhile
    after_lease = ("faketime", "-f", "+2m")  # timeout_seconds + a minute
    assert helpdesk_fetch("fetch", config=config, wrapper=after_lease).returncode == 0
    assert calls(tmp_path) == ["1", "1"]  # at least once: here twice
    assert helpdesk_fetch("fetch", config=config, wrapper=after_lease).returncode == 0
    assert calls(tmp_path) == ["1", "1"]
    assert run.json("status", config=config)["hook_queue"]["pending"] == 0


def test_a_hook_that_cannot_be_started_is_a_failed_attempt(tmp_path, write_config, run):
    """Loading the file checks the program (test_config); what it needs can still be missing:
    here the interpreter its first line names."""
    hook = tmp_path / "hook"
    hook.write_text("#!/no/such/interpreter\n")
    hook.chmod(0o755)
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(hook)]})

    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Hi")).exit_code == 0

    error = run.json("status", config=config)["hook_queue"]["last_error"]["error"]
    assert error == f"cannot run {hook}: No such file or directory"


def test_a_hook_program_that_is_missing_stops_every_command_at_once(tmp_path, write_config,
                                                                    run):
    config = write_config([empty_box(tmp_path)],
                          hooks={"command": [str(tmp_path / "no-such-hook")]})

    for command, code in ((["status"], 2), (["fetch"], 2),
                          (["deliver", "--resource", "it-support"], 75)):  # the MTA keeps it
        result = run(*command, config=config, input=message("Hi"))
        assert result.exit_code == code, command  # not a failed attempt at the first event
        assert (f"{config}: key 'hooks.command': the program {tmp_path / 'no-such-hook'} does "
                "not exist") in result.stderr


# -- the README's examples (contrib/hooks), run for real ----------------------------------------

HOOK_EXAMPLES = ROOT / "contrib" / "hooks"


def test_the_file_writing_example(tmp_path, write_config, run):
    example = HOOK_EXAMPLES / "ticket-to-file"
    assert example.read_text() in (ROOT / "README.md").read_text()
    spool = tmp_path / "spool"
    spool.mkdir()
    config = write_config([empty_box(tmp_path)], hooks={"command": [str(example), str(spool)]})
    first = message("Printer broken")

    for raw in (first, message("Re: Printer", in_reply_to=f"<{message_id_of(first)}>")):
        assert run("deliver", "--resource", "it-support", config=config,
                   input=raw).exit_code == 0

    assert sorted(p.name for p in spool.iterdir()) == ["1.json", "2.json"]
    written = [json.loads((spool / f"{n}.json").read_text()) for n in (1, 2)]
    assert [(e["id"], e["event"]) for e in written] == [(1, "ticket.created"),
                                                        (2, "ticket.replied")]
    assert written[0]["ticket"]["subject"] == "Printer broken"


class _Webhook(http.server.BaseHTTPRequestHandler):
    posts: list = []
    answer = 200

    def do_POST(self):  # noqa: N802 - the standard library's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.answer)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_chat_webhook_example(tmp_path, write_config, run, monkeypatch):
    assert shutil.which("curl") and shutil.which("jq"), "curl or jq missing: sudo make test-deps"
    example = HOOK_EXAMPLES / "ticket-to-chat"
    assert example.read_text() in (ROOT / "README.md").read_text()
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url_file = tmp_path / "chat-webhook.url"
    url_file.write_text(f"http://127.0.0.1:{server.server_port}/hooks/abc\n")
    url_file.chmod(0o600)
    config = write_config([empty_box(tmp_path)],
                          hooks={"command": [str(example), str(url_file)],
                                 "events": ["ticket.created"]})
    _Webhook.posts = []
    try:
        run("deliver", "--resource", "it-support", config=config,
            input=message('Printer "HP 4" broken'))
        _Webhook.answer = 500  # the chat server fails: the event waits for a retry
        run("deliver", "--resource", "it-support", config=config, input=message("VPN down"))
    finally:
        server.shutdown()
        _Webhook.answer = 200

    numbers = [t["number"] for t in run.json("tickets", "list", config=config)]
    assert _Webhook.posts == [
        ("application/json", {"text": f'ticket.created: ticket {numbers[0]} "Printer "HP 4" '
                                      'broken" from carol@example.org'}),
        ("application/json", {"text": f'ticket.created: ticket {numbers[1]} "VPN down" from '
                                      'carol@example.org'})]
    queue = run.json("status", config=config)["hook_queue"]
    assert queue["pending"] == 1 and "exited with status 22" in queue["last_error"]["error"]


# -- mail that is not a request (spec §9) and monitoring alerts (§10.2) ----------------------------

class Hooked:
    """One IMAP account on Dovecot, auto-mails to the SMTP sink, the recording hook, [[rules]];
    each ``fetch`` reads the mail it is given, through the command line."""

    def __init__(self, dovecot, mail_user, write_config, smtp, run, tmp_path, *rules: dict):
        self.dovecot, self.mail_user, self.smtp, self.run = dovecot, mail_user, smtp, run
        self.config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                                   smtp=smtp.config(), resources=RESOURCES,
                                   hooks={"command": [str(recorder(tmp_path))]})
        data = tomllib.loads(self.config.read_text())
        data["rules"] = list(rules)
        self.config.write_text(tomli_w.dumps(data))

    def fetch(self, *raws: bytes) -> None:
        self.dovecot.append(self.mail_user, list(raws))
        result = self.run("fetch", config=self.config)
        assert result.exit_code == 0, result.output

    def json(self, *args: str):
        return self.run.json(*args, config=self.config)


def test_a_bounce_is_message_bounced_and_auto_replies_and_ignored_mail_are_no_event(
        dovecot, mail_user, write_config, smtp, run, tmp_path):
    desk = Hooked(dovecot, mail_user, write_config, smtp, run, tmp_path)
    desk.fetch(message("Printer broken", sender="Dana <dana@customer.example>"))
    [ticket] = desk.json("tickets", "list")
    [receipt] = [m for _, m in smtp.mails() if m["X-Helpdesk-Fetch"].startswith("new_ticket;")]

    desk.fetch(answering(samples.gmail_vacation, receipt, ticket["tag"]),
               answering(samples.postfix_delayed, receipt, ticket["tag"]),
               samples.backscatter())

    shown = desk.json("tickets", "show", ticket["number"])
    assert [m["kind"] for m in shown["messages"] if m["direction"] == "in"] == [
        "message", "auto_reply", "bounce"]  # the out-of-office and the delay notice
    assert [m["reason"] for m in desk.json("ignored", "list")] == ["bounce"]
    assert [e["event"] for e in events(tmp_path)] == ["ticket.created"]

    desk.fetch(answering(samples.postfix_failed, receipt, ticket["tag"]))

    created, bounced = events(tmp_path)
    assert bounced["event"] == "message.bounced"
    assert set(bounced) == {"event", "id", "ticket", "message", "bounced_addresses"}
    assert set(created) == {"event", "id", "ticket", "message"}
    assert bounced["bounced_addresses"] == ["dana@customer.example"]
    assert (bounced["message"]["kind"], bounced["message"]["from"]) == (
        "bounce", "mailer-daemon@mail.example.com")
    assert (bounced["ticket"]["number"], bounced["ticket"]["status"]) == (ticket["number"],
                                                                          "new")
    assert desk.json("status")["hook_queue"]["pending"] == 0


def test_alerts_are_created_then_replied_and_their_recovery_replied_with_the_ticket_closed(
        dovecot, mail_user, write_config, smtp, run, tmp_path):
    desk = Hooked(dovecot, mail_user, write_config, smtp, run, tmp_path, NAGIOS_RULE)

    desk.fetch(alert("PROBLEM", "web01"))
    desk.fetch(alert("PROBLEM", "web01"))  # the monitoring system notifies again
    desk.fetch(alert("RECOVERY", "web01"))
    desk.fetch(alert("RECOVERY", "web01"))  # no open ticket of its key: ignored
    desk.fetch(alert("PROBLEM", "web01"))  # the next problem: a new ticket

    first, second = (t["number"] for t in desk.json("tickets", "list"))
    assert [(e["event"], e["ticket"]["number"], e["ticket"]["status"], e["message"]["kind"],
             e["message"]["rule"]) for e in events(tmp_path)] == [
        ("ticket.created", first, "new", "alert", "nagios"),
        ("ticket.replied", first, "new", "alert", "nagios"),
        ("ticket.replied", first, "closed", "alert", "nagios"),
        ("ticket.created", second, "new", "alert", "nagios")]
    assert [m["reason"] for m in desk.json("ignored", "list")] == ["nagios"]
