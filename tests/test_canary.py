"""Canary messages (spec §11.3): `probe send` mails each account a signed test message through a
real SMTP server; the tests carry it into the account's real Dovecot mailbox (as the mail
system would), and `fetch` records its travel time and files no ticket. A canary that never
arrives makes `check` CRITICAL (time shifted with libfaketime); one at the wrong account, or
with a forged signature, is ordinary mail."""

from __future__ import annotations

import tomllib

import tomli_w

from tests.mails import message
from tests.proc import helpdesk_fetch
from tests.test_ingest_maildir import make_maildir


def probe_setup(dovecot, mail_user, smtp, write_config, **accounts_extra):
    """Two IMAP accounts on Dovecot, each with its address, and [smtp] to the sink."""
    accounts = [dovecot.account("helpdesk", mail_user, address="helpdesk@example.com"),
                dovecot.account("support", f"{mail_user}-s", address="support@example.com"),
                *accounts_extra.get("more", [])]
    return write_config(accounts, smtp=smtp.config())


def sent(smtp) -> list[tuple[list[str], bytes]]:
    return [(rcpts, raw) for _, rcpts, raw in smtp.messages]


def canaries(run, config) -> dict[str, dict]:
    return {a["name"]: a["canary"] for a in run.json("status", config=config)["accounts"]}


def check(config, *args: str, minutes: int = 0):
    result = helpdesk_fetch("check", "--max-age", "1000", *args, config=config,
                            wrapper=("faketime", "-f", f"+{minutes}m"))
    return result.returncode, result.stdout.decode()


def test_a_canary_travels_and_is_recorded_without_a_ticket(dovecot, mail_user, smtp,
                                                            write_config, run):
    config = probe_setup(dovecot, mail_user, smtp, write_config)

    result = run("probe", "send", config=config)

    assert (result.exit_code, result.output) == (0, "")  # under cron: silent
    assert sorted(rcpts for rcpts, _ in sent(smtp)) == [["helpdesk@example.com"],
                                                         ["support@example.com"]]
    body = sent(smtp)[0][1].split(b"\r\n\r\n", 1)[1]
    assert b"=\r\n" not in body and b"it never becomes a ticket" in body  # no soft breaks
    waiting = canaries(run, config)
    assert waiting["helpdesk"]["sent_at"] and waiting["helpdesk"]["received_at"] is None
    for rcpts, raw in sent(smtp):  # the mail system delivers them
        dovecot.deliver(mail_user if rcpts == ["helpdesk@example.com"] else f"{mail_user}-s",
                        [raw])
    plan = run("fetch", "--dry-run", config=config)
    assert "-> no ticket: the canary" in plan.output
    assert canaries(run, config)["helpdesk"]["received_at"] is None  # a dry run records nothing

    assert run("fetch", config=config).exit_code == 0

    arrived = canaries(run, config)
    for name in ("helpdesk", "support"):
        assert arrived[name]["received_at"] is not None
        assert 0 <= arrived[name]["travel_seconds"] < 60
    assert run.json("tickets", "list", config=config) == []
    assert dovecot.messages(mail_user) == [] and dovecot.messages(f"{mail_user}-s") == []
    assert run("fetch", config=config).exit_code == 0  # accounted for: never read twice
    assert run.json("tickets", "list", config=config) == []
    text = run("status", config=config).output
    assert "Canaries (probe send)" in text and "helpdesk: arrived after" in text
    code, line = check(config, minutes=120)
    assert code == 0 and "canary_helpdesk=" in line and "s;;;0" in line


def test_a_canary_that_never_arrives_makes_check_critical(dovecot, mail_user, smtp,
                                                          write_config, run):
    config = probe_setup(dovecot, mail_user, smtp, write_config)
    assert run("fetch", config=config).exit_code == 0
    assert run("probe", "send", "--account", "helpdesk", config=config).exit_code == 0
    [(_, lost)] = sent(smtp)

    code, line = check(config, minutes=29)
    assert code == 0
    # On its way: the datum stays in the label set, unknown (a graph shows a gap, not an end)
    assert "canary_helpdesk=U;;;0" in line and "canary_support" not in line
    code, line = check(config, minutes=31)

    assert code == 2
    assert line.startswith("HELPDESK-FETCH CRITICAL - helpdesk: the canary sent 31 min ago (")
    assert "has not arrived (canary_max_minutes 30) |" in line and "support" not in line.split(
        "|")[0]
    # A later canary that arrives means the way is open again: the lost one is forgotten.
    assert run("probe", "send", "--account", "helpdesk", config=config).exit_code == 0
    dovecot.deliver(mail_user, [sent(smtp)[-1][1]])
    assert run("fetch", config=config).exit_code == 0
    assert check(config, minutes=31)[0] == 0
    assert lost != sent(smtp)[-1][1]


def test_a_canary_at_the_wrong_account_or_forged_is_ordinary_mail(dovecot, mail_user, smtp,
                                                                  write_config, run):
    config = probe_setup(dovecot, mail_user, smtp, write_config)
    assert run("probe", "send", "--account", "helpdesk", config=config).exit_code == 0
    [(_, raw)] = sent(smtp)
    signature = raw.split(b"signature=")[1][:32]
    forged = raw.replace(signature, bytes(reversed(signature)))
    dovecot.deliver(f"{mail_user}-s", [raw])  # diverted: a forward, a transport rule
    dovecot.deliver(mail_user, [forged])

    result = helpdesk_fetch("fetch", config=config)

    assert result.returncode == 0
    assert (b"account 'support': the canary sent to account 'helpdesk' arrived here: filed as "
            b"ordinary mail") in result.stderr
    tickets = run.json("tickets", "list", config=config)
    assert sorted(t["subject"] for t in tickets) == ["helpdesk-fetch canary for account "
                                                     "helpdesk"] * 2
    assert canaries(run, config)["helpdesk"]["received_at"] is None
    assert smtp.messages[1:] == []  # ordinary, but ours: never answered


def test_no_rule_ignores_a_canary_and_a_diverted_one_is_a_ticket(dovecot, mail_user, smtp,
                                                                 write_config, run):
    """A rule that ignores machines' mail matches canaries too: this account's own is still
    recorded (not ignored mail), and one diverted here still becomes a ticket, the sign that
    mail to the other account goes astray."""
    config = probe_setup(dovecot, mail_user, smtp, write_config)
    data = tomllib.loads(config.read_text())
    data["rules"] = [{"name": "robots", "headers": {"Auto-Submitted": "^auto-generated$"},
                      "action": "ignore"}]
    config.write_text(tomli_w.dumps(data))
    assert run("probe", "send", config=config).exit_code == 0
    dovecot.deliver(mail_user, [raw for _, raw in sent(smtp)])  # support's diverted here
    dovecot.deliver(mail_user, [message("Disk report", headers={
        "Auto-Submitted": "auto-generated"})])  # what the rule is for

    assert run("fetch", config=config).exit_code == 0

    assert canaries(run, config)["helpdesk"]["received_at"] is not None
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "helpdesk-fetch canary for account support"]
    assert [m["subject"] for m in run.json("ignored", "list", config=config)] == ["Disk report"]
    last_run = run.json("status", config=config)["accounts"][0]["last_run"]
    assert last_run["ignored"] == 1  # the rule matched the diverted canary, which it did not
    # the rule decided only the mail it ignored: the diverted canary is set past it (as with
    # `ignored restore`), and no rule decided it
    assert last_run["rule_counts"] == {"robots": 1}


def test_probe_send_needs_smtp_and_an_address(tmp_path, write_config, run, smtp):
    make_maildir(tmp_path / "box", [])
    local = {"name": "local", "protocol": "maildir", "path": "box"}
    config = write_config([local])
    result = run("probe", "send", config=config)
    assert result.exit_code == 2 and "no [smtp] section" in result.stderr

    write_config([local], smtp=smtp.config())
    skipped = run("-v", "probe", "send", config=config)
    assert skipped.exit_code == 0 and "local: skipped: no address" in skipped.output
    named = run("probe", "send", "--account", "local", config=config)
    assert named.exit_code == 2
    assert "account 'local' has no address to send a canary to" in named.stderr
    assert smtp.messages == []


def test_a_canary_that_cannot_be_sent_is_critical_once_overdue(tmp_path, write_config, run):
    """A revoked grant on the sending side is what a canary is there to catch (spec §11.3),
    and under cron the exit status of ``probe send`` reaches no one: ``check`` says it."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "address": "local@example.com"}],
                          smtp={"host": "127.0.0.1", "port": 1, "security": "none",
                                "from_address": "helpdesk@example.com"})

    result = helpdesk_fetch("probe", "send", config=config)

    assert result.returncode == 1
    assert result.stderr.startswith(b"helpdesk-fetch: account 'local': canary not sent: SMTP "
                                    b"server 127.0.0.1:1: ")
    recorded = canaries(run, config)["local"]
    assert recorded["sent_at"] and recorded["received_at"] is None
    assert recorded["error"].startswith("SMTP server 127.0.0.1:1: connection refused")
    shown = run("status", config=config).output
    assert "  local: could not be sent " in shown and " ago): SMTP server 127.0.0.1:1: " in shown
    assert "could not be sent" not in check(config)[1]  # not yet overdue
    state, line = check(config, minutes=31)
    assert state == 2 and "local: the canary tried 31 min ago (" in line
    assert ") could not be sent: SMTP server 127.0.0.1:1: connection refused" in line


def test_a_canary_piped_in_by_the_mta(tmp_path, write_config, run, smtp):
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "address": "local@example.com"}], smtp=smtp.config())
    assert run("probe", "send", config=config).exit_code == 0

    result = run("deliver", "--account", "local", config=config, input=sent(smtp)[0][1])

    assert result.exit_code == 0
    assert canaries(run, config)["local"]["travel_seconds"] is not None
    assert run.json("tickets", "list", config=config) == []
    assert run("deliver", "--resource", "it-support", config=config,
               input=message("Hello")).exit_code == 0


def test_no_canary_while_ingest_is_disabled(tmp_path, write_config, run, smtp):
    """A clone of the machine (ingest off) must not mail the production mailboxes."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "address": "local@example.com"}], smtp=smtp.config())
    run("ingest", "disable", "--reason", "a clone", config=config)

    result = run("-v", "probe", "send", config=config)

    assert result.exit_code == 0 and "no canary sent" in result.output
    assert smtp.messages == [] and canaries(run, config)["local"]["sent_at"] is None
