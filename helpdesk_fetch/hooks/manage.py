"""``hooks list`` and ``hooks retry``: the hook queue as the administrator sees it, and its
events run again once the command is fixed. Spec §12 retries an event until ``max_attempts``
(about 15 hours of back-off at the default 10); a chat server down over a weekend outlasts them,
and without a retry its events would be lost to it for good.

Retrying takes an event back into the queue, due now: one given up gets ``max_attempts`` fresh
attempts, one still failing keeps its count and loses its back-off. The queue then runs as a
``fetch`` runs it (``runner.run_due``: each event claimed, in order per ticket). Delivery stays
at least once: an event another run claimed an instant before the retry took its back-off away
can run twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.errors import ConfigError, UsageError
from helpdesk_fetch.hooks import runner
from helpdesk_fetch.store.models import HookEvent


def state_of(row: HookEvent) -> str:
    """delivered | given_up | failing (failed so far, retried later) | waiting."""
    if row.delivered_at is not None:
        return "delivered"
    if row.failed_at is not None:
        return "given_up"
    return "failing" if row.attempts else "waiting"


def event_dict(row: HookEvent) -> dict[str, Any]:
    """The stable JSON of ``hooks list --json``; ``ticket`` is the ticket's number."""
    return {"id": row.id, "event": row.event, "ticket": runner.ticket_number(row),
            "state": state_of(row), "attempts": row.attempts,
            "created_at": isoformat(row.created_at),
            "next_attempt_at": None if row.delivered_at or row.failed_at
            else isoformat(row.next_attempt_at),
            "delivered_at": isoformat(row.delivered_at), "given_up_at": isoformat(row.failed_at),
            "last_error": row.last_error}


def list_events(*, include_delivered: bool = False) -> list[dict[str, Any]]:
    """The events waiting or given up (with *include_delivered*, also those delivered, kept for
    history_days), oldest first."""
    query = HookEvent.select().order_by(HookEvent.id)
    if not include_delivered:
        query = query.where(HookEvent.delivered_at.is_null())
    return [event_dict(row) for row in query]


@dataclass
class Retried:
    """What ``hooks retry`` did with one event; ``outcome``: delivered | failed | given_up |
    waiting (behind an earlier event of its ticket, or run by another process right now) |
    delivered_already."""

    id: int
    outcome: str
    event: str | None = None
    ticket: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in ("delivered", "delivered_already")


def retry(config: Config, ids: list[int] | None) -> list[Retried]:
    """Take the events *ids* (None: every one not delivered) back into the queue, due now, run
    the queue, and say what became of each."""
    hooks = config.hooks
    if hooks is None:
        raise ConfigError("there is no [hooks] command to run the events with; add the [hooks] "
                          "table back (or fix it), then retry", path=config.path, key="hooks")
    found: list[tuple[int, HookEvent | None]] = [
        (row.id, row) for row in HookEvent.select().where(HookEvent.delivered_at.is_null())
        .order_by(HookEvent.id)] if ids is None else [  # each id once, in the order given
        (event_id, HookEvent.get_or_none(HookEvent.id == event_id))
        for event_id in dict.fromkeys(ids)]
    missing = [str(event_id) for event_id, row in found if row is None]
    if missing:  # as errors retry: nothing is run for a mistyped id
        raise UsageError(f"no hook event with id {', '.join(missing)} (see `helpdesk-fetch "
                         "hooks list --all`)")
    results: list[Retried] = []
    attempts: dict[int, int] = {}  # each event taken back: its attempts before the queue ran
    for row in (row for _, row in found if row is not None):
        if row.delivered_at is not None:
            results.append(_result(row, "delivered_already",
                                   f"delivered {isoformat(row.delivered_at)}; not run again"))
        else:
            attempts[row.id] = _requeue(row, utcnow())
            results.append(Retried(row.id, "waiting"))
    if attempts:
        runner.run_due(config, asked=True)
    return [_after(r, attempts[r.id], hooks.max_attempts) if r.id in attempts else r
            for r in results]


def _requeue(row: HookEvent, now: dt.datetime) -> int:
    """Make *row*'s event due *now*; its attempts from here on."""
    changes: dict[Any, Any] = {HookEvent.next_attempt_at: now, HookEvent.failed_at: None}
    if row.failed_at is not None:  # given up: a fresh set of attempts
        changes[HookEvent.attempts] = 0
    HookEvent.update(changes).where((HookEvent.id == row.id)
                                    & HookEvent.delivered_at.is_null()).execute()
    return 0 if row.failed_at is not None else int(row.attempts)


def _after(result: Retried, before: int, max_attempts: int) -> Retried:
    """*result* as its event's row says after the queue ran (*before*: its attempts then)."""
    row = HookEvent.get_by_id(result.id)
    state = state_of(row)
    if state == "delivered":
        return _result(row, "delivered", "")
    if state == "given_up":
        return _result(row, "given_up", f"{row.attempts} attempt"
                                        f"{' failed' if row.attempts == 1 else 's failed'}: "
                                        f"{row.last_error}")
    if row.attempts > before:
        return _result(row, "failed", f"attempt {row.attempts} of {max_attempts} failed: "
                                      f"{row.last_error}; tried again from "
                                      f"{isoformat(row.next_attempt_at)}")
    earlier = None if row.ticket_id is None else (
        runner.pending().where((HookEvent.ticket == row.ticket_id) & (HookEvent.id < row.id))
        .order_by(HookEvent.id).first())
    if earlier is not None:
        return _result(row, "waiting", f"not run now: event {earlier.id} of its ticket waits "
                                       f"before it (hooks retry {earlier.id} runs both)")
    return _result(row, "waiting", "not run now: another run is running it")


def _result(row: HookEvent, outcome: str, detail: str) -> Retried:
    return Retried(row.id, outcome, row.event, runner.ticket_number(row), detail)
