"""What ingest writes: a message on its ticket, the source keys that make re-fetches harmless, and
the record of messages that could not be ingested. Callers hold the transaction (one per message).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Protocol

from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.enums import (
    Action,
    Direction,
    FailureState,
    MessageState,
    RunOutcome,
    TicketStatus,
)
from helpdesk_fetch.store import db, models, peewee_adapter, sql
from helpdesk_fetch.store.blobs import compress_pieces
from helpdesk_fetch.store.models import (
    AccountRun,
    Canary,
    FailedMessage,
    HookEvent,
    SourceKey,
    Ticket,
)

if TYPE_CHECKING:  # the email package is imported only when there is mail
    from helpdesk_fetch.message.parse import ParsedMessage

KEY_CHUNK = 500  # keys per IN (...) query


class TicketChange(Protocol):
    """What a message does to its ticket (``tickets.rules.Decision``): store/ applies it and
    knows nothing of the rules that decided it."""

    action: Action
    status: TicketStatus | None  # None: unchanged
    rearm: bool  # escalation deadline set to *escalation_due*


def stored_keys(account: str, keys: list[str]) -> set[str]:
    """Which of *keys* are already stored for *account* (to delete without downloading)."""
    found: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start:start + KEY_CHUNK]
        query = SourceKey.select(SourceKey.key).where(
            (SourceKey.account == account) & SourceKey.key.in_(chunk))
        found.update(row[0] for row in query.tuples())
    return found


class AlreadyStored(Exception):
    """Another process stored this source key while this transaction ran (two ``deliver`` of
    one message at once): roll back, it is a duplicate."""


def find_duplicate(account: str, key: str, sha256: str) -> int | None:
    """The id of the stored message that *key* or these exact bytes already are (0: a key stored
    without its message), if any. One query."""
    row = sql.run(sql.statements().duplicate, (account, key, account, sha256)).fetchone()
    return None if row is None else row[0]


def remember_key(account: str, key: str, message_id: int | None) -> bool:
    """Record that *key* of *account* is stored (as *message_id*), so later runs only delete it;
    False when it was already recorded."""
    return sql.statements().source_key.run(dict(account=account, key=key, message=message_id,
                                                created_at=utcnow())) is not None


def store_inbound(parsed: ParsedMessage, raw: bytes, sha256: str, *, account: str, key: str,
                  ticket: Ticket | None, decision: TicketChange, resource: str | None,
                  escalation_due: dt.datetime, now: dt.datetime,
                  compressed: list[bytes] | None = None) -> tuple[Ticket, int]:
    """Apply *decision*: open or update the ticket, store the message with its raw bytes
    (*compressed*: ``compress_pieces(raw)``, done ahead), attachments and source key. Returns the
    ticket and the new message's id."""
    statements = sql.statements()
    if decision.action == Action.NEW:
        ticket = _open_ticket(parsed, account=account, resource=resource, now=now,
                              escalation_due=escalation_due)
    else:
        _update_ticket(ticket, decision, now=now, escalation_due=escalation_due)
    message_id = statements.message.run(dict(
        ticket=ticket.id, direction=Direction.IN,
        state=(MessageState.REJECTED if decision.action == Action.REJECT
               else MessageState.ACCEPTED),
        account=account, message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references), from_addr=parsed.from_addr,
        from_name=parsed.from_name, to_addrs=json.dumps(parsed.to_addrs),
        cc_addrs=json.dumps(parsed.cc_addrs), date=parsed.date, subject=parsed.subject,
        text=parsed.text, html=parsed.html, auto_submitted=is_automatic(parsed), size=len(raw),
        sha256=sha256, received_at=now, notice="; ".join(dict.fromkeys(parsed.notices)) or None))
    statements.raw_message.run(dict(message=message_id, data=compressed or compress_pieces(raw)))
    for a in parsed.attachments:
        statements.attachment.run(dict(message=message_id, filename=a.filename,
                                       content_type=a.content_type, size=a.size,
                                       sha256=a.sha256, content=a.content))
    if not remember_key(account, key, message_id):
        raise AlreadyStored(key)
    return ticket, message_id


def _open_ticket(parsed: ParsedMessage, *, account: str, resource: str | None,
                 now: dt.datetime, escalation_due: dt.datetime) -> Ticket:
    values = dict(number=db.next_ticket_number(models.database.obj),
                  subject=parsed.subject or "(no subject)", status=TicketStatus.NEW,
                  resource=resource,
                  requester=parsed.from_addr, requester_name=parsed.from_name, account=account,
                  created_at=now, updated_at=now, closed_at=None, escalation_due_at=escalation_due)
    return peewee_adapter.as_saved(Ticket(id=sql.statements().ticket.run(values), **values))


def _update_ticket(ticket: Ticket, decision: TicketChange, *, now: dt.datetime,
                   escalation_due: dt.datetime) -> None:
    if decision.action == Action.REJECT:
        return
    changes: dict = {"updated_at": now}
    if decision.status is not None:
        changes["status"] = decision.status
    if decision.rearm:
        changes["escalation_due_at"] = escalation_due
    if decision.action == Action.REOPEN:
        changes["closed_at"] = None
    update_ticket(ticket, **changes)


def lock_ticket(ticket_id: int) -> Ticket | None:
    """The ticket, its row locked until the caller's transaction ends (PostgreSQL ``FOR
    UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already holds the whole database)."""
    return sql.one_ticket(sql.statements().ticket_by_id_locked, (ticket_id,))


def update_ticket(ticket: Ticket, **changes) -> None:
    """The one write path of a ticket row, for ingest and for agents alike: only the columns
    named in *changes*, of a row read with ``lock_ticket`` (or ``find_ticket(lock=True)``) in
    the caller's transaction, so that no change made in between is overwritten."""
    fields = Ticket._meta.fields
    for name, value in changes.items():
        setattr(ticket, name, value)
    sql.run(sql.statements().update_ticket(tuple(changes)),
            [*(fields[name].db_value(value) for name, value in changes.items()), ticket.id])
    peewee_adapter.as_saved(ticket)


def first_run(source: str, now: dt.datetime) -> dt.datetime:
    """When helpdesk-fetch first stored mail of *source*: older mail is backlog (no auto-mail)."""
    key = f"first_run:{source}"
    models.Setting.insert(key=key, value=now.isoformat()).on_conflict_ignore().execute()
    return dt.datetime.fromisoformat(models.Setting.get_by_id(key).value)


def is_own_outbound(message_id: str | None) -> bool:
    """Whether *message_id* is one of our own auto-mails."""
    return message_id is not None and sql.run(sql.statements().own_outbound,
                                              (message_id,)).fetchone() is not None


def is_automatic(parsed: ParsedMessage) -> bool:
    """An auto-reply, bounce, list or bulk mail (RFC 3834 §2, RFC 2919, RFC 2076)."""
    auto = (parsed.header("auto-submitted") or "no").split(";")[0].strip().lower()
    precedence = (parsed.header("precedence") or "").strip().lower()
    return (auto != "no" or precedence in ("bulk", "junk", "list")
            or parsed.header("list-id") is not None)


def died(account: str, started_at: dt.datetime) -> str:
    """What is known of a run of *account* that died without recording its end: the messages
    stored for the account since it started (the account was its alone until it died)."""
    stored = models.Message.select().where(
        (models.Message.account == account) & (models.Message.direction == Direction.IN)
        & (models.Message.received_at >= started_at)).count()
    return (f"ended without recording its end (killed, or the machine went down) after "
            f"storing {stored} messages; the rest stayed on the server")


def begin_run(account: str, *, host: str, started_at: dt.datetime) -> int:
    """Record that a run took *account* (the caller holds its lock); the row's id.

    The row says "running" until ``finish_run``. A run killed outright (SIGKILL, out of memory,
    a power cut) cannot finish its row; since the account's lock is held now, any such row
    left from before belongs to a run that died, and is recorded as interrupted here."""
    for dead in AccountRun.select().where((AccountRun.account == account)
                                          & (AccountRun.outcome == RunOutcome.RUNNING)):
        AccountRun.update(outcome=RunOutcome.INTERRUPTED,
                          error=died(account, dead.started_at)).where(
            AccountRun.id == dead.id).execute()
    return AccountRun.insert(account=account, started_at=started_at, outcome=RunOutcome.RUNNING,
                             host=host).execute()


def finish_run(run_id: int | None, **values) -> None:
    """Record how the run of ``begin_run`` (or, without *run_id*, one that never began: it was
    skipped) ended: *values* are AccountRun's columns."""
    values.setdefault("finished_at", utcnow())
    if run_id is None:
        AccountRun.create(**values)
    else:
        AccountRun.update(**values).where(AccountRun.id == run_id).execute()


def prune_history(days: int) -> int:
    """Forget runs, canaries, hook events delivered or given up, and failed messages resolved
    or dismissed, older than *days* (0: never)."""
    if days <= 0:
        return 0
    before = utcnow() - dt.timedelta(days=days)
    runs = AccountRun.delete().where(AccountRun.started_at < before).execute()
    resolved = FailedMessage.delete().where((FailedMessage.state != FailureState.PENDING)
                                            & (FailedMessage.updated_at < before)).execute()
    canaries = Canary.delete().where(Canary.sent_at < before).execute()
    events = HookEvent.delete().where((HookEvent.delivered_at.is_null(False)
                                       | HookEvent.failed_at.is_null(False))
                                      & (HookEvent.created_at < before)).execute()
    return runs + resolved + canaries + events
