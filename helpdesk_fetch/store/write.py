"""What ingest writes: a message on its ticket, the source keys that make re-fetches harmless, mail
that opened no ticket (ignored), the addresses bounces reported failed, and the record of messages
that could not be ingested. Callers hold the transaction (one per message).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from peewee import JOIN

from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.enums import (
    Action,
    Direction,
    FailureState,
    MessageKind,
    MessageState,
    RunOutcome,
    TicketStatus,
)
from helpdesk_fetch.store import blobs, db, models, peewee_adapter, sql
from helpdesk_fetch.store.blobs import compress_pieces
from helpdesk_fetch.store.models import (
    AccountRun,
    BouncingAddress,
    Canary,
    FailedMessage,
    HookEvent,
    IgnoredMessage,
    SourceKey,
    Ticket,
)

if TYPE_CHECKING:  # the email package is imported only when there is mail
    from helpdesk_fetch.message.parse import ParsedMessage

KEY_CHUNK = 500  # keys per IN (...) query
COPY_DAYS = 30  # a copy of a mail stored this recently through any account is a duplicate (§4.1)


class TicketChange(Protocol):
    """What a message does to its ticket (``tickets.rules.Decision``): store/ applies it and
    knows nothing of the rules that decided it."""

    @property
    def action(self) -> Action: ...

    @property
    def status(self) -> TicketStatus | None: ...  # None: unchanged

    @property
    def rearm(self) -> bool: ...  # escalation deadline set to *escalation_due*


def stored_keys(account: str, keys: list[str]) -> set[str]:
    """Which of *keys* are already stored for *account* (to delete without downloading)."""
    found: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start:start + KEY_CHUNK]
        query = SourceKey.select(SourceKey.key).where(
            (SourceKey.account == account) & SourceKey.key.in_(chunk))
        found.update(row[0] for row in peewee_adapter.tuples(query))
    return found


class AlreadyStored(Exception):
    """Another process stored this source key while this transaction ran (two ``deliver`` of
    one message at once): roll back, it is a duplicate."""


def find_duplicate(account: str, key: str, sha256: str, *, ignored: bool = True) -> int | None:
    """The id of the stored message that *key* or these exact bytes already are (0: a key stored
    without its message, or, with *ignored*, bytes kept as ignored mail), if any. One query."""
    statements = sql.statements()
    if ignored:
        row = sql.run(statements.duplicate_or_ignored,
                      (account, key, account, sha256, account, sha256)).fetchone()
    else:
        row = sql.run(statements.duplicate, (account, key, account, sha256)).fetchone()
    return None if row is None else row[0]


def remember_key(account: str, key: str, message_id: int | None) -> bool:
    """Record that *key* of *account* is stored (as *message_id*), so later runs only delete it;
    False when it was already recorded."""
    return sql.statements().source_key.run(dict(account=account, key=key, message=message_id,
                                                created_at=utcnow())) is not None


@dataclass(frozen=True)
class Filed:
    """What is stored with an inbound message besides its content: its kind (spec §9), whether
    a machine wrote it, the ``[[rules]]`` table that decided it and, for a ticket it opens, the
    resource and the alert correlation key (§10.2)."""

    kind: MessageKind = MessageKind.MESSAGE
    automatic: bool = False
    rule: str | None = None
    resource: str | None = None
    correlation: str | None = None


def store_inbound(parsed: ParsedMessage, raw: bytes, sha256: str, *, account: str, key: str,
                  ticket: Ticket | None, decision: TicketChange, filed: Filed,
                  escalation_due: dt.datetime, now: dt.datetime,
                  compressed: list[bytes] | None = None) -> tuple[Ticket, int]:
    """Apply *decision*: open or update the ticket, store the message with its raw bytes
    (*compressed*: ``compress_pieces(raw)``, done ahead), attachments and source key. Returns the
    ticket and the new message's id."""
    statements = sql.statements()
    if decision.action == Action.NEW:
        ticket = _open_ticket(parsed, account=account, filed=filed, now=now,
                              escalation_due=escalation_due)
    else:
        assert ticket is not None, "every decision but NEW is about the ticket found"
        _update_ticket(ticket, decision, now=now, escalation_due=escalation_due)
    message_id = statements.message.run(dict(
        ticket=ticket.id, direction=Direction.IN,
        state=(MessageState.REJECTED if decision.action == Action.REJECT
               else MessageState.ACCEPTED),
        account=account, message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references), from_addr=parsed.from_addr,
        from_name=parsed.from_name, to_addrs=json.dumps(parsed.to_addrs),
        cc_addrs=json.dumps(parsed.cc_addrs), date=parsed.date, subject=parsed.subject,
        text=parsed.text, html=parsed.html, auto_submitted=filed.automatic, size=len(raw),
        sha256=sha256, received_at=now, kind=filed.kind, rule=filed.rule,
        notice="; ".join(dict.fromkeys(parsed.notices)) or None))
    assert message_id is not None, "RETURNING its id"
    statements.raw_message.run(dict(message=message_id, data=compressed or compress_pieces(raw)))
    for a in parsed.attachments:
        statements.attachment.run(dict(message=message_id, filename=a.filename,
                                       content_type=a.content_type, size=a.size,
                                       sha256=a.sha256, content=a.content))
    if not remember_key(account, key, message_id):
        raise AlreadyStored(key)
    return ticket, message_id


def _open_ticket(parsed: ParsedMessage, *, account: str, filed: Filed, now: dt.datetime,
                 escalation_due: dt.datetime) -> Ticket:
    values = dict(number=db.next_ticket_number(models.database.obj),
                  subject=parsed.subject or "(no subject)", status=TicketStatus.NEW,
                  resource=filed.resource,
                  requester=parsed.from_addr, requester_name=parsed.from_name, account=account,
                  created_at=now, updated_at=now, closed_at=None, escalation_due_at=escalation_due,
                  correlation=filed.correlation)
    return peewee_adapter.as_saved(Ticket(id=sql.statements().ticket.run(values), **values))


def _update_ticket(ticket: Ticket, decision: TicketChange, *, now: dt.datetime,
                   escalation_due: dt.datetime) -> None:
    if decision.action == Action.REJECT:
        return
    changes: dict[str, Any] = {"updated_at": now}
    if decision.status is not None:
        changes["status"] = decision.status
    if decision.rearm:
        changes["escalation_due_at"] = escalation_due
    if decision.action == Action.REOPEN:
        changes["closed_at"] = None
    if decision.status == TicketStatus.CLOSED:  # an alert's recovery (spec §10.2)
        changes["closed_at"] = now
    update_ticket(ticket, **changes)


def lock_ticket(ticket_id: int) -> Ticket | None:
    """The ticket, its row locked until the caller's transaction ends (PostgreSQL ``FOR
    UPDATE``; SQLite's ``BEGIN IMMEDIATE`` already holds the whole database)."""
    return sql.one_ticket(sql.statements().ticket_by_id_locked, (ticket_id,))


def update_ticket(ticket: Ticket, **changes: Any) -> None:
    """The one write path of a ticket row, for ingest and for agents alike: only the columns
    named in *changes*, of a row read with ``lock_ticket`` (or ``find_ticket(lock=True)``) in
    the caller's transaction, so that no change made in between is overwritten."""
    fields = Ticket._meta.fields
    for name, value in changes.items():
        setattr(ticket, name, value)
    sql.run(sql.statements().update_ticket(tuple(changes)),
            [*(fields[name].db_value(value) for name, value in changes.items()), ticket.id])
    peewee_adapter.as_saved(ticket)


def first_run(source: str, now: dt.datetime, *, record: bool = True) -> dt.datetime:
    """When helpdesk-fetch first stored mail of *source*: older mail is backlog (no auto-mail).
    Without *record* (a dry run) a source never seen before has its first run *now*."""
    key = f"first_run:{source}"
    if record:
        models.Setting.insert(key=key, value=now.isoformat()).on_conflict_ignore().execute()
    row = models.Setting.get_or_none(models.Setting.key == key)
    return dt.datetime.fromisoformat(row.value) if row is not None else now


def find_copy(parsed: ParsedMessage, now: dt.datetime, *,
              lock: bool = False) -> tuple[str, int] | None:
    """("out", id) when *parsed* is one of our own auto-mails; ("in", id) when it is a copy of
    a mail stored through any account in the last ``COPY_DAYS`` days (the same Message-ID, From,
    Date and Subject: one mail sent to helpdesk@ and support@, spec §4.1); else None. One query
    on the Message-ID index; with *lock* (the write path) on PostgreSQL a lock on the
    Message-ID until commit first, so that two workers reading both copies at once cannot both
    store it."""
    if not parsed.message_id:
        return None
    statements = sql.statements()
    if lock and statements.text_lock is not None:
        sql.run(statements.text_lock, (f"message-id:{parsed.message_id}",))
    date = models.Message.date.db_value(parsed.date)
    since = now - dt.timedelta(days=COPY_DAYS)
    row = sql.run(statements.own_or_copy, (parsed.message_id, parsed.from_addr, parsed.subject,
                                           date, date, since)).fetchone()
    return None if row is None else (row[0], row[1])


def ticket_number_of(message_id: int) -> str | None:
    """The number of the ticket that holds the message *message_id* (what users see of it)."""
    number: str | None = (models.Message.select(Ticket.number).join(Ticket)
                          .where(models.Message.id == message_id).scalar())
    return number


def body_differs(message_id: int, raw: bytes) -> str | None:
    """The number of the ticket holding the stored message *message_id* when the body of *raw*
    is not that message's (line ends aside), else None: a copy by its headers (``find_copy``)
    that carries something of its own (a list's footer, or another mail under the same
    Message-ID), whose bytes must not be dropped."""
    row = (models.Message.select(Ticket.number, models.RawMessage.data)
           .join(Ticket).switch(models.Message).join(models.RawMessage, JOIN.LEFT_OUTER)
           .where(models.Message.id == message_id).tuples().first())
    if row is None or row[1] is None:  # no bytes to compare with: keep these (never neither)
        return row[0] if row else "?"
    number, data = row
    return None if same_body(blobs.decompress(bytes(data)), raw) else number


def same_body(one: bytes, other: bytes) -> bool:
    """Whether the bodies of two raw messages are the same, their line ends aside (a copy
    through a Maildir has LF where IMAP has CRLF); compared in place where both have the same."""
    a, b = memoryview(one)[_body_start(one):], memoryview(other)[_body_start(other):]
    if a == b:
        return True
    return bytes(a).replace(b"\r\n", b"\n").rstrip(b"\n") == \
        bytes(b).replace(b"\r\n", b"\n").rstrip(b"\n")


def _body_start(raw: bytes) -> int:
    """Where the body of *raw* begins (after the first empty line); its end if it has none."""
    ends = [found + size for blank, size in ((b"\r\n\r\n", 4), (b"\n\n", 2))
            if (found := raw.find(blank)) >= 0]
    return min(ends) if ends else len(raw)


def store_ignored(parsed: ParsedMessage, raw: bytes, sha256: str, *, account: str, key: str,
                  kind: MessageKind, reason: str, now: dt.datetime,
                  compressed: list[bytes] | None = None) -> int:
    """Keep mail that opens no ticket (spec §9.4) with its raw bytes and the *reason* (bounce,
    auto_reply or a rule's name), and its source key, so that it is deleted from the server and
    never fetched again. Returns its id."""
    ignored_id = sql.statements().ignored.run(dict(
        account=account, source_key=key, message_id=parsed.message_id,
        from_addr=parsed.from_addr, subject=parsed.subject, date=parsed.date, kind=kind,
        reason=reason, size=len(raw), sha256=sha256, raw=compressed or compress_pieces(raw),
        received_at=now))
    assert ignored_id is not None, "RETURNING its id"
    if not remember_key(account, key, None):
        raise AlreadyStored(key)
    return ignored_id


def record_bounces(addresses: tuple[str, ...], *, ticket_id: int, message_id: int, status: str,
                   now: dt.datetime) -> None:
    """The recipients a bounce reported failed (spec §9.2): held from auto-mails from *now*."""
    for address in addresses:
        sql.statements().bouncing.run(dict(address=address.lower(), ticket=ticket_id,
                                           message=message_id, status=status[:500],
                                           bounced_at=now))


def bouncing(addresses: set[str], since: dt.datetime) -> set[str]:
    """Which of *addresses* (bare, lower case) a bounce reported failed after *since*."""
    query = (BouncingAddress.select(BouncingAddress.address)
             .where(BouncingAddress.address.in_(sorted(addresses))
                    & (BouncingAddress.bounced_at >= since)))
    return {row[0] for row in peewee_adapter.tuples(query)}


def last_read(account: str, *, by: dt.datetime | None = None) -> dt.datetime | None:
    """When the latest run of *account* that succeeded started (of those that ended *by* then):
    mail in its mailbox then was read by it (or by the runs after it), so what waits there now
    (or waited then) arrived after that."""
    query = AccountRun.select(AccountRun.started_at).where(
        (AccountRun.account == account) & (AccountRun.outcome == RunOutcome.OK))
    if by is not None:
        query = query.where(AccountRun.finished_at <= by)
    started: dt.datetime | None = query.order_by(AccountRun.id.desc()).limit(1).scalar()
    return started


def died(account: str, started_at: dt.datetime) -> str:
    """What is known of a run of *account* that died without recording its end: the messages
    stored for the account since it started, on tickets or as ignored mail (the account was
    its alone until it died)."""
    stored = models.Message.select().where(
        (models.Message.account == account) & (models.Message.direction == Direction.IN)
        & (models.Message.received_at >= started_at)).count()
    stored += IgnoredMessage.select().where((IgnoredMessage.account == account)
                                            & (IgnoredMessage.received_at >= started_at)).count()
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
    run_id: int = AccountRun.insert(account=account, started_at=started_at,
                                    outcome=RunOutcome.RUNNING, host=host).execute()
    return run_id


def finish_run(run_id: int | None, **values: Any) -> None:
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
    runs: int = AccountRun.delete().where(AccountRun.started_at < before).execute()
    resolved: int = FailedMessage.delete().where((FailedMessage.state != FailureState.PENDING)
                                            & (FailedMessage.updated_at < before)).execute()
    canaries: int = Canary.delete().where(Canary.sent_at < before).execute()
    events: int = HookEvent.delete().where((HookEvent.delivered_at.is_null(False)
                                       | HookEvent.failed_at.is_null(False))
                                      & (HookEvent.created_at < before)).execute()
    return runs + resolved + canaries + events


def prune_ignored(days: int) -> int:
    """Forget ignored mail received more than *days* ago (0: never). Its source keys stay, so
    that a copy still on a server is deleted, not fetched again."""
    if days <= 0:
        return 0
    before = utcnow() - dt.timedelta(days=days)
    pruned: int = IgnoredMessage.delete().where(IgnoredMessage.received_at < before).execute()
    return pruned
