"""What ``status`` and ``accounts list`` report: runs, waiting messages, canaries, queues
(auto-mails, hook events), ticket counts, ignored mail and bouncing addresses."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from peewee import fn

from helpdesk_fetch import state
from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.config.dburl import redact as redact_url
from helpdesk_fetch.enums import RunOutcome, TicketStatus
from helpdesk_fetch.health import canary
from helpdesk_fetch.store import db, failures, write
from helpdesk_fetch.store.models import (
    AccountRun,
    BouncingAddress,
    HookEvent,
    IgnoredMessage,
    Outbox,
    Ticket,
)
from helpdesk_fetch.store.peewee_adapter import tuples

NO_CANARY = {"sent_at": None, "received_at": None, "travel_seconds": None, "error": None}


def run_dict(run: AccountRun, *, longest: float | None = None) -> dict[str, Any]:
    """A run as ``status`` and ``accounts list`` show it. A run still "running" after
    *longest* seconds, the most a live run can take, died without recording its end (SIGKILL,
    a power cut): it is shown as interrupted, as the account's next run will record it."""
    outcome, error = run.outcome, run.error
    if (outcome == RunOutcome.RUNNING and longest is not None
            and (utcnow() - run.started_at).total_seconds() > longest):
        outcome, error = RunOutcome.INTERRUPTED, write.died(run.account, run.started_at)
    return {
        "started_at": isoformat(run.started_at),
        "finished_at": isoformat(run.finished_at),
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 3)
        if run.finished_at else None,
        "outcome": outcome,
        "fetched": run.fetched,
        "new_tickets": run.new_tickets,
        "threaded": run.threaded,
        "rejected": run.rejected,
        "duplicates": run.duplicates,
        "ignored": run.ignored,
        "rule_counts": json.loads(run.rule_counts or "{}"),
        "errors": run.errors,
        "error": error,
        "host": run.host,
    }


def last_runs(config: Config | None = None) -> dict[str, dict[str, Any]]:
    """Each account's latest recorded run (with *config*: one that died is told apart from
    one still running)."""
    latest = AccountRun.select(fn.MAX(AccountRun.id)).group_by(AccountRun.account)
    return {run.account: run_dict(run, longest=_longest_run(config, run.account))
            for run in AccountRun.select().where(AccountRun.id.in_(latest))}


def _longest_run(config: Config | None, name: str) -> float | None:
    """The most seconds a live run spends on account *name*: the run's budget, then one
    timeout for the session it cuts, with room for waiting on the database's locks."""
    if config is None:
        return None
    account = next((a for a in config.accounts if a.name == name), None)
    if account is None:
        return None
    return (config.settings.run_budget_seconds + 2 * config.timeout_for(account)
            + 2 * db.BUSY_SECONDS)


def deliver_targets(config: Config) -> set[str]:
    """The targets of ``deliver`` that *config* defines (``state.deliver_failing``'s known)."""
    return state.deliver_targets([r.name for r in config.resources],
                                 [a.name for a in config.accounts])


def outbox() -> dict[str, Any]:
    """The auto-mail queue: how many wait, how many of those failed to send so far (and wait for
    a retry), the oldest waiting, and how many the server refused for good."""
    unsent = Outbox.select().where(Outbox.sent_at.is_null())
    waiting = unsent.where(Outbox.failed_at.is_null())
    failing = waiting.where(Outbox.last_error.is_null(False))
    last = failing.select(Outbox.last_error).order_by(Outbox.id.desc()).limit(1).scalar()
    return {"pending": waiting.count(),
            "failing": failing.count(),
            "oldest": isoformat(waiting.select(fn.MIN(Outbox.created_at)).scalar()),
            "refused": unsent.where(Outbox.failed_at.is_null(False)).count(),
            "last_error": last}  # why the latest of those failing was not sent


def hook_queue() -> dict[str, Any]:
    """The hook events (spec §12): how many wait, how many of those failed so far (and wait for
    a retry), the oldest waiting, and how many were given up after max_attempts."""
    waiting = HookEvent.select().where(HookEvent.delivered_at.is_null()
                                       & HookEvent.failed_at.is_null())
    failing = waiting.where(HookEvent.attempts > 0)
    latest = (HookEvent.select().where(HookEvent.last_error.is_null(False)
                                       & HookEvent.delivered_at.is_null())
              .order_by(HookEvent.id.desc()).first())
    return {"pending": waiting.count(),
            "failing": failing.count(),
            "oldest": isoformat(waiting.select(fn.MIN(HookEvent.created_at)).scalar()),
            "given_up": HookEvent.select().where(HookEvent.failed_at.is_null(False)).count(),
            "last_error": None if latest is None else {
                "id": latest.id, "event": latest.event, "attempts": latest.attempts,
                "error": latest.last_error}}


def bouncing_addresses(hold_days: int, now: dt.datetime) -> list[dict[str, Any]]:
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
             "held_until": isoformat(when + hold)} for address, when in _times(tuples(query))]


def _times(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[str, dt.datetime]]:
    """(address, bounced_at) with the time as a datetime: an aggregate comes back from SQLite
    as the stored text."""
    for address, when in rows:
        yield address, when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(when)


def ignored_count() -> int:
    """How much ignored mail is kept (spec §9.4), restored mail not counted."""
    return IgnoredMessage.select().where(IgnoredMessage.restored_at.is_null()).count()


def status(config: Config) -> dict[str, Any]:
    """Everything ``status --json`` shows (spec §3), in one dictionary."""
    switch = state.switch_report(config.settings.state_dir)
    runs = last_runs(config)
    canaries = canary.last_by_account()
    waiting = failures.waiting()
    queue = outbox()
    by_status: dict[str, int] = dict.fromkeys(TicketStatus, 0)
    by_status.update(tuples(Ticket.select(Ticket.status, fn.COUNT(Ticket.id))
                            .group_by(Ticket.status)))
    return {
        **switch,
        "database": redact_url(config.settings.database),
        "automail": config.smtp is not None,
        "accounts": [
            {"name": a.name, "protocol": a.protocol, "server": a.server, "enabled": a.enabled,
             "last_run": runs.get(a.name),
             "error_messages": waiting["by_account"].get(a.name, 0),
             "last_failure": waiting["latest"].get(a.name),
             "canary": canaries.get(a.name, NO_CANARY)}
            for a in config.accounts],
        "error_messages": sum(waiting["by_place"].values()),
        "error_messages_by_place": waiting["by_place"],
        "outbox_pending": queue["pending"],
        "outbox": queue,
        "hooks": config.hooks is not None,
        "hook_queue": hook_queue(),
        "tickets_by_status": by_status,
        "history_days": config.settings.history_days,
        "ignored_messages": ignored_count(),
        "ignored_days": config.settings.ignored_days,
        "bouncing_addresses": bouncing_addresses(config.settings.bounce_hold_days, utcnow()),
        "bounce_hold_days": config.settings.bounce_hold_days,
        "deliver_failing": state.deliver_failing(config.settings.state_dir,
                                                 deliver_targets(config)),
    }
