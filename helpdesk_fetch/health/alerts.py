"""Quiet repeats (spec §11.2): an account's failure is news when it starts and when it ends.

Under cron every line on stderr is a mail; one dead account would otherwise mail the same error
every minute until someone filters it away, and then the next real failure goes unseen. So a run
tells whether an account was already failing before it began (``failing``), and marks the log
record of a failure that merely goes on with ``REPEATED``: the command line keeps those off a
stderr that is not a terminal, while ``-v``, the log file and syslog get every one. The exit
status does not change: 1 on every failing run. A failure whose cause changed (the run before
said something else) is news once more; so is a configuration error, on every run: it exits 2,
and only the administrator can end it. Timings a server puts into its answers are no cause.

The history is the run table (AccountRun) itself, so it is shared by every machine of a
PostgreSQL installation and needs no state of its own. ``[alerts] to`` also mails the two
events through ``[smtp]``, once, right after the run that saw them; if that send fails, the
stderr line is the only report of it.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.clock import isoformat
from helpdesk_fetch.config import Alerts, Config, Smtp

if TYPE_CHECKING:
    import smtplib
from helpdesk_fetch.enums import RunOutcome
from helpdesk_fetch.errors import ConfigError, account_named, failure_cause
from helpdesk_fetch.health import RECOVERED as RECOVERED  # the run marks its log records
from helpdesk_fetch.health import REPEATED as REPEATED

# The database and mail modules are imported where they are used.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Streak:
    """An account's failed runs in a row so far."""

    runs: int
    since: dt.datetime  # when the first of them started
    error: str | None = None  # what the latest of them said


def repeated(streak: Streak | None, error: str | None) -> bool:
    """Whether a failure that says *error* merely goes on from *streak*: the account was
    failing, for the same cause (timings aside). An account's configuration error is no
    exception (spec §11.2): a password vault that is down, a Maildir the MTA has not made yet
    or a folder not created yet would otherwise mail the administrator every minute."""
    if streak is None:
        return False
    return failure_cause(error) == failure_cause(streak.error)


@dataclass(frozen=True)
class News:
    """A failure that started (``streak`` None) or ended, for the alert mail."""

    account: str
    error: str | None = None  # what the first failed run said
    streak: Streak | None = None  # the failures that just ended


def failing(account: str) -> Streak | None:
    """The account's current failures, or None when its latest run that succeeded or failed
    (skipped and interrupted runs decide nothing) succeeded, or when it has no such run."""
    from peewee import fn

    from helpdesk_fetch.store.models import AccountRun
    from helpdesk_fetch.store.peewee_adapter import one_tuple

    decisive = AccountRun.outcome.in_([RunOutcome.OK, RunOutcome.FAILED])
    latest = (AccountRun.select(AccountRun.outcome)
              .where((AccountRun.account == account) & decisive)
              .order_by(AccountRun.id.desc()).limit(1).scalar())
    if latest != RunOutcome.FAILED:
        return None
    last_ok = (AccountRun.select(AccountRun.id)
               .where((AccountRun.account == account) & (AccountRun.outcome == RunOutcome.OK))
               .order_by(AccountRun.id.desc()).limit(1).scalar())
    failed = ((AccountRun.account == account) & (AccountRun.outcome == RunOutcome.FAILED)
              & (AccountRun.id > (last_ok or 0)))
    runs, since = one_tuple(AccountRun.select(fn.COUNT(AccountRun.id),
                                              fn.MIN(AccountRun.started_at)).where(failed))
    error = (AccountRun.select(AccountRun.error).where(failed)
             .order_by(AccountRun.id.desc()).limit(1).scalar())
    return Streak(runs, since, error)


def recovered_text(news: News) -> str:
    """The line that says an account's failures are over."""
    assert news.streak is not None, "news of a recovery has the streak that ended"
    runs = news.streak.runs
    return (f"{account_named(news.account)}: recovered after {runs} failed "
            f"run{'' if runs == 1 else 's'} (failing since {isoformat(news.streak.since)})")


def mail(config: Config, news: list[News]) -> None:
    """Mail *news* to ``[alerts] to`` through ``[smtp]``, one mail per event; never raises for
    SMTP trouble (it is logged)."""
    alerts, smtp = config.alerts, config.smtp
    if not news or alerts is None or smtp is None:
        return
    import contextlib
    import smtplib

    from helpdesk_fetch.automail import outbox

    try:
        connection = outbox.connect(smtp, timeout=config.timeout_for(smtp),
                                    state_dir=config.settings.state_dir)
        with contextlib.closing(connection):
            for item in news:
                _send(connection, smtp, alerts, item)
    except (outbox.SmtpUnavailable, smtplib.SMTPException, OSError, UnicodeError,
            ConfigError) as exc:  # ConfigError: [smtp]'s password source, e.g. an unset variable
        if isinstance(exc, ConfigError):
            exc = exc.in_file(config.path)
        log.warning("alert mail to %s not sent: %s", ", ".join(alerts.to), exc)


def _send(connection: smtplib.SMTP, smtp: Smtp, alerts: Alerts, news: News) -> None:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid, parseaddr

    from helpdesk_fetch.automail.outbox import ascii_domain
    from helpdesk_fetch.automail.plan import MARKER, wire_bytes

    host = socket.gethostname()
    if news.streak is None:
        subject = f"helpdesk-fetch: {account_named(news.account)} is failing"
        body = (f"helpdesk-fetch on {host} cannot process the {account_named(news.account)}:"
                "\n\n"
                f"  {news.error}\n\n`fetch` says so once; while the account fails, every run "
                "exits 1,\nand the log file and syslog record each failure. You will get a "
                "mail\nwhen it recovers. `helpdesk-fetch status` shows its runs.\n")
    else:
        subject = f"helpdesk-fetch: {account_named(news.account)} recovered"
        body = f"helpdesk-fetch on {host}: {recovered_text(news)}.\n"
    sender = parseaddr(smtp.from_address)[1]
    message = EmailMessage()
    message["From"] = smtp.from_address
    message["To"] = ", ".join(alerts.to)
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid("alert", sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[MARKER] = f"alert; account={news.account}"
    message.set_content(body)
    connection.sendmail(ascii_domain(sender), [ascii_domain(a) for a in alerts.to],
                        wire_bytes(message))
