"""Sending the queued auto-mails (outbox.py, spec §6) to a real SMTP server: international
addresses, and refusals that are temporary or for good."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import pytest

from helpdesk_fetch.store import db, models
from tests.servers import SmtpSink
from tests.test_automail import STAFF, at, mails_of

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


def plain(sender: str, subject: str = "Drucker") -> bytes:
    """A message whose From is raw UTF-8 (RFC 6532), as international mail arrives."""
    return (f"From: {sender}\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
            f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\n"
            f"Message-ID: <{abs(hash((sender, subject)))}@example.org>\r\n\r\nHallo\r\n"
            ).encode()


@pytest.fixture
def desk(dovecot, mail_user, write_config):
    """(config, send, sink) for a sink made with *sink_options*; *smtp*: more [smtp] keys."""
    sinks = []

    def make(smtp: dict | None = None, **sink_options):
        sink = SmtpSink(**sink_options).start()
        sinks.append(sink)
        config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                              smtp=sink.config(**(smtp or {})),
                              resources=[{"name": "it-support", "members": STAFF}])
        return config, lambda *raws: dovecot.append(mail_user, list(raws)), sink

    yield make
    for sink in sinks:
        sink.stop()


def outbox_rows(config_path) -> list[models.Outbox]:
    from helpdesk_fetch.config import load

    db.open_configured(load(config_path).settings)
    return list(models.Outbox.select().order_by(models.Outbox.id))


def test_an_international_domain_is_sent_in_its_ascii_form(desk, run):
    config, send, sink = desk()
    send(plain("Carol <carol@bücher.example>"))

    assert run("fetch", config=config).exit_code == 0

    [(rcpts, _)] = mails_of(sink, "new_ticket;")
    assert rcpts == ["carol@xn--bcher-kva.example"]


@pytest.mark.parametrize("smtputf8", [False, True])
def test_a_non_ascii_mailbox_name_needs_smtputf8(desk, run, smtputf8):
    config, send, sink = desk(smtputf8=smtputf8)
    send(plain("Jörg <jörg@example.org>"), plain("Erin <erin@example.org>", "Scanner"))

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output  # never a traceback, never a stuck queue
    requesters = sorted(r for r, _ in mails_of(sink, "new_ticket;"))
    assert requesters == ([["erin@example.org"], ["jörg@example.org"]] if smtputf8
                          else [["erin@example.org"]])
    assert len(mails_of(sink, "new_ticket_resource")) == 2
    failed = [row for row in outbox_rows(config) if row.failed_at is not None]
    if smtputf8:
        assert failed == []
    else:
        assert [row.kind for row in failed] == ["new_ticket"]
        assert "SMTPUTF8" in failed[0].last_error
        assert "auto-mail new_ticket of ticket 1001 to jörg@example.org refused for good: " \
            in result.stderr  # what and whom, in words the administrator can look up


def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_not(desk, run):
    config, send, sink = desk()
    sink.refuse = {"grey@example.org": "451 4.7.1 Greylisted, try again later",
                   "gone@example.org": "550 5.1.1 No such user"}
    send(plain("grey@example.org"), plain("gone@example.org", "Scanner"))

    assert run("fetch", config=config).exit_code == 0

    assert mails_of(sink, "new_ticket;") == []
    rows = {row.recipients: row for row in outbox_rows(config) if row.kind == "new_ticket"}
    assert rows['["grey@example.org"]'].failed_at is None
    assert "451" in rows['["grey@example.org"]'].last_error
    assert rows['["gone@example.org"]'].failed_at is not None

    sink.refuse = {}
    later = at("+10m", config, "fetch")  # past the first back-off
    assert later.returncode == 0, later.stderr
    assert [r for r, _ in mails_of(sink, "new_ticket;")] == [["grey@example.org"]]


def test_an_smtp_password_that_cannot_be_read_is_named_with_its_file(desk, run):
    config, send, sink = desk(smtp={"username": "helpdesk@example.com",
                                    "password_env": "HD_TEST_NO_SUCH_PASSWORD"})
    send(plain("carol@example.org"))

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output  # the ticket is stored; the mails wait
    assert f"{config}: key 'smtp.password_env'" in result.stderr, result.stderr
    assert sink.messages == []


@pytest.mark.parametrize("password", ["ascii-only", "Pässwörd-€"])
def test_smtp_login_with_a_password_beyond_ascii(desk, run, monkeypatch, password):
    monkeypatch.setenv("HD_TEST_SMTP_PASSWORD", password)
    config, send, sink = desk(smtp={"username": "helpdesk@example.com",
                                    "password_env": "HD_TEST_SMTP_PASSWORD"},
                              login=("helpdesk@example.com", password))
    send(plain("carol@example.org"))

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert len(mails_of(sink, "new_ticket;")) == 1


@pytest.mark.parametrize("trusted", [True, False])
def test_smtp_over_implicit_tls(desk, dovecot, run, monkeypatch, trusted):
    """security = "ssl": TLS from the first byte (port 465, RFC 8314), the login inside it, the
    certificate verified (here against ca_file; without it, not trusted and nothing sent)."""
    monkeypatch.setenv("HD_TEST_SMTP_PASSWORD", "smtp-secret")
    smtp = {"security": "ssl", "username": "helpdesk@example.com",
            "password_env": "HD_TEST_SMTP_PASSWORD", **({"ca_file": str(dovecot.cert)}
                                                       if trusted else {})}
    config, send, sink = desk(smtp=smtp, tls=(dovecot.cert, dovecot.key), implicit_tls=True,
                              login=("helpdesk@example.com", "smtp-secret"))
    send(plain("carol@example.org"))

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    if trusted:
        assert result.stderr == ""
        assert [rcpts for rcpts, _ in mails_of(sink, "new_ticket;")] == [["carol@example.org"]]
        assert len(mails_of(sink, "new_ticket_resource")) == 1
    else:
        assert "certificate is not trusted" in result.stderr
        assert sink.messages == []
        assert run.json("status", config=config)["outbox_pending"] == 2


def test_a_line_that_breaks_while_sending_is_deferred_with_what_happened(
        dovecot, mail_user, write_config, run):
    from tests.proxy import Fault, FaultProxy

    sink = SmtpSink().start()
    try:
        with FaultProxy(sink.port) as proxy:
            proxy.fault = Fault(drop_after_sent=b"data\r\n")  # smtplib: the server hears DATA
            config = write_config([dovecot.account("helpdesk", mail_user,
                                                   resource="it-support")],
                                  smtp=sink.config(port=proxy.port),
                                  resources=[{"name": "it-support", "members": STAFF}])
            dovecot.append(mail_user, [plain("grey@example.org")])

            result = run("fetch", config=config)
            assert result.exit_code == 0, result.output
            assert proxy.fired, (proxy.connections, result.output)
    finally:
        sink.stop()

    first, *rest = outbox_rows(config)
    assert first.sent_at is None and first.failed_at is None and first.attempts == 1
    assert first.last_error == "the SMTP server closed the connection while sending"  # no
    # Python class name; the rest were not attempted on the broken session: as they were
    assert rest and all(r.attempts == 0 and r.last_error is None for r in rest)


def test_mail_that_waits_for_the_server_is_tried_at_least_every_quarter_hour(desk, run):
    """Not attempted, so not counted as an attempt: it is tried again after as long as it has
    waited, 15 minutes at most, and its own back-off starts when a server answers for it."""
    config, send, sink = desk()
    sink.stop()  # down: no session opens
    send(plain("carol@example.org"))
    assert "auto-mails not sent" in run("fetch", config=config).stderr
    rows = outbox_rows(config)
    assert rows and all(r.awaits_server and r.attempts == 0 and r.last_error for r in rows)
    models.Outbox.update(created_at=dt.datetime(2000, 1, 1),
                         next_attempt_at=dt.datetime(2000, 1, 1)).execute()
    assert run.json("status", config=config)["outbox"]["failing"] == len(rows)

    assert run("fetch", config=config).exit_code == 0  # waiting since 2000

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for row in outbox_rows(config):
        assert row.awaits_server and row.attempts == 0
        assert now + dt.timedelta(minutes=14) < row.next_attempt_at \
            < now + dt.timedelta(minutes=15, seconds=5)


def test_a_sender_that_waited_to_connect_does_not_undo_another_senders_work(desk, run):
    """Two senders, say cron's fetch and a deliver: one read the due mails and waits for its
    connection to time out while the other sends them. What the first records afterwards must
    not make them unsent (they would go out twice)."""
    from helpdesk_fetch.automail import outbox

    config, send, sink = desk()
    sink.stop()
    send(plain("carol@example.org"))
    run("fetch", config=config)  # queued, waiting for the server
    stale = outbox_rows(config)  # what the slow sender read
    sink.start()
    assert at("+3m", config, "fetch").returncode == 0  # the other sender
    assert len(sink.messages) == len(stale)

    assert outbox._wait_for_server(stale, "no answer within 30 s") == 0

    assert all(row.sent_at is not None and not row.awaits_server for row in outbox_rows(config))
    assert at("+30m", config, "fetch").returncode == 0
    assert len(sink.messages) == len(stale)  # none twice


def test_a_session_the_server_closes_leaves_the_rest_untouched(desk, run):
    """421 (the server closes the session): the mail it answered waits for its back-off; the
    others were not attempted and wait for the next run as they were, with no attempt
    counted against them."""
    config, send, sink = desk()
    sink.refuse = {"first@example.org": "421 4.3.2 Service shutting down"}
    send(plain("first@example.org", "One"), plain("second@example.org", "Two"))

    assert run("fetch", config=config).exit_code == 0

    assert sink.messages == []
    first, *rest = outbox_rows(config)
    assert first.attempts == 1 and "421" in first.last_error
    assert rest and all(r.attempts == 0 and r.last_error is None for r in rest)
    sink.refuse = {}
    assert run("fetch", config=config).exit_code == 0
    assert len(sink.messages) == len(rest)  # at once; the first after its back-off


def test_a_mail_deferred_for_its_own_reason_keeps_its_back_off(desk, run):
    """A session that opens sends what waited for the server, not what the server itself
    deferred (greylisting): that is tried when its back-off ends."""
    config, send, sink = desk()
    sink.refuse = {"grey@example.org": "451 4.7.1 Greylisted, try again later"}
    send(plain("grey@example.org"))
    assert run("fetch", config=config).exit_code == 0
    assert not any(r.awaits_server for r in outbox_rows(config))
    sink.refuse = {}
    send(plain("erin@example.org", "Scanner"))

    assert run("fetch", config=config).exit_code == 0  # a session opens, within the back-off

    assert [r for r, _ in mails_of(sink, "new_ticket;")] == [["erin@example.org"]]


def test_a_queue_longer_than_a_batch_goes_out_in_one_run(desk, run, monkeypatch):
    from helpdesk_fetch.automail import outbox

    monkeypatch.setattr(outbox, "BATCH", 2)
    config, send, sink = desk()
    send(*[plain(f"user{i}@example.org", f"Request {i}") for i in range(3)])

    assert run("fetch", config=config).exit_code == 0

    assert len(sink.messages) == 6  # a receipt and the team's mail for each, in three batches
    assert not [r for r in outbox_rows(config) if r.sent_at is None]
