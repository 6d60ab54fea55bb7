"""Sending queued auto-mails over ``[smtp]`` after the ticket change has committed (spec §6).

A mail the server does not take now (4xx, or the session breaks while it is sent) stays queued
and is retried by later runs with exponential back-off over its own attempts (2, 4, 8 ...
minutes, at most 6 hours). A mail that waits only because no session with the server could be
opened was not attempted: it waits for the server (``awaits_server``), is tried again as often as
it has waited (2 minutes at least, SERVER_PROBE at most), and goes out with the first session that
opens: after an outage, the receipts it held back go out in the run that finds the server
working, not hours later. A mail the server refuses for good (5xx for every recipient) is marked
failed and not retried. Delivery is at least once: a crash between the server's "250 OK" and our
commit sends that one mail again (after CLAIM_LEASE); two processes sending at the same time
never send the same mail: a row is written only by the sender that claimed it, or with a
condition that nobody has (``_untouched``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from helpdesk_fetch.clock import isoformat, retry_delay, utcnow
from helpdesk_fetch.config import Config, Smtp
from helpdesk_fetch.errors import REPEATED, AuthError, ConfigError, MailboxError, failure_cause
from helpdesk_fetch.secrets.login import login_secret
from helpdesk_fetch.sources.net import unresolved
from helpdesk_fetch.sources.sasl import XOAuth2
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import Outbox, RawMessage, Setting
from helpdesk_fetch.tls import tls_context, untrusted

log = logging.getLogger(__name__)

BATCH = 200
OUTAGE = "smtp_outage"  # the settings that say since when, and why, [smtp] cannot be used
CLAIM_LEASE = dt.timedelta(minutes=10)
SERVER_PROBE = dt.timedelta(minutes=15)  # the longest a mail waits for a server that was down
CLOSING = 421  # the server closes the session (RFC 5321 3.8; smtplib closes it too)


class SmtpUnavailable(Exception):
    """The SMTP server cannot be reached, secured or logged in to right now."""


@dataclass
class SendReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    error: str | None = None


def due(now: dt.datetime, *, session: bool = False) -> list[Outbox]:
    """The mails to send now, oldest first; with *session* (one is open) also those that wait
    only for the server (``awaits_server``), whatever their back-off."""
    when = Outbox.next_attempt_at <= now
    if session:
        when |= Outbox.awaits_server
    return list(Outbox.select().where(Outbox.sent_at.is_null() & Outbox.failed_at.is_null()
                                      & when)
                .order_by(Outbox.id).limit(BATCH))


def send_due(config: Config, *, deadline: float | None = None, news: bool = True) -> SendReport:
    """Send every queued auto-mail that is due; never raises for SMTP trouble. *news*: this
    process's stderr is read (cron's fetch), so an outage is said there when it starts and when
    it ends, not on every run between; ``deliver`` (whose stderr an MTA drops) says every one
    and records nothing, so that the next fetch still tells the administrator."""
    report = SendReport()
    if config.smtp is None:
        return report
    rows = due(utcnow())
    if not rows:
        return report
    try:
        connection = connect(config.smtp, timeout=config.timeout_for(config.smtp),
                             state_dir=config.settings.state_dir)
    except (SmtpUnavailable, ConfigError) as exc:
        if isinstance(exc, ConfigError):  # [smtp]'s password source: name the file too
            exc = exc.in_file(config.path)
        report.error = str(exc)
        log.warning("auto-mails not sent, %d wait for the next run: %s", len(rows), exc,
                    extra={REPEATED: news and _outage(report.error)})
        report.deferred = _wait_for_server(rows, str(exc))
        return report
    with contextlib.closing(connection):
        _send_batches(connection, config.smtp, report, deadline)
    if news and (report.sent or report.failed):  # the server took (or refused) a mail
        _outage_over(report)
    return report


def _send_batches(connection: smtplib.SMTP, smtp: Smtp, report: SendReport,
                  deadline: float | None) -> None:
    """The mails to send, BATCH at a time, while the server takes them and the run has time:
    a queue that grew during an outage goes out in one run, not BATCH a run."""
    while True:
        rows = due(utcnow(), session=True)
        answered = report.sent + report.failed
        for row in rows:
            if deadline is not None and time.monotonic() > deadline:
                return
            if _claim(row) and not _send_one(connection, smtp, row, report):
                return  # the session broke: the rest waits, untouched, for the next run
        if len(rows) < BATCH or report.sent + report.failed == answered:
            return  # all of them, or a server that takes nothing now (each deferred)


def _outage(error: str) -> bool:
    """Remember that the SMTP server cannot be used, and why; whether an earlier run said so
    already for the same cause (spec §11.2: under cron, news when it starts, not every run)."""
    from helpdesk_fetch.store import db

    key = _outage_key()
    known = _record(db.setting(key))
    if known and failure_cause(str(known.get("error"))) == failure_cause(error):
        return True
    value = json.dumps({"error": error, "since": known.get("since") or isoformat(utcnow())})
    Setting.insert(key=key, value=value).on_conflict(
        conflict_target=[Setting.key], update={Setting.value: value}).execute()
    return False


def _outage_key() -> str:
    """The setting of this machine's outage: what one machine cannot reach (its firewall, its
    CA file), another of a PostgreSQL installation may, and its end is not theirs to say."""
    import socket

    return f"{OUTAGE}:{socket.gethostname()}"


def _record(value: str | None) -> dict[str, Any]:
    try:
        record = json.loads(value) if value else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _outage_over(report: SendReport) -> None:
    """The SMTP server took a session again: the end of an outage is news (spec §11.2)."""
    from helpdesk_fetch.store import db

    key = _outage_key()
    known = db.setting(key)
    if known is None or Setting.delete().where(Setting.key == key).execute() == 0:
        return  # none, or another process has said so
    sent = f"{report.sent} auto-mail{'' if report.sent == 1 else 's'} sent"
    # A warning like the outage's start: -q keeps both off stderr (an account's are errors)
    log.warning("auto-mails: the SMTP server works again (failing since %s); %s",
                _record(known).get("since", "?"), sent)


def _claim(row: Outbox) -> bool:
    """Take *row* for this process, so that overlapping senders (two runs, a run and a
    ``deliver``) never send one mail twice. The claim is a lease: if this process dies before
    recording the result, the mail is due again after CLAIM_LEASE (and no longer waits for the
    server: another sender's session does not take it meanwhile)."""
    lease = utcnow() + CLAIM_LEASE
    taken: int = (Outbox.update(next_attempt_at=lease, awaits_server=False)
                  .where(_untouched(row)).execute())
    row.next_attempt_at, row.awaits_server = lease, False  # as written: what a save() writes
    return taken == 1


def _untouched(row: Outbox) -> Any:
    """*row* as this process read it: neither sent, refused, claimed nor deferred since."""
    return ((Outbox.id == row.id) & Outbox.sent_at.is_null() & Outbox.failed_at.is_null()
            & (Outbox.next_attempt_at == row.next_attempt_at))


def _send_one(connection: smtplib.SMTP, smtp: Smtp, row: Outbox, report: SendReport) -> bool:
    """Send claimed *row* and record what became of it; whether the session can go on."""
    raw = blobs.decompress(RawMessage.get_by_id(row.message_id).data)
    try:
        addresses = [ascii_domain(a) for a in
                     (parseaddr(smtp.from_address)[1], *json.loads(row.recipients))]
    except UnicodeError:
        _fail(row, "an address whose domain is not a valid international domain name", report)
        return True
    options = [] if all(a.isascii() for a in addresses) else ["SMTPUTF8"]
    try:
        if options:
            connection.ehlo_or_helo_if_needed()  # what the server offers is known after EHLO
            if not connection.has_extn("smtputf8"):
                _fail(row, "a non-ASCII address, and the SMTP server does not offer SMTPUTF8",
                      report)
                return True
        refused = connection.sendmail(addresses[0], addresses[1:], raw, mail_options=options)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(code >= 500 for code in codes):
            _fail(row, _refusals(exc.recipients), report)
        else:  # e.g. 451 greylisting: try again later
            _defer(row, _refusals(exc.recipients), report)
        return CLOSING not in codes
    except smtplib.SMTPResponseException as exc:
        said = f"{exc.smtp_code} {_text(exc.smtp_error)}"
        if exc.smtp_code >= 500:
            _fail(row, said, report)
        else:
            _defer(row, said, report)
        return exc.smtp_code != CLOSING
    except (smtplib.SMTPException, OSError) as exc:
        _defer(row, _broken(exc), report)
        return False
    row.sent_at = utcnow()
    row.attempts += 1
    row.last_error = _refusals(refused) if refused else None
    row.save()
    report.sent += 1
    return True


def ascii_domain(address: str) -> str:
    """*address* with its domain in ASCII (IDNA), as SMTP servers without SMTPUTF8 need it;
    UnicodeError when the domain is not a valid international domain name."""
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def _defer(row: Outbox, error: str, report: SendReport) -> None:
    """Claimed *row*, attempted and not taken: tried again after its back-off."""
    row.attempts += 1
    row.last_error = error
    row.next_attempt_at = utcnow() + retry_delay(row.attempts)
    row.save()
    report.deferred += 1


def _wait_for_server(rows: list[Outbox], error: str) -> int:
    """*rows*, not attempted since no session could be opened, wait for the server: tried again
    after as long as they have waited (2 minutes at least, SERVER_PROBE at most), and with the
    first session that opens. Each only if no other sender has touched it since it was read
    (this process may have waited ``timeout_seconds`` to connect): a save would undo what
    that sender recorded. How many wait."""
    now = utcnow()
    waiting = 0
    for row in rows:
        delay = min(max(now - row.created_at, retry_delay(1)), SERVER_PROBE)
        waiting += (Outbox.update(last_error=error, next_attempt_at=now + delay,
                                  awaits_server=True).where(_untouched(row)).execute())
    return waiting


def _fail(row: Outbox, error: str, report: SendReport) -> None:
    from helpdesk_fetch.store.write import ticket_number_of

    log.warning("auto-mail %s of ticket %s to %s refused for good: %s", row.kind,
                ticket_number_of(row.message_id) or "?",
                ", ".join(json.loads(row.recipients)), error)
    row.attempts += 1
    row.last_error = error
    row.failed_at = utcnow()
    row.save()
    report.failed += 1


def connect(smtp: Smtp, *, timeout: float, state_dir: str) -> smtplib.SMTP:
    """A logged-in SMTP session; TLS is verified, STARTTLS is required when configured; the
    login is a password or (auth = "oauth2") XOAUTH2 with a token from ``state_dir``."""
    where = f"SMTP server {smtp.host}:{smtp.port}"
    try:
        context = tls_context("smtp", smtp.ca_file)
        port = smtp.port or 0  # load() sets it; smtplib takes 0 (like None) for its default
        connection: smtplib.SMTP
        if smtp.security == "ssl":
            connection = smtplib.SMTP_SSL(smtp.host, port, timeout=timeout, context=context)
        else:
            connection = smtplib.SMTP(smtp.host, port, timeout=timeout)
            if smtp.security == "starttls":
                _starttls(connection, context, where)
        if smtp.username:
            _login(connection, smtp, smtp.username, timeout=timeout, state_dir=state_dir)
        return connection
    except ssl.SSLCertVerificationError as exc:
        raise SmtpUnavailable(f"{where}: " + untrusted(
            exc, ca_file=smtp.ca_file, what="the TLS certificate", ca_key="smtp.ca_file",
            host_key="[smtp] host")) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise SmtpUnavailable(f"{where}: login as {smtp.username!r} refused: "
                              f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
    except MailboxError as exc:  # OAuth2: the token endpoint or the token was refused
        raise SmtpUnavailable(f"{where}: {exc.detail}") from None
    except TimeoutError:
        raise SmtpUnavailable(f"{where}: no answer within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise SmtpUnavailable(f"{where}: connection refused; is the server running, and are "
                              "[smtp] host and port right?") from None
    except ssl.SSLError as exc:
        raise SmtpUnavailable(f"{where}: TLS failed ({exc.reason or exc}); does [smtp] "
                              "security match the port (ssl: usually 465, starttls: 587)?"
                              ) from None
    except socket.gaierror as exc:
        raise SmtpUnavailable(f"{where}: {unresolved(smtp.host, exc, '[smtp] host')}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpUnavailable(f"{where}: {getattr(exc, 'strerror', None) or exc}") from None


def _login(connection: smtplib.SMTP, smtp: Smtp, username: str, *, timeout: float,
           state_dir: str) -> None:
    with login_secret(smtp, label="smtp", state_dir=state_dir, timeout=timeout) as secret:
        assert secret is not None, "only a Maildir logs in with nothing"
        if smtp.auth != "oauth2":
            return _password_login(connection, username, secret)
        connection.ehlo_or_helo_if_needed()
        mechanism = XOAuth2(username, secret)
        try:
            connection.auth("XOAUTH2", mechanism)
        except smtplib.SMTPAuthenticationError as exc:  # AuthError: the saved token is dropped
            detail = f" ({mechanism.error})" if mechanism.error else ""
            raise AuthError("smtp", f"the SMTP server refused the OAuth2 access token for "
                            f"{smtp.username!r}{detail}: {exc.smtp_code} "
                            f"{_text(exc.smtp_error)}") from None


def _password_login(connection: smtplib.SMTP, username: str, password: str) -> None:
    """LOGIN or PLAIN as smtplib chooses; for a username or password beyond ASCII (which smtplib
    cannot encode) AUTH PLAIN in UTF-8 (RFC 4616)."""
    if (username + password).isascii():
        connection.login(username, password)
        return
    connection.ehlo_or_helo_if_needed()
    if "PLAIN" not in connection.esmtp_features.get("auth", "").upper().split():
        raise SmtpUnavailable("the SMTP username or password has characters outside ASCII, and "
                              "the server offers no AUTH PLAIN to carry them")
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, answer = connection.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, answer)


def _starttls(connection: smtplib.SMTP, context: ssl.SSLContext, where: str) -> None:
    connection.ehlo()
    if not connection.has_extn("starttls"):
        raise SmtpUnavailable(f"{where} does not offer STARTTLS; refusing to send without TLS")
    connection.starttls(context=context)
    connection.ehlo()


def _broken(exc: OSError) -> str:
    """What happened to a session that broke while sending, in words (a deferral's reason)."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the SMTP server closed the connection while sending"
    if isinstance(exc, TimeoutError):
        return "the SMTP server did not answer in time while sending"
    if isinstance(exc, smtplib.SMTPException):  # itself an OSError, without strerror
        return f"the SMTP session failed while sending: {exc}"
    return f"the connection to the SMTP server failed while sending: {exc.strerror or exc}"


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in recipients.items())


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
