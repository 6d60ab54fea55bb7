"""Canary messages (spec §11.3): ``probe send`` mails each account a marked test message through
``[smtp]``; the fetch that reads it records its travel time and files no ticket. A canary that
does not arrive shows what no fetch error can: a revoked grant on the sending side, a transport
rule or forward diverting mail, a spam quarantine upstream (``check`` goes CRITICAL).

The marker (our ``X-Helpdesk-Fetch`` header) names the account and a random token, signed with
the installation's tag secret. A canary that arrives at another account, or whose signature does
not match (forged, or from another installation), is ordinary mail: it becomes a ticket, which
is how a diverted canary gets noticed. Like every message, a canary is accounted for (its source
key is stored) and deleted from the server.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from peewee import fn

from helpdesk_fetch import state
from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Account, Config, Smtp
from helpdesk_fetch.errors import ConfigError, UsageError, account_named
from helpdesk_fetch.store.models import Canary
from helpdesk_fetch.store.peewee_adapter import tuples
from helpdesk_fetch.tickets.tags import Tagger

if TYPE_CHECKING:  # the email package is imported only when there is mail
    import smtplib
    from email.message import EmailMessage

    from helpdesk_fetch.message.parse import ParsedMessage

log = logging.getLogger(__name__)

KIND = "canary"  # the first word of its marker (automail.plan.MARKER)


@dataclass(frozen=True)
class Arrival:
    """A canary of ours, read from the account it was sent to."""

    token: str
    travel_seconds: float | None  # None: not in the database (pruned, or a restored backup)


@dataclass
class Probe:
    """What ``probe send`` did for one account."""

    account: str
    address: str | None
    sent: bool = False
    problem: str | None = None  # why it was not sent


# -- receiving --------------------------------------------------------------------------------

def receive(parsed: ParsedMessage, *, account: str, tagger: Tagger, now: dt.datetime,
            record: bool = True) -> Arrival | None:
    """The canary *parsed* is, when it is one of ours sent to *account* (its arrival recorded
    unless *record* is false; the caller holds the transaction); None for ordinary mail."""
    from helpdesk_fetch.automail.plan import MARKER  # loaded anyway once there is mail

    marker = _marker(parsed.header(MARKER))
    if marker is None:
        return None
    token, addressed_to = marker.get("token", ""), marker.get("account", "")
    wanted = tagger.signature(KIND, f"{addressed_to}:{token}")
    if not hmac.compare_digest(marker.get("signature", "").encode(), wanted.encode()):
        log.info("%s: a canary marker without a valid signature: ordinary mail",
                 account_named(account))
        return None
    if addressed_to != account:
        log.warning("%s: the canary sent to %s arrived here: filed as ordinary mail (a "
                    "forward or a transport rule?)", account_named(account),
                    account_named(addressed_to))
        return None
    row = Canary.get_or_none((Canary.token == token) & (Canary.account == account))
    if row is None:
        return Arrival(token, None)
    if row.received_at is None and record:
        row.received_at = now
        row.travel_seconds = round(max(0.0, (now - row.sent_at).total_seconds()), 3)
        row.save()
    travel = row.travel_seconds if row.received_at else (now - row.sent_at).total_seconds()
    return Arrival(token, travel)


def marked(parsed: ParsedMessage) -> bool:
    """Whether *parsed* carries a canary marker, signed rightly or not: one that ``receive``
    did not take is ordinary mail that must become a ticket (never a copy, never ignored)."""
    from helpdesk_fetch.automail.plan import MARKER

    return _marker(parsed.header(MARKER)) is not None


def _marker(value: str | None) -> dict[str, str] | None:
    """The ``key=value`` pairs of a canary marker ("canary; account=a; token=t; signature=s")."""
    if value is None:
        return None
    kind, *pairs = (part.strip() for part in value.split(";"))
    if kind != KIND:
        return None
    return dict(pair.partition("=")[::2] for pair in pairs)


# -- what status and check see ----------------------------------------------------------------

def last_by_account() -> dict[str, dict[str, Any]]:
    """Each account's latest canary: when it was sent and received, and its travel time."""
    latest = Canary.select(fn.MAX(Canary.id)).group_by(Canary.account)
    return {row.account: {"sent_at": isoformat(row.sent_at),
                          "received_at": isoformat(row.received_at),
                          "travel_seconds": row.travel_seconds, "error": row.error}
            for row in Canary.select().where(Canary.id.in_(latest))}


def overdue(now: dt.datetime, max_minutes: int) -> dict[str, Canary]:
    """Per account, the oldest canary sent more than *max_minutes* ago that has not arrived
    and that no later canary of the account overtook: one lost last week is forgotten once a
    newer one arrived."""
    arrived = {account: last for account, last in tuples(Canary.select(
        Canary.account, fn.MAX(Canary.sent_at)).where(Canary.received_at.is_null(False))
        .group_by(Canary.account))}
    late = (Canary.select().where(Canary.received_at.is_null()
                                  & (Canary.sent_at < now - dt.timedelta(minutes=max_minutes)))
            .order_by(Canary.sent_at))
    found: dict[str, Canary] = {}
    for row in late:
        if row.account not in found and (row.account not in arrived
                                         or row.sent_at > arrived[row.account]):
            found[row.account] = row
    return found


# -- sending ----------------------------------------------------------------------------------

def send(config: Config, names: list[str] | None, *, tagger: Tagger) -> list[Probe] | None:
    """Mail a canary through ``[smtp]`` to each selected account's address (the enabled ones,
    or those named); an account without an address is skipped, unless it was named. None
    while ingest is disabled on this machine: nothing is sent then."""
    if config.smtp is None:
        raise UsageError("probe send mails its canaries through [smtp]; the accounts file has "
                         "no [smtp] section (add one, or leave probe send out of cron and "
                         "systemd until you do)")
    if state.ingest_switch(config.settings.state_dir) is not None:
        log.info("ingest is disabled on this machine: no canary is sent (none could be read)")
        return None  # and a clone of the machine must not mail the production mailboxes
    probes = [Probe(a.name, a.address) for a in config.selected_accounts(names)]
    for probe in probes:
        if probe.address is None:
            if names:
                raise UsageError(f"{account_named(probe.account)} has no address to send a canary "
                                 "to; set address = \"...\" in its [[accounts]] table")
            probe.problem = "no address (set address = \"...\" in its [[accounts]] table)"
    if any(p.address for p in probes):
        _send_all(config, [p for p in probes if p.address], tagger)
    return probes


def _send_all(config: Config, probes: list[Probe], tagger: Tagger) -> None:
    import contextlib
    import smtplib

    from helpdesk_fetch.automail import outbox

    smtp = config.outgoing()
    try:
        connection = outbox.connect(smtp, timeout=config.timeout_for(smtp),
                                    state_dir=config.settings.state_dir)
    except (outbox.SmtpUnavailable, ConfigError) as exc:  # ConfigError: [smtp]'s password
        for probe in probes:  # source; recorded for check, then said as it was before
            _not_sent(probe.account, str(exc))
        if isinstance(exc, ConfigError):
            raise
        for probe in probes:
            probe.problem = str(exc)
        return
    with contextlib.closing(connection):
        for probe in probes:
            if probe.address is None:  # send() hands over only probes with an address
                continue
            try:
                _send_one(connection, smtp, config.account(probe.account), probe.address,
                          tagger)
                probe.sent = True
            except (smtplib.SMTPException, OSError, UnicodeError) as exc:
                probe.problem = f"the SMTP server did not take it: {exc}"
                _not_sent(probe.account, probe.problem)


def _not_sent(account: str, error: str) -> None:
    """Record a canary that could not be sent: ``check`` finds it overdue like one lost on its
    way, until a later one arrives (spec §11.3: a revoked grant on the sending side is what a
    canary is there to catch, and under cron the exit status of ``probe send`` reaches no one)."""
    import secrets

    Canary.create(account=account, token=secrets.token_hex(8), message_id="", sent_at=utcnow(),
                  error=error)


def _send_one(connection: smtplib.SMTP, smtp: Smtp, account: Account, address: str,
              tagger: Tagger) -> None:
    """Record the canary, then send it: it may arrive before sendmail returns (an MTA piping
    into ``deliver``), and must be known by then. A send that fails takes the record back."""
    import secrets
    from email.utils import parseaddr

    from helpdesk_fetch.automail.outbox import ascii_domain
    from helpdesk_fetch.automail.plan import wire_bytes

    token = secrets.token_hex(8)
    signature = tagger.signature(KIND, f"{account.name}:{token}")
    mail = _build(smtp, account, address, f"{KIND}; account={account.name}; token={token}; "
                                   f"signature={signature}")
    row = Canary.create(account=account.name, token=token,
                        message_id=mail["Message-ID"].strip("<>"), sent_at=utcnow())
    try:
        connection.sendmail(ascii_domain(parseaddr(smtp.from_address)[1]),
                            [ascii_domain(address)], wire_bytes(mail))
    except BaseException:
        row.delete_instance()
        raise
    log.info("%s: canary %s sent to %s", account_named(account.name), token, address)


def _build(smtp: Smtp, account: Account, address: str, marker: str) -> EmailMessage:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid, parseaddr

    from helpdesk_fetch.automail.plan import MARKER

    sender = smtp.from_address
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = address
    mail["Subject"] = f"helpdesk-fetch canary for account {account.name}"
    mail["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    mail["Message-ID"] = make_msgid(KIND, parseaddr(sender)[1].rpartition("@")[2] or None)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail[MARKER] = marker
    mail.set_content(
        # lines under 78 characters: no quoted-printable soft breaks in what a person reads
        f"A test message from `helpdesk-fetch probe send` to the account\n{account.name}.\n\n"
        "helpdesk-fetch reads it, records how long it took to arrive and deletes\n"
        "it; it never becomes a ticket. If you see it anywhere else (as a ticket,\n"
        "in another mailbox, in a quarantine), mail to this address does not\n"
        "reach that account as it should.\n")
    return mail
