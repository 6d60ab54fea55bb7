"""Ticket rules and auto-mails end to end (spec §5, §6): Dovecot in, a real SMTP server out.

Time is shifted with libfaketime (`faketime`), the standard tool: the program has no private clock.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.mails import message, message_id_of
from tests.servers import SmtpSink

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ROOT = Path(__file__).resolve().parent.parent
STAFF = ["alice@example.com", "bob@example.com"]


@pytest.fixture
def helpdesk(dovecot, mail_user, write_config, smtp):
    """An IMAP helpdesk mailbox with auto-mails on; returns (config path, send function)."""

    def make(**settings):
        config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                              smtp=smtp.config(), settings=settings,
                              resources=[{"name": "it-support", "members": STAFF}])

        def send(*raws: bytes) -> None:
            dovecot.append(mail_user, list(raws))

        return config, send

    return make


DATED = f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\n".encode()  # mail is dated


def at(offset: str, config: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the CLI with the system clock shifted by *offset* (e.g. "-20d") via libfaketime."""
    if shutil.which("faketime") is None:
        raise RuntimeError("faketime is not installed; run `sudo make test-deps`")
    return subprocess.run(["faketime", "-f", offset, sys.executable, "-m", "helpdesk_fetch",
                           "--config", str(config), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def only_ticket(run, config) -> dict:
    tickets = run.json("tickets", "list", config=config)
    assert len(tickets) == 1, tickets
    return tickets[0]


def mails_of(smtp, kind: str):
    return [(rcpts, m) for rcpts, m in smtp.mails() if m["X-Helpdesk-Fetch"].startswith(kind)]


def test_new_ticket_mails_requester_and_resource(helpdesk, smtp, run):
    config, send = helpdesk()
    request = message("Printer broken", sender="Carol <carol@example.org>")
    send(request)

    assert run("fetch", config=config).exit_code == 0

    ticket = only_ticket(run, config)
    assert ticket["status"] == "new" and ticket["escalation_due_at"]
    [(rcpts, answer)] = mails_of(smtp, "new_ticket;")
    assert rcpts == ["carol@example.org"]
    assert ticket["tag"] in answer["Subject"]
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer["X-Auto-Response-Suppress"] == "All"
    assert answer["In-Reply-To"] == f"<{message_id_of(request)}>"
    assert f"<{message_id_of(request)}>" in answer["References"]
    assert ticket["number"] in answer.get_content() and "it-support" in answer.get_content()
    [(staff, notice)] = mails_of(smtp, "new_ticket_resource")
    assert sorted(staff) == STAFF and "Printer broken" in notice["Subject"]
    shown = run.json("tickets", "show", ticket["number"], config=config)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "out"]
    assert ticket["message_count"] == 1  # our own auto-mails are not counted


def test_customer_reply_rearms_escalation_and_tells_the_staff(helpdesk, smtp, run):
    config, send = helpdesk()
    first = message("VPN down")
    send(first)
    run("fetch", config=config)
    before = only_ticket(run, config)

    send(message("Re: VPN down", in_reply_to=f"<{message_id_of(first)}>"))
    assert at("+1h", config, "fetch").returncode == 0  # the reply comes an hour later

    after = only_ticket(run, config)
    assert after["status"] == "confirmed_unread"
    assert after["escalation_due_at"] > before["escalation_due_at"]
    [(rcpts, notice)] = mails_of(smtp, "customer_reply")
    assert sorted(rcpts) == STAFF and before["tag"] in notice["Subject"]


@pytest.mark.parametrize("switch, status, told", [(True, "in_progress", ["bob@example.com"]),
                                                   (False, "confirmed_unread", [])])
def test_member_reply(helpdesk, smtp, run, switch, status, told):
    config, send = helpdesk(no_status_change_from_members=switch)
    first = message("Disk full")
    send(first)
    run("fetch", config=config)
    ticket = only_ticket(run, config)
    run("tickets", "set-status", ticket["number"], "in_progress", config=config)
    due = only_ticket(run, config)["escalation_due_at"]

    send(message(f"Re: {ticket['tag']} Disk full", message_id=None,
                 sender='"Alice (IT)" <ALICE@Example.COM>'))
    assert at("+1h", config, "fetch").returncode == 0

    after = only_ticket(run, config)
    assert after["status"] == status and after["message_count"] == 2
    assert (after["escalation_due_at"] == due) is switch
    notices = mails_of(smtp, "customer_reply")
    recipients = [r for rcpts, _ in notices for r in rcpts]
    assert "alice@example.com" not in recipients  # never about their own message
    if switch:
        assert recipients == told


@pytest.mark.parametrize("switch", [False, True])
def test_a_member_who_opens_a_ticket_is_sent_nothing_about_it(helpdesk, smtp, run, switch):
    """Spec §5.3: nobody is sent an auto-mail about an event their own message caused, with or
    without no_status_change_from_members. A member of the resource who writes a new request
    gets no receipt and not the new_ticket_resource notice; the rest of the staff are told."""
    config, send = helpdesk(no_status_change_from_members=switch)
    send(message("Server room too warm", sender='"Alice (IT)" <ALICE@Example.COM>'))

    assert run("fetch", config=config).exit_code == 0

    ticket = only_ticket(run, config)
    assert ticket["status"] == "new" and ticket["requester"] == "alice@example.com"
    assert mails_of(smtp, "new_ticket;") == []
    assert [rcpts for rcpts, _ in mails_of(smtp, "new_ticket_resource")] == [["bob@example.com"]]


def test_forged_tag_is_not_threaded(helpdesk, run):
    config, send = helpdesk()
    send(message("Laptop"))
    run("fetch", config=config)
    number = only_ticket(run, config)["number"]
    send(message(f"Re: [TicketID {number}ZZZZ] Laptop", message_id=None))

    run("fetch", config=config)

    assert len(run.json("tickets", "list", config=config)) == 2


@pytest.mark.parametrize("subject", ["Printer on floor 3 jams", "Printer on floor 3 jams again",
                                     "Printer on floor 3 jams again and again"])
def test_an_automails_subject_starts_on_its_subject_line(helpdesk, smtp, run, subject):
    """A Subject of 70 to 78 characters is not folded whole onto the next line (legal, but it
    breaks filters on ^Subject:.*TicketID, and some programs show a leading space)."""
    config, send = helpdesk()
    send(message(subject))

    assert run("fetch", config=config).exit_code == 0

    [receipt] = [raw for _, rcpts, raw in smtp.messages if rcpts == ["carol@example.org"]]
    assert re.search(rb"\r\nSubject: \[TicketID \d+[A-Z]{4}\] We have received", receipt)


def test_reply_within_the_reactivation_window_reopens(helpdesk, smtp, run):
    config, send = helpdesk(reactivation_days=14)
    send(message("Monitor"))
    run("fetch", config=config)
    ticket = only_ticket(run, config)
    assert at("-3d", config, "tickets", "close", ticket["number"]).returncode == 0

    send(message(f"Re: {ticket['tag']} Monitor", sender="alice@example.com"))  # members too
    run("fetch", config=config)

    after = only_ticket(run, config)
    assert after["status"] == "confirmed_unread" and after["closed_at"] is None
    assert mails_of(smtp, "ticket_closed") == []


def test_reply_after_the_window_is_rejected_and_answered(helpdesk, smtp, run):
    config, send = helpdesk(reactivation_days=14)
    send(message("Keyboard"))
    run("fetch", config=config)
    ticket = only_ticket(run, config)
    assert at("-20d", config, "tickets", "close", ticket["number"]).returncode == 0
    closed = only_ticket(run, config)

    late = message(f"Re: {ticket['tag']} Keyboard", sender="dave@example.org")
    send(late)
    assert run("fetch", config=config).exit_code == 0

    after = only_ticket(run, config)
    assert after["status"] == "closed" and after["closed_at"] == closed["closed_at"]
    assert after["message_count"] == 2
    shown = run.json("tickets", "show", ticket["number"], config=config)
    rejected = [m for m in shown["messages"] if m["state"] == "rejected"]
    assert [m["message_id"] for m in rejected] == [message_id_of(late)]
    [(rcpts, answer)] = mails_of(smtp, "ticket_closed")
    assert rcpts == ["dave@example.org"] and ticket["tag"] in answer["Subject"]
    assert "14 days" in answer.get_content()
    assert mails_of(smtp, "customer_reply") == []


def stamped(days_ago: float) -> dict[str, str]:
    """The Received field the helpdesk's mail server writes on top as a message arrives."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    return {"Received": f"from mx.example.org by mail.example.com (Postfix) with ESMTPS id "
                        f"4QxY; {format_datetime(when)}"}


@pytest.fixture
def local_helpdesk(tmp_path, write_config, smtp):
    """A Maildir helpdesk with auto-mails on, reactivation_days = 14 (no TLS: its runs may be
    dated weeks back): its ``config`` path, ``send(raw)``, and ``configure(**settings)`` to
    write the file again with these settings too."""
    box = tmp_path / "box"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)

    def configure(**settings) -> Path:
        return write_config([{"name": "helpdesk", "protocol": "maildir", "path": str(box),
                              "resource": "it-support"}], smtp=smtp.config(),
                            settings={"reactivation_days": 14, **settings},
                            resources=[{"name": "it-support", "members": STAFF}])

    names = iter(range(1_000_000))

    def send(raw: bytes) -> None:
        (box / "new" / f"1764300000.M{next(names)}P1.test").write_bytes(raw)

    return SimpleNamespace(config=configure(), send=send, configure=configure)


def days_ago(days: int) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).strftime("%Y-%m-%d")


def test_a_reply_that_arrived_in_the_window_while_nothing_read_the_mailbox_reopens(
        local_helpdesk, smtp, run):
    """Spec §5.4 counts from when a reply was received: one that reached the mailbox 10 days
    after the closing, while ingest was off, reopens the ticket when a run reads it 20 days
    after (the mailbox's last read, 25 days ago, is older than the stamp)."""
    config, send = local_helpdesk.config, local_helpdesk.send
    send(message("Keyboard"))
    assert at("-25d", config, "fetch").returncode == 0
    ticket = only_ticket(run, config)
    assert at("-20d", config, "tickets", "close", ticket["number"]).returncode == 0
    send(message(f"Re: {ticket['tag']} Keyboard", sender="dave@example.org",
                 headers=stamped(10)))

    planned = run("fetch", "--dry-run", config=config)
    done = run("fetch", config=config)

    assert "reply within 14 days of closing (it reached the mailbox " in planned.output
    assert done.exit_code == 0
    after = only_ticket(run, config)
    assert after["status"] == "confirmed_unread" and after["closed_at"] is None
    assert mails_of(smtp, "ticket_closed") == []


def test_a_received_stamp_older_than_the_mailboxs_last_read_counts_from_that_read(
        local_helpdesk, smtp, run):
    """A stamp from before the account's last successful run is wrong (that run would have
    read the mail) or forged: it counts from that run, 17 days after the closing, too late.
    Without a stamp, a reply counts from now, as mail delivered by deliver always does."""
    config, send = local_helpdesk.config, local_helpdesk.send
    send(message("Keyboard"))
    assert at("-25d", config, "fetch").returncode == 0
    ticket = only_ticket(run, config)
    assert at("-20d", config, "tickets", "close", ticket["number"]).returncode == 0
    assert at("-3d", config, "fetch").returncode == 0  # the mailbox read, empty
    send(message(f"Re: {ticket['tag']} Keyboard", sender="dave@example.org",
                 headers=stamped(10)))
    send(message(f"Re: {ticket['tag']} Keyboard", sender="erin@example.org"))

    planned = run("fetch", "--dry-run", config=config)
    assert run("fetch", config=config).exit_code == 0

    assert (f"reply after the reactivation window (it reached the mailbox {days_ago(3)} "
            in planned.output)
    assert "reply after the reactivation window: kept as rejected" in planned.output
    assert only_ticket(run, config)["status"] == "closed"
    assert sorted(rcpts for rcpts, _ in mails_of(smtp, "ticket_closed")) == [
        ["dave@example.org"], ["erin@example.org"]]


def test_a_reply_retried_after_the_window_counts_from_when_it_arrived(local_helpdesk, smtp,
                                                                      run):
    """errors retry judges a reply to a closed ticket by when it arrived (spec §5.4), not by
    how long the fix took: stamped 12 days after the closing and set aside 10 days after it
    (over max_message_bytes), it reopens the ticket when retried 20 days after. The stamp is
    bounded by the mailbox's last read before the failure, not by the run that set it aside."""
    config, send = local_helpdesk.config, local_helpdesk.send
    local_helpdesk.configure(max_message_bytes=4000)
    send(message("Keyboard"))
    assert at("-25d", config, "fetch").returncode == 0
    ticket = only_ticket(run, config)
    assert at("-20d", config, "tickets", "close", ticket["number"]).returncode == 0
    send(message(f"Re: {ticket['tag']} Keyboard", sender="dave@example.org",
                 body="It still sticks.\n" * 300, headers=stamped(12)))
    assert at("-10d", config, "fetch").returncode == 0
    assert run.json("errors", "list", config=config)[0]["failed_at"].startswith(days_ago(10))

    local_helpdesk.configure(max_message_bytes=40000)  # the fix
    retried = run("errors", "retry", "--all", config=config)

    assert retried.exit_code == 0, retried.output
    assert f"reply within 14 days of closing (it reached the mailbox {days_ago(12)} " in \
        retried.output
    after = only_ticket(run, config)
    assert after["status"] == "confirmed_unread" and after["closed_at"] is None
    assert mails_of(smtp, "ticket_closed") == []


def test_a_reply_restored_after_the_window_counts_from_when_it_was_kept(local_helpdesk, smtp,
                                                                       run):
    """ignored restore judges a reply to a closed ticket by when it came in and was kept as
    ignored mail (spec §5.4), not by when a rule's misfire was noticed."""
    config, send = local_helpdesk.config, local_helpdesk.send
    with config.open("a") as file:
        file.write('\n[[rules]]\nname = "spam"\nheaders = { "X-Spam-Flag" = "^yes$" }\n'
                   'action = "ignore"\n')
    send(message("Keyboard"))
    assert at("-25d", config, "fetch").returncode == 0
    ticket = only_ticket(run, config)
    assert at("-20d", config, "tickets", "close", ticket["number"]).returncode == 0
    send(message(f"Re: {ticket['tag']} Keyboard", sender="dave@example.org",
                 headers={"X-Spam-Flag": "YES"}))
    assert at("-10d", config, "fetch").returncode == 0
    [kept] = run.json("ignored", "list", config=config)

    restored = run("ignored", "restore", str(kept["id"]), config=config)

    assert restored.exit_code == 0, restored.output
    after = only_ticket(run, config)
    assert after["status"] == "confirmed_unread" and after["closed_at"] is None, restored.output
    assert mails_of(smtp, "ticket_closed") == []


@pytest.mark.parametrize("headers", [{"Auto-Submitted": "auto-generated"},
                                     {"List-Id": "<users.lists.example.org>"},
                                     {"Precedence": "bulk"},
                                     {"X-Auto-Response-Suppress": "OOF, AutoReply"}])
def test_robots_and_lists_are_ingested_but_never_answered(helpdesk, smtp, run, headers):
    """Never answered (spec §6): the sender gets nothing; the staff are told of the ticket as
    of any other (§5.1)."""
    config, send = helpdesk()
    send(message("Nightly report", headers=headers), message("A real request"))

    assert run("fetch", config=config).exit_code == 0

    assert len(run.json("tickets", "list", config=config)) == 2
    assert {m["Subject"].split("] ", 1)[1] for _, m in smtp.mails()} == {
        "We have received your request: A real request",
        "New request from carol@example.org: A real request",
        "New request from carol@example.org: Nightly report"}
    assert [r for r, _ in mails_of(smtp, "new_ticket;")] == [["carol@example.org"]]


@pytest.mark.parametrize("headers", [{"Auto-Submitted": "auto-generated"},
                                     {"Precedence": "junk"}, {"Precedence": "list"}])
def test_generated_junk_and_list_mail_is_ingested_but_never_answered(helpdesk, smtp, run,
                                                                     headers):
    """Spec §6 (RFC 3834): Auto-Submitted other than "no", Precedence bulk, junk or list."""
    config, send = helpdesk()
    send(message("Nightly backup report", headers=headers), message("A real request"))

    assert run("fetch", config=config).exit_code == 0

    assert len(run.json("tickets", "list", config=config)) == 2
    receipts = mails_of(smtp, "new_ticket;")
    assert len(receipts) == 1 and "A real request" in receipts[0][1]["Subject"]
    assert len(mails_of(smtp, "new_ticket_resource")) == 2  # the staff hear of both


@pytest.mark.parametrize("value", ["no", "No"])
def test_auto_submitted_no_is_answered_like_any_request(helpdesk, smtp, run, value):
    """A person's client may say so outright (RFC 3834: "no" is a message not sent
    automatically); it is answered like mail without the header."""
    config, send = helpdesk()
    send(message("Printer broken", headers={"Auto-Submitted": value}))

    assert run("fetch", config=config).exit_code == 0

    assert [rcpts for rcpts, _ in mails_of(smtp, "new_ticket;")] == [["carol@example.org"]]
    assert [sorted(rcpts) for rcpts, _ in mails_of(smtp, "new_ticket_resource")] == [STAFF]


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@example.org", "postmaster@example.org",
                                    "no-reply@shop.example", "users-request@lists.example.org",
                                    "helpdesk@example.com", "no_reply@shop.example",
                                    "noreply+orders@shop.example",
                                    "bounces+c=example.org@esp.example"])
def test_daemon_and_own_senders_are_never_answered(helpdesk, smtp, run, sender):
    """The staff are told of what a robot's mail opens; of mail from our own address (our
    SMTP sender or a mailbox of ours) nobody is told: that would answer ourselves."""
    config, send = helpdesk()
    send(message("Delivery report", sender=sender), message("A real request"))
    run("fetch", config=config)
    assert len(run.json("tickets", "list", config=config)) == 2
    receipts = mails_of(smtp, "new_ticket;")
    assert len(receipts) == 1 and "A real request" in receipts[0][1]["Subject"]
    told = [m["Subject"] for _, m in mails_of(smtp, "new_ticket_resource")]
    assert len(told) == (1 if sender == "helpdesk@example.com" else 2), told


def test_a_web_form_from_a_no_reply_address_is_told_to_the_staff(helpdesk, smtp, run):
    """A shop's contact form sends from no-reply@ with the customer in Reply-To: never
    answered (the From is a robot's), and still a request the team must hear of."""
    config, send = helpdesk()
    send(message("Order 4711 damaged", sender="no-reply@shop.example",
                 headers={"Reply-To": "customer@example.net"}))

    assert run("fetch", config=config).exit_code == 0

    assert mails_of(smtp, "new_ticket;") == []
    [(rcpts, told)] = mails_of(smtp, "new_ticket_resource")
    assert sorted(rcpts) == STAFF and "Order 4711 damaged" in told["Subject"]


def test_a_robots_reply_to_a_ticket_tells_nobody(helpdesk, smtp, run):
    """A robot among the staff (a moderated list, another ticket system) answering our
    notification must not be told of its own answer again and again: replies that are never
    answered cause no customer_reply either."""
    config, send = helpdesk()
    send(message("Printer broken"))
    run("fetch", config=config)
    tag = only_ticket(run, config)["tag"]
    sent = len(smtp.messages)
    send(*[message(f"Re: {tag} Printer broken", sender="list-owner@lists.example.org",
                   headers={"Precedence": "bulk"}) for _ in range(3)])

    assert run("fetch", config=config).exit_code == 0

    assert only_ticket(run, config)["message_count"] == 4 and len(smtp.messages) == sent


def test_mail_without_a_sender_counts_against_the_cap(helpdesk, smtp, run):
    config, send = helpdesk(automail_per_sender_per_hour=2)
    send(*[b"To: helpdesk@example.com\r\nSubject: Anon %d\r\n" % i + DATED + b"\r\nhi\r\n"
           for i in range(4)])

    result = run("fetch", config=config)

    assert result.exit_code == 0
    assert "1 auto-mail not sent: mail without a sender caused 2 in the last hour (cap 2)" in \
        result.stderr
    assert len(run.json("tickets", "list", config=config)) == 4
    assert len(mails_of(smtp, "new_ticket_resource")) == 2


@pytest.mark.parametrize("sender", [b"Moderator-Address <moderator>", b"root (Cron Daemon)"])
def test_a_sender_without_a_domain_is_kept_and_never_mailed(helpdesk, smtp, run, sender):
    """The ticket names the sender by its local part; the sender is sent nothing (no domain to
    send to: local robots write such addresses), the staff are told of the ticket."""
    config, send = helpdesk()
    send(b"From: " + sender + b"\r\nTo: helpdesk@example.com\r\nSubject: Approve\r\n\r\nhi\r\n",
         message("A real request"))

    assert run("fetch", config=config).exit_code == 0

    tickets = {t["subject"]: t for t in run.json("tickets", "list", config=config)}
    local = sender.split(b"<")[-1].split(b" ")[0].strip(b">").decode()
    assert tickets["Approve"]["requester"] == local
    shown = run.json("tickets", "show", tickets["Approve"]["number"], config=config)
    assert shown["messages"][0]["from"] == local
    receipts = mails_of(smtp, "new_ticket;")
    assert len(receipts) == 1 and "A real request" in receipts[0][1]["Subject"]
    assert len(mails_of(smtp, "new_ticket_resource")) == 2


def test_at_most_the_cap_of_automails_per_sender_and_hour(helpdesk, smtp, run):
    config, send = helpdesk(automail_per_sender_per_hour=10)
    send(*[message(f"Spam {i}", sender="robot@example.org") for i in range(50)])

    result = run("fetch", config=config)

    assert result.exit_code == 0
    assert "2 auto-mails not sent: robot@example.org caused 10 in the last hour (cap 10)" in \
        result.stderr
    assert len(run.json("tickets", "list", config=config)) == 50
    assert len(smtp.messages) == 10


def test_the_cap_also_counts_per_recipient_and_reply_to_is_checked(helpdesk, smtp, run):
    config, send = helpdesk(automail_per_sender_per_hour=3)
    send(*[message(f"Order {i}", sender=f"shop{i}@example.org",
                   headers={"Reply-To": "victim@example.net"}) for i in range(6)],
         message("Newsletter reply", headers={"Reply-To": "noreply@shop.example"}))

    assert run("fetch", config=config).exit_code == 0

    assert len(run.json("tickets", "list", config=config)) == 7
    assert [rcpts for rcpts, _ in mails_of(smtp, "new_ticket;")] == [["victim@example.net"]] * 3
    assert len(mails_of(smtp, "new_ticket_resource")) == 7  # the staff still hear of each


def test_backlog_of_an_old_mailbox_is_not_answered(helpdesk, smtp, run):
    config, send = helpdesk()
    old = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)
    send(message("Two years old", date=old), message("Today", date=dt.datetime.now(dt.UTC)))

    run("fetch", config=config)

    assert len(run.json("tickets", "list", config=config)) == 2
    subjects = [m["Subject"] for _, m in smtp.mails()]
    assert any("Today" in s for s in subjects) and not any("Two years" in s for s in subjects)


def test_mail_without_a_readable_date_gets_no_receipt_but_the_team_is_told(helpdesk, smtp,
                                                                            run):
    """A mail program always dates its mail (RFC 5322 requires it): undated or garbled-date
    mail is old mail, a newsletter or a script's, and is not told "we have your request"."""
    config, send = helpdesk()
    send(message("No date at all", date=None),
         message("Garbled", headers={"Date": "Wed, 15 Dec 2010    59:10 -0500"}, date=None))

    run("fetch", config=config)

    assert len(run.json("tickets", "list", config=config)) == 2
    subjects = [m["Subject"] for _, m in smtp.mails()]
    assert len(subjects) == 2 and all("New request from carol@example.org" in s
                                      for s in subjects), subjects  # the team's, no receipt


def test_smtp_down_queues_and_a_later_run_delivers(dovecot, mail_user, write_config, run):
    sink = SmtpSink()  # not started: nothing listens on its port yet
    config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                          smtp=sink.config(), resources=[{"name": "it-support",
                                                          "members": STAFF}])
    dovecot.append(mail_user, [message("While SMTP is down")])

    first = run("fetch", config=config)

    assert first.exit_code == 0 and "auto-mails not sent" in first.stderr
    assert "connection refused; is the server running, and are [smtp] host and port right?" \
        in first.stderr
    assert len(run.json("tickets", "list", config=config)) == 1
    assert run.json("status", config=config)["outbox_pending"] == 2
    assert "  last error: SMTP server 127.0.0.1:" in run("status", config=config).output
    # The outage goes on: under cron, news when it starts and when it ends (spec §11.2)
    dovecot.append(mail_user, [message("Still down")])
    again = run("fetch", config=config)
    assert again.exit_code == 0 and again.stderr == ""
    assert run.json("status", config=config)["outbox_pending"] == 4
    sink.start()
    try:
        soon = run("fetch", config=config)  # back-off: not due yet
        assert soon.exit_code == 0 and sink.messages == []
        later = at("+10m", config, "fetch")
        assert later.returncode == 0, later.stderr
        assert "the SMTP server works again (failing since " in later.stderr
        assert later.stderr.rstrip().endswith("; 4 auto-mails sent")
        assert len(sink.messages) == 4
        assert run.json("status", config=config)["outbox_pending"] == 0
        assert at("+30m", config, "fetch").stderr == ""  # said once
    finally:
        sink.stop()


def test_mail_held_back_by_an_outage_goes_out_with_the_first_session(dovecot, mail_user,
                                                                     write_config, run):
    """A receipt that waited only because the SMTP server was down does not wait out its
    back-off once the server works again: it goes out in the run that finds the server back."""
    sink = SmtpSink()  # not started: nothing listens on its port
    config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                          smtp=sink.config(), resources=[{"name": "it-support",
                                                          "members": STAFF}])
    dovecot.append(mail_user, [message("During the outage")])
    assert "auto-mails not sent" in run("fetch", config=config).stderr  # due again at +2m
    for offset in ("+3m", "+8m"):  # tried and deferred again: due at +7m, then at +16m
        assert at(offset, config, "fetch").returncode == 0
    sink.start()
    try:
        dovecot.append(mail_user, [message("After it")])

        back = at("+9m", config, "fetch")

        assert back.returncode == 0, back.stderr
        assert "the SMTP server works again" in back.stderr, back.stderr
        assert back.stderr.rstrip().endswith("; 4 auto-mails sent")  # the two held back too
        assert sorted(m["X-Helpdesk-Fetch"].split(";")[0] for _, m in sink.mails()) == [
            "new_ticket", "new_ticket", "new_ticket_resource", "new_ticket_resource"]
        assert run.json("status", config=config)["outbox_pending"] == 0
    finally:
        sink.stop()


def test_an_outage_deliver_meets_first_is_still_news_to_cron(dovecot, mail_user, write_config,
                                                             run):
    """deliver's stderr goes to the MTA, which drops it: it says the outage every time and
    records nothing, so that the next fetch (cron's mail) still reports it."""
    from tests.proc import helpdesk_fetch

    sink = SmtpSink()  # not started: nothing listens on its port
    config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                          smtp=sink.config(), resources=[{"name": "it-support",
                                                          "members": STAFF}])
    piped = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                           input=message("Piped in"))
    assert piped.returncode == 0 and b"auto-mails not sent" in piped.stderr
    dovecot.append(mail_user, [message("Fetched")])

    fetched = run("fetch", config=config)

    assert fetched.exit_code == 0 and "auto-mails not sent" in fetched.stderr


class _RefusingEveryone(dict):
    """SmtpSink.refuse for every recipient: 451, try again later."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "451 4.3.0 try again later"


def test_a_server_that_defers_every_mail_has_not_come_back(tmp_path, write_config, run):
    """A session that opens but takes no mail (4xx for each) ends no outage: saying "works
    again, 0 auto-mails sent" and then nothing while nothing goes out would mislead."""
    from tests.test_ingest_maildir import make_maildir

    sink = SmtpSink()  # not started: down
    make_maildir(tmp_path / "box", [message("One")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "resource": "it-support"}], smtp=sink.config(),
                          resources=[{"name": "it-support", "members": STAFF}])
    assert "auto-mails not sent" in run("fetch", config=config).stderr
    sink.refuse = _RefusingEveryone()
    sink.start()
    try:
        later = at("+10m", config, "fetch")
        assert later.returncode == 0 and "works again" not in later.stderr, later.stderr
        sink.refuse = {}
        after = at("+30m", config, "fetch")
        assert "works again" in after.stderr and "2 auto-mails sent" in after.stderr
    finally:
        sink.stop()


def test_a_dry_run_sends_no_queued_automail_and_changes_no_byte(dovecot, mail_user, write_config,
                                                                run, database_state):
    """Auto-mails queued while SMTP was down, due now and the server back: a dry run sends
    none of them (spec §3: it "changes nothing anywhere"), and leaves the database, queue
    included, byte-identical; the next real run sends them."""
    sink = SmtpSink()  # not started: nothing listens on its port yet
    config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                          smtp=sink.config(), resources=[{"name": "it-support",
                                                          "members": STAFF}])
    first = message("Printer broken")
    dovecot.append(mail_user, [first])
    assert run("fetch", config=config).exit_code == 0
    assert run.json("status", config=config)["outbox_pending"] == 2
    number = only_ticket(run, config)["number"]
    run("tickets", "set-status", number, "in_progress", config=config)
    dovecot.append(mail_user, [message("Re: Printer broken",
                                       in_reply_to=f"<{message_id_of(first)}>")])
    sink.start()
    try:
        before = database_state()
        assert before.get("wal", True)  # SQLite: the last change is still in the WAL

        dry = at("+1d", config, "fetch", "--dry-run")  # the queue's back-off long past

        assert dry.returncode == 0, dry.stderr
        assert f"-> ticket {number} (by reply)" in dry.stdout
        assert sink.messages == []
        assert database_state() == before
        real = at("+1d", config, "fetch")
        assert real.returncode == 0, real.stderr
        assert sorted(kind for kind in (m["X-Helpdesk-Fetch"].split(";")[0]
                                        for _, m in sink.mails())) == [
            "customer_reply", "new_ticket", "new_ticket_resource"]
    finally:
        sink.stop()


def test_our_own_automail_coming_back_opens_no_ticket(helpdesk, smtp, run):
    config, send = helpdesk()
    send(message("Scanner jam", sender="erin@example.org"))
    run("fetch", config=config)
    [(_, _, raw)] = [m for m in smtp.messages if b"new_ticket;" in m[2]]
    bounced = b"Received: from mx.example.org\r\n" + raw.replace(b"\n", b"\r\n").replace(
        b"\r\r\n", b"\r\n")
    altered = raw.replace(b"Message-ID: <", b"Message-ID: <copy-")
    send(bounced, altered)
    smtp.messages.clear()

    assert run("fetch", config=config).exit_code == 0

    ticket = only_ticket(run, config)
    assert ticket["status"] == "new" and ticket["message_count"] == 2  # the altered copy, kept
    assert smtp.messages == []


def test_german_texts_and_the_administrators_own_templates(helpdesk, smtp, run, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "new_ticket.txt").write_text(
        "Subject: Got it: {subject}\n\nTicket {number} for {requester}, {resource}, "
        "{reactivation_days} days, {unknown}.\n")
    config, send = helpdesk(language="de", templates_dir="templates")
    send(message("Drucker", sender="frank@example.org"))

    run("fetch", config=config)

    [(_, own)] = mails_of(smtp, "new_ticket;")
    number = only_ticket(run, config)["number"]
    assert own["Subject"].endswith("Got it: Drucker")
    assert own.get_content().strip() == (f"Ticket {number} for frank@example.org, it-support, "
                                         "14 days, {unknown}.")
    [(_, built_in)] = mails_of(smtp, "new_ticket_resource")
    assert built_in["Subject"].endswith("Neue Anfrage von frank@example.org: Drucker")


def test_subjects_cannot_inject_headers(helpdesk, smtp, run):
    config, send = helpdesk()
    send(b"From: mallory@example.org\r\nTo: helpdesk@example.com\r\n" + DATED +
         b"Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@example.net?=\r\n"
         b"Message-ID: <inject@example.org>\r\n\r\nHello\r\n")

    run("fetch", config=config)

    assert only_ticket(run, config)["subject"] == "Hi Bcc: victim@example.net"
    assert len(smtp.messages) == 2
    for rcpts, mail in smtp.mails():
        assert mail["Bcc"] is None and "victim@example.net" not in rcpts
        assert "\n" not in mail["Subject"]


def test_automails_over_verified_starttls(dovecot, mail_user, write_config, run):
    sink = SmtpSink(tls=(dovecot.cert, dovecot.key)).start()
    try:
        # trusted: the second round's two, and the two the untrusted certificate held back
        for ca_file, delivered in ((None, 0), (str(dovecot.cert), 4)):
            smtp = sink.config(security="starttls", **({"ca_file": ca_file} if ca_file else {}))
            config = write_config([dovecot.account("helpdesk", mail_user,
                                                   resource="it-support")], smtp=smtp)
            tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # written then
            dovecot.append(mail_user, [message("Over TLS", date=tomorrow)])
            result = at("+1d", config, "fetch")
            assert result.returncode == 0
            if not delivered:
                assert "certificate is not trusted" in result.stderr
            assert len(sink.messages) == delivered
    finally:
        sink.stop()


def test_two_senders_at_once_send_each_mail_once(helpdesk, smtp, run):
    config, send = helpdesk()
    send(*[message(f"Request {i}", sender=f"user{i}@example.org") for i in range(30)])
    stopped = smtp.port
    # Queue without sending: a run whose SMTP server is down defers every mail...
    down = Path(str(config))
    text = down.read_text().replace(f"port = {stopped}", "port = 1")
    down.write_text(text)
    run("fetch", config=config)
    down.write_text(text.replace("port = 1", f"port = {stopped}"))
    # ...then two senders race for the same due mails.
    racers = [subprocess.Popen(["faketime", "-f", "+1h", sys.executable, "-c",
                                "import sys; from helpdesk_fetch import config; "
                                "from helpdesk_fetch.store import db; "
                                "from helpdesk_fetch.automail import outbox; "
                                "c = config.load(config.config_path(sys.argv[1])); "
                                "db.open_configured(c.settings); outbox.send_due(c)",
                                str(config)], cwd=ROOT) for _ in range(2)]
    assert [p.wait(timeout=120) for p in racers] == [0, 0]
    assert len(smtp.messages) == 60
    assert len({raw for _, _, raw in smtp.messages}) == 60


@pytest.mark.parametrize("results, member", [
    (None, False),
    ("mx.example.com; dkim=pass header.d=example.com; spf=pass", True),
    ("mx.example.com; dmarc=pass (p=reject) header.from=example.com", True),
    ("evil.example.net; dmarc=pass header.from=example.com", False),  # not our server
    ("mx.example.com; dkim=fail header.d=example.com", False)])
def test_member_rule_trusts_only_what_our_server_vouches_for(helpdesk, run, results, member):
    config, send = helpdesk(no_status_change_from_members=True, authserv_id="mx.example.com")
    send(message("Printer"))
    run("fetch", config=config)
    ticket = only_ticket(run, config)
    run("tickets", "set-status", ticket["number"], "in_progress", config=config)

    headers = {"Authentication-Results": results} if results else {}
    send(message(f"Re: {ticket['tag']} Printer", sender="alice@example.com", headers=headers))
    run("fetch", config=config)

    assert only_ticket(run, config)["status"] == ("in_progress" if member else "confirmed_unread")


def test_line_breaks_of_any_kind_never_reach_our_headers(helpdesk, smtp, run):
    """Outlook writes "…" as 0x85 in windows-1252 words that claim to be Latin-1: U+0085, a
    line break to Python; a Message-ID without brackets may hold a vertical tab."""
    config, send = helpdesk()
    send(b"From: carol@example.org\r\nSubject: =?iso-8859-1?Q?Drucker=85_geht_nicht?=\r\n"
         + DATED + b"Message-ID: odd\x0bid@example.org\r\n\r\nHilfe\r\n",
         b"From: dave@example.org\r\nSubject: =?utf-8?q?Line=E2=80=A8Separator?=\r\n"
         + DATED + b"\r\nx\r\n")

    assert run("fetch", config=config).exit_code == 0

    assert len(run.json("tickets", "list", config=config)) == 2
    answers = mails_of(smtp, "new_ticket;")
    assert sorted(r for r, _ in answers) == [["carol@example.org"], ["dave@example.org"]]
    for _, mail in answers:
        assert "\n" not in mail["Subject"] and "\x85" not in mail["Subject"]
        assert mail["In-Reply-To"] is None  # an id that cannot go into a header is left out


def test_a_marked_mail_that_names_no_ticket_is_new_mail_never_answered(helpdesk, smtp, run):
    config, send = helpdesk()
    send(message("Your request", sender="desk@partner.example",
                 headers={"X-Helpdesk-Fetch": "new_ticket; ticket=77"}))

    assert run("fetch", config=config).exit_code == 0

    assert only_ticket(run, config)["subject"] == "Your request"
    assert smtp.messages == []


def test_an_unreadable_template_falls_back_to_the_built_in_text(helpdesk, smtp, run, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "new_ticket.txt").write_bytes(b"Subject: F\xfcr Sie\n\nLatin-1, not UTF-8\n")
    config, send = helpdesk(templates_dir="templates")
    send(message("Drucker"))

    result = run("fetch", config=config)

    assert result.exit_code == 0 and "not UTF-8" in result.stderr
    [(_, answer)] = mails_of(smtp, "new_ticket;")
    assert answer["Subject"].endswith("We have received your request: Drucker")


def test_the_cap_counts_an_hour_across_runs(helpdesk, smtp, run):
    config, send = helpdesk(automail_per_sender_per_hour=4)
    send(message("One", sender="robot@example.org"))
    run("fetch", config=config)  # two auto-mails: to the robot and to the staff
    send(message("Two", sender="robot@example.org"), message("Three", sender="robot@example.org"))

    assert run("fetch", config=config).exit_code == 0
    assert len(smtp.messages) == 4  # two more, then the cap

    send(message("Four", sender="robot@example.org"))
    later = at("+61m", config, "fetch")  # the hour has passed
    assert later.returncode == 0, later.stderr
    assert len(smtp.messages) == 6


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("kind", ["new_ticket", "new_ticket_resource", "customer_reply",
                                  "ticket_closed"])
def test_the_built_in_texts_filled_in_keep_to_78_columns(kind, language):
    """Wrapped as they read filled in: a tag is 19 characters, not the 5 of "{tag}"."""
    from helpdesk_fetch.automail.plan import _builtin

    text, _ = _builtin(kind, language)
    values = {"number": "1074", "tag": "[TicketID 1074FBIG]", "resource": "it-support",
              "reactivation_days": "14", "requester": "carol@customer.example",
              "sender": "carol@customer.example", "subject": "", "text": "", "status": "new"}
    body = text.partition("\n\n")[2]
    for name, value in values.items():
        body = body.replace("{" + name + "}", value)
    assert max(len(line) for line in body.splitlines()) <= 78, body
