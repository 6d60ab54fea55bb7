"""Mail that is not a request (spec §9, §4.1), end to end: Dovecot in, a real SMTP server out, the
command line in between. The sample bounces and auto-replies of tests/kinds_samples.py are
rewritten to answer the receipt this installation really sent (its Message-ID and tag)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from helpdesk_fetch.message.classify import classify
from helpdesk_fetch.message.parse import parse
from tests import kinds_samples as samples
from tests.chaos import KILLED
from tests.chaos import fetch as fetch_process
from tests.desk import Desk as CliDesk
from tests.mails import message, message_id_of
from tests.test_automail import at

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

STAFF = ["alice@example.com", "bob@example.com"]
SAMPLE_TAG = "[TicketID 1042QKXP]"


class Desk(CliDesk):
    """A helpdesk with an IMAP mailbox per account and auto-mails on, seen through the CLI."""

    def tickets(self) -> list[dict]:
        return self.json("tickets", "list")

    def only_ticket(self) -> dict:
        [ticket] = self.tickets()
        return self.json("tickets", "show", ticket["number"])

    def mails(self, kind: str) -> list:
        return [(rcpts, m) for rcpts, m in self.smtp.mails()
                if m["X-Helpdesk-Fetch"].startswith(f"{kind};")]

    def receipt(self):
        """Our one "we have your request" mail so far."""
        [(_, mail)] = self.mails("new_ticket")
        return mail

    def left(self, account: str = "helpdesk") -> list[bytes]:
        return self.dovecot.messages(self.users[account])


@pytest.fixture
def desk(dovecot, mail_user, write_config, smtp, run):
    users = {"helpdesk": mail_user, "support": f"{mail_user}-support"}
    config = write_config([dovecot.account(name, user, resource="it-support")
                           for name, user in users.items()],
                          smtp=smtp.config(), resources=[{"name": "it-support", "members": STAFF}])
    return Desk(dovecot, users, config, smtp, run)


def answering(sample, receipt, tag: str) -> bytes:
    """*sample* rewritten to answer (or bounce) our real *receipt* of the ticket with *tag*."""
    real_id = receipt["Message-ID"].strip().strip("<>")
    return (sample().replace(samples.RECEIPT_ID.encode(), real_id.encode())
            .replace(SAMPLE_TAG.encode(), tag.encode()))


def inbound(ticket: dict) -> list[tuple[str, str]]:
    return [(m["kind"], m["from"]) for m in ticket["messages"] if m["direction"] == "in"]


def request(desk: Desk, sender: str, subject: str = "Printer broken") -> dict:
    """A customer's request, fetched: its ticket (in progress, so that a change would show)."""
    desk.send(message(subject, sender=sender))
    desk.fetch()
    ticket = desk.tickets()[-1]
    assert desk.run("tickets", "set-status", ticket["number"], "in_progress",
                    config=desk.config).exit_code == 0
    return desk.json("tickets", "show", ticket["number"])


# -- auto-replies (§9.1) ---------------------------------------------------------------------------

@pytest.mark.parametrize("sample", [samples.exchange_oof_en, samples.exchange_oof_de,
                                    samples.gmail_vacation, samples.sieve_vacation],
                         ids=lambda s: s.__name__)
def test_an_out_of_office_reply_to_our_receipt_changes_nothing(desk, sample):
    before = request(desk, "Lena Schmidt <lena.schmidt@fabrikam.example>")
    sent = len(desk.smtp.messages)

    desk.send(answering(sample, desk.receipt(), before["tag"]))
    desk.fetch()

    after = desk.only_ticket()
    assert [kind for kind, _ in inbound(after)] == ["message", "auto_reply"]
    assert (after["status"], after["escalation_due_at"]) == ("in_progress",
                                                              before["escalation_due_at"])
    assert len(desk.smtp.messages) == sent  # not "the customer replied", no receipt
    assert desk.left() == []


def test_an_auto_reply_to_no_ticket_opens_none_and_is_kept_as_ignored(desk):
    raw = samples.gmail_vacation()  # answers a receipt this installation never sent

    desk.send(raw)
    desk.fetch()

    assert desk.tickets() == [] and desk.smtp.messages == [] and desk.left() == []
    [kept] = desk.json("ignored", "list")
    assert {k: kept[k] for k in ("account", "from", "subject", "reason")} == {
        "account": "helpdesk", "from": "maria.kunde@gmail.example",
        "subject": "Away until 7 December", "reason": "auto_reply"}
    assert set(kept) >= {"id", "received_at"}
    assert desk.run("ignored", "show", str(kept["id"]), "--raw",
                    config=desk.config).stdout_bytes == raw.replace(b"\n", b"\r\n")  # APPEND
    assert desk.json("status")["ignored_messages"] == 1
    assert desk.json("ignored", "show", str(kept["id"]))["why"] == "an auto-reply to no ticket"
    shown = desk.run("ignored", "show", str(kept["id"]), config=desk.config).stdout
    assert "  why:         an auto-reply to no ticket\n" in shown


# -- bounces (§9.2) --------------------------------------------------------------------------------

def test_a_bounce_of_our_receipt_is_appended_and_holds_the_address(desk):
    before = request(desk, "Dana <dana@customer.example>")
    sent = len(desk.smtp.messages)

    desk.send(answering(samples.postfix_failed, desk.receipt(), before["tag"]))
    desk.fetch()

    after = desk.only_ticket()
    assert inbound(after) == [("message", "dana@customer.example"),
                              ("bounce", "mailer-daemon@mail.example.com")]
    assert (after["status"], after["escalation_due_at"]) == ("in_progress",
                                                              before["escalation_due_at"])
    assert after["bounced_addresses"] == ["dana@customer.example"]
    assert len(desk.smtp.messages) == sent
    [held] = desk.json("status")["bouncing_addresses"]
    assert held["address"] == "dana@customer.example" and held["held_until"] > held["bounced_at"]
    assert "Bouncing addresses, sent no auto-mail: 1: dana@customer.example" in desk.run(
        "status", config=desk.config).output

    desk.send(message("Another question", sender="dana@customer.example"))
    desk.fetch()

    assert len(desk.tickets()) == 2
    assert [rcpts for rcpts, _ in desk.mails("new_ticket")] == [["dana@customer.example"]]
    assert len(desk.mails("new_ticket_resource")) == 2  # the staff are still told

    desk.send(message("A week later", sender="dana@customer.example"))
    later = at("+8d", desk.config, "fetch")  # bounce_hold_days (7) are over

    assert later.returncode == 0, later.stderr
    assert [rcpts for rcpts, _ in desk.mails("new_ticket")] == [["dana@customer.example"]] * 2


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY  # the parser and the classifier do not depend on the database
@pytest.mark.parametrize("sample", [s for s in samples.BOUNCES if s not in (
    samples.postfix_delayed, samples.exim_delayed_plain, samples.backscatter)],
    ids=lambda s: s.__name__)
def test_each_kind_of_bounce_finds_its_ticket(desk, sample):
    before = request(desk, "Dana <dana@customer.example>")
    raw = answering(sample, desk.receipt(), before["tag"])

    desk.send(raw)
    desk.fetch()

    after = desk.only_ticket()
    assert [kind for kind, _ in inbound(after)] == ["message", "bounce"]
    assert after["bounced_addresses"] == list(classify(parse(raw)).failed_recipients)
    assert after["bounced_addresses"]


def test_a_delay_notice_is_appended_and_marks_nothing(desk):
    before = request(desk, "Dana <dana@customer.example>")

    desk.send(answering(samples.postfix_delayed, desk.receipt(), before["tag"]))
    desk.fetch()

    after = desk.only_ticket()
    assert [kind for kind, _ in inbound(after)] == ["message", "bounce"]
    assert after["bounced_addresses"] == [] and after["status"] == "in_progress"
    assert desk.json("status")["bouncing_addresses"] == []


def test_ignored_mail_fetched_again_byte_for_byte_is_kept_once(desk):
    """Spec §4.1: bytes already stored for the account are taken as stored, kept as ignored
    mail too (the same bounce under another key: a UIDVALIDITY reset, a second delivery)."""
    bounce = samples.backscatter()
    desk.send(bounce)
    desk.fetch()
    desk.send(bounce)

    desk.fetch()

    assert len(desk.json("ignored", "list")) == 1 and desk.left() == []
    assert desk.json("status")["accounts"][0]["last_run"]["duplicates"] == 1


def test_backscatter_opens_no_ticket_and_marks_nothing(desk):
    desk.send(samples.backscatter())
    desk.fetch()

    assert desk.tickets() == [] and desk.left() == [] and desk.smtp.messages == []
    assert [m["reason"] for m in desk.json("ignored", "list")] == ["bounce"]
    assert desk.json("status")["bouncing_addresses"] == []


# -- one mail through two accounts (§4.1) ----------------------------------------------------------

def copies(raw: bytes) -> tuple[bytes, bytes]:
    """The one mail as it lies in each of the two mailboxes (each MTA adds its own lines)."""
    return (b"Delivered-To: helpdesk@example.com\r\n" + raw,
            b"Delivered-To: support@example.com\r\n" + raw)


def test_a_mail_to_two_accounts_is_one_ticket_in_one_run(desk):
    sent = dt.datetime.now(dt.UTC).replace(microsecond=0)  # not backlog: it is answered
    to_helpdesk, to_support = copies(message("VPN down", date=sent, to="helpdesk@example.com, "
                                                                     "support@example.com"))
    desk.send(to_helpdesk)
    desk.send(to_support, account="support")

    desk.fetch()

    ticket = desk.only_ticket()
    assert ticket["message_count"] == 1 and len(desk.mails("new_ticket")) == 1
    assert desk.left() == [] and desk.left("support") == []
    runs = {a["name"]: a["last_run"] for a in desk.json("status")["accounts"]}
    assert (runs["helpdesk"]["new_tickets"], runs["support"]["duplicates"]) == (1, 1)

    desk.send(to_support, account="support")  # a copy that comes back is only deleted
    desk.fetch()
    assert desk.left("support") == [] and desk.only_ticket()["message_count"] == 1


def test_a_mail_to_two_accounts_is_one_ticket_over_two_runs(desk):
    to_helpdesk, to_support = copies(message("VPN down"))
    desk.send(to_helpdesk)
    desk.fetch("--account", "helpdesk")

    desk.send(to_support, account="support")
    desk.fetch()

    assert desk.only_ticket()["message_count"] == 1 and len(desk.mails("new_ticket")) == 1
    assert desk.left("support") == []


def test_a_different_mail_with_the_same_message_id_is_not_a_copy(desk):
    """Message-ID, From, Date and Subject must all match: a broken mailer's reused ID is not
    enough to drop a mail."""
    desk.send(message("First", message_id="<reused@example.org>"))
    desk.send(message("Second", message_id="<reused@example.org>"), account="support")

    desk.fetch()

    assert len(desk.tickets()) == 2


def test_a_copy_by_its_headers_with_another_body_is_kept_as_ignored_mail(desk):
    """Spec §4.1: never in neither place. A mail list's copy (its footer), or another mail a
    broken mailer sent under the same Message-ID, From, Date and Subject: no second ticket or
    message, but its bytes are kept (ignored mail) and can be made a request."""
    sent = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    first = message("VPN down", message_id="<one@example.org>", date=sent, body="It is down.\n")
    listed = message("VPN down", message_id="<one@example.org>", date=sent,
                     body="It is down.\n-- \nThe it-users list\n")
    desk.send(first)
    desk.fetch("--account", "helpdesk")
    desk.send(listed, account="support")
    planned = desk.run("fetch", "--dry-run", config=desk.config).output

    desk.fetch()

    ticket = desk.only_ticket()
    assert (f"-> ignored (copy of a message on ticket {ticket['number']}, with another body): "
            "its bytes kept as ignored mail") in " ".join(planned.split())
    assert ticket["message_count"] == 1 and desk.left("support") == []
    [kept] = desk.json("ignored", "list")
    assert kept["reason"] == f"copy of a message on ticket {ticket['number']}, with another body"
    assert desk.run("ignored", "show", str(kept["id"]), "--raw",
                    config=desk.config).stdout_bytes == listed
    restored = desk.run("ignored", "restore", str(kept["id"]), config=desk.config)
    assert restored.exit_code == 0, restored.output
    assert sum(t["message_count"] for t in desk.tickets()) == 2


@SQLITE_ONLY  # a crash is the same code on both
def test_a_crash_between_recording_a_copy_and_deleting_it_loses_and_doubles_nothing(desk):
    to_helpdesk, to_support = copies(message("VPN down"))
    desk.send(to_helpdesk)
    desk.fetch("--account", "helpdesk")
    desk.send(to_support, account="support")

    crashed = fetch_process(desk.config, "--account", "support", crash_at="after_commit:1")

    assert crashed.returncode == KILLED, crashed.stderr
    assert desk.left("support") == [to_support]  # recorded, not yet deleted
    assert desk.only_ticket()["message_count"] == 1

    desk.fetch()

    assert desk.left("support") == [] and desk.only_ticket()["message_count"] == 1
    assert len(desk.mails("new_ticket")) == 1
    assert desk.json("status")["accounts"][1]["last_run"]["duplicates"] == 1


# -- ignored mail (§9.4) ---------------------------------------------------------------------------

def test_ignored_restore_makes_a_request_once(desk):
    raw = message("Re: our call", sender="Otto <otto@customer.example>",
                  headers={"Auto-Submitted": "auto-replied"}, body="Please call me back.\n")
    desk.send(raw)
    desk.fetch()
    [kept] = desk.json("ignored", "list")

    restored = desk.run("ignored", "restore", str(kept["id"]), config=desk.config)

    assert restored.exit_code == 0, restored.output
    ticket = desk.only_ticket()
    assert restored.output.startswith(f"{kept['id']}: restored <{message_id_of(raw)}> -> ticket "
                                      f"{ticket['number']} (new in it-support) [auto_reply]")
    assert restored.output.count(ticket["number"]) == 1
    assert inbound(ticket) == [("auto_reply", "otto@customer.example")]
    assert ticket["messages"][0]["message_id"] == message_id_of(raw)
    # an auto-reply is never answered, restored or not; the staff hear of the new ticket
    assert desk.mails("new_ticket") == [] and len(desk.mails("new_ticket_resource")) == 1

    again = desk.run("ignored", "restore", str(kept["id"]), config=desk.config)

    assert again.exit_code == 0, again.output
    assert f"already restored -> ticket {ticket['number']}" in again.output
    assert "nothing was stored again" in again.output
    assert len(desk.tickets()) == 1 and desk.only_ticket()["message_count"] == 1
    [listed] = desk.json("ignored", "list")
    assert listed["restored_at"] is not None
    assert desk.json("ignored", "show", str(kept["id"]))["restored_to"] == ticket["number"]
    assert desk.json("status")["ignored_messages"] == 0


def test_one_auto_reply_through_two_accounts_restored_twice_is_one_message(desk):
    """Both copies were ignored (an auto-reply of no ticket): restored, the first opens a
    ticket; the second is a copy of it (spec §4.1), not a second ticket."""
    sent = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    to_helpdesk, to_support = copies(message(
        "Re: our call", sender="Otto <otto@customer.example>", date=sent,
        headers={"Auto-Submitted": "auto-replied"}, body="Please call me back.\n"))
    desk.send(to_helpdesk)
    desk.send(to_support, account="support")
    desk.fetch()
    kept = desk.json("ignored", "list")
    assert len(kept) == 2

    for row in kept:
        restored = desk.run("ignored", "restore", str(row["id"]), config=desk.config)
        assert restored.exit_code == 0, restored.output

    assert desk.only_ticket()["message_count"] == 1


def test_rules_test_judges_mail_kept_as_ignored_again(desk, tmp_path):
    """`ignored show --raw > m.eml; rules test m.eml`: what the rules say of it now, not
    "already stored" (its bytes are stored, as ignored mail)."""
    desk.send(samples.backscatter())
    desk.fetch()
    [kept] = desk.json("ignored", "list")
    saved = tmp_path / "m.eml"
    saved.write_bytes(desk.run("ignored", "show", str(kept["id"]), "--raw",
                               config=desk.config).stdout_bytes)

    judged = desk.run("rules", "test", str(saved), config=desk.config)

    assert judged.exit_code == 0, judged.output
    assert "ignored (bounce)" in judged.output and "already stored" not in judged.output


def test_ignored_mail_is_pruned_after_ignored_days(desk):
    desk.send(samples.backscatter())
    desk.fetch()
    assert len(desk.json("ignored", "list")) == 1

    later = at("+31d", desk.config, "fetch")

    assert later.returncode == 0, later.stderr
    assert desk.json("ignored", "list") == []
    desk.send(samples.backscatter())  # its source key is kept: a new copy is new mail
    desk.fetch()
    assert len(desk.json("ignored", "list")) == 1


def test_ignored_mail_as_people_and_scripts_read_it(desk):
    """`ignored list` as a table in a pipe (ISO times) and at a terminal, `ignored show` as
    text, and the "Ignored mail" line of `status`, before and after a restore."""
    from tests.test_terminal import at_80_columns

    def status_line() -> str:
        status = desk.run("status", config=desk.config)
        assert status.exit_code == 0, status.output
        [line] = [line for line in status.stdout.splitlines() if line.startswith("Ignored mail")]
        return line

    desk.fetch()
    assert status_line() == "Ignored mail (kept 30 days): 0"
    assert "No ignored mail is kept." in at_80_columns("ignored", "list", config=desk.config)
    vacation = samples.gmail_vacation()
    desk.send(vacation, samples.backscatter())
    desk.fetch()
    kept = desk.json("ignored", "list")

    listed = desk.run("ignored", "list", config=desk.config)
    shown = desk.run("ignored", "show", str(kept[0]["id"]), config=desk.config)

    assert listed.exit_code == 0 and shown.exit_code == 0, listed.output + shown.output
    header, *rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert header == ["id", "account", "received", "from", "subject", "reason"]
    assert rows == [[str(m["id"]), "helpdesk", m["received_at"], m["from"], m["subject"],
                     m["reason"]] for m in kept]
    assert [row[5] for row in rows] == ["auto_reply", "bounce"]
    fields = {label.strip(): value.strip() for label, _, value in (
        line.partition(":") for line in shown.stdout.splitlines() if line.startswith("  "))}
    assert shown.stdout.startswith(f"Ignored message {kept[0]['id']}\n")
    assert {k: fields.get(k) for k in ("account", "reason", "kind", "from", "subject",
                                        "message id", "size", "sha256")} == {
        "account": "helpdesk", "reason": "auto_reply", "kind": "auto_reply",
        "from": "maria.kunde@gmail.example", "subject": "Away until 7 December",
        "message id": kept[0]["message_id"], "size": str(kept[0]["size"]),
        "sha256": kept[0]["sha256"]}
    assert f"helpdesk-fetch ignored restore {kept[0]['id']}" in shown.stdout
    line = status_line()
    assert line.startswith("Ignored mail (kept 30 days): 2") and "ignored list" in line
    terminal = at_80_columns("ignored", "list", config=desk.config)
    assert [row.split()[0] for row in terminal[1:] if row.strip()] == [
        str(m["id"]) for m in kept]

    assert desk.run("ignored", "restore", str(kept[0]["id"]),
                    config=desk.config).exit_code == 0

    [ticket] = desk.tickets()
    restored = desk.run("ignored", "show", str(kept[0]["id"]), config=desk.config).stdout
    assert re.search(rf"(?m)^  to ticket: +{ticket['number']}$", restored), restored
    assert "ignored restore" not in restored  # nothing left to do
    assert desk.run("ignored", "list", config=desk.config).stdout.splitlines()[1].endswith(
        "\tauto_reply (restored)")
    assert status_line().startswith("Ignored mail (kept 30 days): 1")


def test_unknown_ignored_ids_are_usage_errors(desk):
    desk.fetch()
    for argv in (["show", "7"], ["restore", "7"], ["show", "x"]):
        result = desk.run("ignored", *argv, config=desk.config)
        assert result.exit_code == 2 and "ignored list" in result.stderr, argv


# -- what a dry run says ---------------------------------------------------------------------------

def test_dry_run_names_each_kind_and_changes_nothing(desk):
    before = request(desk, "Lena Schmidt <lena.schmidt@fabrikam.example>")
    oof = answering(samples.exchange_oof_en, desk.receipt(), before["tag"])
    desk.send(oof, samples.backscatter(), message("New request"))

    result = desk.run("fetch", "--dry-run", config=desk.config)

    assert result.exit_code == 0, result.output
    out = result.output
    assert f"-> ticket {before['number']} (by tag) [auto_reply]: an auto-reply: appended" in out
    assert "-> ignored (bounce) [bounce]: a bounce of no mail stored here" in out
    assert "-> a new ticket in it-support [message]: no matching ticket: a new one; " \
           "auto-mails: new_ticket to carol@example.org; new_ticket_resource to " \
           "alice@example.com, bob@example.com" in out
    assert len(desk.left()) == 3 and desk.json("ignored", "list") == []
    from tests.test_terminal import at_80_columns

    lines = at_80_columns("fetch", "--dry-run", config=desk.config)  # wrapped below the "->"
    # at most 80 columns, but for a word longer than that (a Message-ID), which stays whole
    assert all(len(line) <= 80 or " " not in line.strip() for line in lines), lines
    verdict = next(i for i, line in enumerate(lines) if line.startswith("    -> a new ticket"))
    assert lines[verdict + 1].startswith("       auto-mails: new_ticket to carol@"), lines
