"""What ``status`` and ``accounts list`` report: runs, waiting messages, queues, ticket counts."""

from __future__ import annotations

import datetime as dt
import json

from peewee import fn

from helpdesk_fetch import state
from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.config.dburl import redact as redact_url
from helpdesk_fetch.enums import TicketStatus
from helpdesk_fetch.store import failures
from helpdesk_fetch.store.models import (
    AccountRun,
    BouncingAddress,
    IgnoredMessage,
    Outbox,
    Ticket,
)


def run_dict(run: AccountRun) -> dict:
    return {
        "started_at": isoformat(run.started_at),
        "finished_at": isoformat(run.finished_at),
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 3)
        if run.finished_at else None,
        "outcome": run.outcome,
        "fetched": run.fetched,
        "new_tickets": run.new_tickets,
        "threaded": run.threaded,
        "rejected": run.rejected,
        "duplicates": run.duplicates,
        "ignored": run.ignored,
        "rule_counts": json.loads(run.rule_counts or "{}"),
        "errors": run.errors,
        "error": run.error,
        "host": run.host,
    }


def last_runs() -> dict[str, dict]:
    """Each account's latest recorded run."""
    latest = AccountRun.select(fn.MAX(AccountRun.id)).group_by(AccountRun.account)
    return {run.account: run_dict(run) for run in AccountRun.select().where(
        AccountRun.id.in_(latest))}


def outbox() -> dict:
    """The auto-mail queue: how many wait, how many of those failed to send so far (and wait for
    a retry), the oldest waiting, and how many the server refused for good."""
    unsent = Outbox.select().where(Outbox.sent_at.is_null())
    waiting = unsent.where(Outbox.failed_at.is_null())
    return {"pending": waiting.count(),
            "failing": waiting.where(Outbox.attempts > 0).count(),
            "oldest": isoformat(waiting.select(fn.MIN(Outbox.created_at)).scalar()),
            "refused": unsent.where(Outbox.failed_at.is_null(False)).count()}


def bouncing_addresses(hold_days: int, now: dt.datetime) -> list[dict]:
    """The addresses held from auto-mails because a bounce reported them failed in the last
    *hold_days* days (spec §9.2), each with its latest bounce, oldest first."""
    if hold_days <= 0:
        return []
    hold = dt.timedelta(days=hold_days)
    latest = fn.MAX(BouncingAddress.bounced_at)
    query = (BouncingAddress.select(BouncingAddress.address, latest.alias("bounced_at"))
             .where(BouncingAddress.bounced_at >= now - hold)
             .group_by(BouncingAddress.address).order_by(latest, BouncingAddress.address))
    return [{"address": address, "bounced_at": isoformat(when),
             "held_until": isoformat(when + hold)} for address, when in _times(query.tuples())]


def _times(rows):
    """(address, bounced_at) with the time as a datetime: an aggregate comes back from SQLite
    as the stored text."""
    for address, when in rows:
        yield address, when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(when)


def ignored_count() -> int:
    """How much ignored mail is kept (spec §9.4), restored mail not counted."""
    return IgnoredMessage.select().where(IgnoredMessage.restored_at.is_null()).count()


def status(config: Config) -> dict:
    """Everything ``status --json`` shows (spec §3), in one dictionary."""
    switch = state.switch_report(config.settings.state_dir)
    runs = last_runs()
    waiting = failures.waiting()
    queue = outbox()
    by_status = dict.fromkeys(TicketStatus, 0)
    by_status.update(Ticket.select(Ticket.status, fn.COUNT(Ticket.id))
                     .group_by(Ticket.status).tuples())
    return {
        **switch,
        "database": redact_url(config.settings.database),
        "automail": config.smtp is not None,
        "accounts": [
            {"name": a.name, "protocol": a.protocol, "server": a.server, "enabled": a.enabled,
             "last_run": runs.get(a.name),
             "error_messages": waiting["by_account"].get(a.name, 0),
             "last_failure": waiting["latest"].get(a.name)}
            for a in config.accounts],
        "error_messages": sum(waiting["by_place"].values()),
        "error_messages_by_place": waiting["by_place"],
        "outbox_pending": queue["pending"],
        "outbox": queue,
        "tickets_by_status": by_status,
        "history_days": config.settings.history_days,
        "ignored_messages": ignored_count(),
        "ignored_days": config.settings.ignored_days,
        "bouncing_addresses": bouncing_addresses(config.settings.bounce_hold_days, utcnow()),
        "bounce_hold_days": config.settings.bounce_hold_days,
    }
