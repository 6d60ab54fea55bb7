"""What ingest writes: a message on its ticket, the source keys that make re-fetches harmless, and
the record of messages that could not be ingested. Callers hold the transaction (one per message).
"""

from __future__ import annotations

import datetime as dt
import json
import zlib

from helpdesk_fetch import db, models
from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.models import (
    AccountRun,
    Attachment,
    FailedMessage,
    Message,
    RawMessage,
    SourceKey,
    Ticket,
)
from helpdesk_fetch.parse import ParsedMessage
from helpdesk_fetch.rules import NEW, REJECT, REOPEN, Decision

KEY_CHUNK = 500  # keys per IN (...) query


def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def decompress(data: bytes) -> bytes:
    return zlib.decompress(data)


def stored_keys(account: str, keys: list[str]) -> set[str]:
    """Which of *keys* are already stored for *account* (to delete without downloading)."""
    found: set[str] = set()
    for start in range(0, len(keys), KEY_CHUNK):
        chunk = keys[start:start + KEY_CHUNK]
        query = SourceKey.select(SourceKey.key).where(
            (SourceKey.account == account) & SourceKey.key.in_(chunk))
        found.update(row[0] for row in query.tuples())
    return found


def find_duplicate(account: str, key: str, sha256: str) -> int | None:
    """The id of the stored message that *key* or these exact bytes already are, if any."""
    row = SourceKey.get_or_none((SourceKey.account == account) & (SourceKey.key == key))
    if row is not None:
        return row.message_id or 0
    same = (Message.select(Message.id)
            .where((Message.account == account) & (Message.sha256 == sha256)).first())
    return same.id if same else None


def remember_key(account: str, key: str, message_id: int | None) -> None:
    """Record that *key* of *account* is stored (as *message_id*), so later runs only delete it."""
    SourceKey.insert(account=account, key=key, message=message_id,
                     created_at=utcnow()).on_conflict_ignore().execute()


def store_inbound(parsed: ParsedMessage, raw: bytes, sha256: str, *, account: str, key: str,
                  ticket: Ticket | None, decision: Decision, resource: str | None,
                  escalation_due: dt.datetime, now: dt.datetime) -> tuple[Ticket, Message]:
    """Apply *decision*: open or update the ticket, store the message with its raw bytes,
    attachments and source key."""
    if decision.action == NEW:
        ticket = _open_ticket(parsed, account=account, resource=resource, now=now,
                              escalation_due=escalation_due)
    else:
        _update_ticket(ticket, decision, now=now, escalation_due=escalation_due)
    message = Message.create(
        ticket=ticket, direction="in",
        state="rejected" if decision.action == REJECT else "accepted",
        account=account, message_id=parsed.message_id, in_reply_to=parsed.in_reply_to,
        references=" ".join(parsed.references), from_addr=parsed.from_addr,
        from_name=parsed.from_name, to_addrs=json.dumps(parsed.to_addrs),
        cc_addrs=json.dumps(parsed.cc_addrs), date=parsed.date, subject=parsed.subject,
        text=parsed.text, html=parsed.html, auto_submitted=is_automatic(parsed), size=len(raw),
        sha256=sha256, received_at=now)
    RawMessage.insert(message=message, data=compress(raw)).execute()
    if parsed.attachments:
        Attachment.insert_many([
            dict(message=message, filename=a.filename, content_type=a.content_type, size=a.size,
                 sha256=a.sha256, content=a.content) for a in parsed.attachments]).execute()
    remember_key(account, key, message.id)
    return ticket, message


def _open_ticket(parsed: ParsedMessage, *, account: str, resource: str | None,
                 now: dt.datetime, escalation_due: dt.datetime) -> Ticket:
    return Ticket.create(
        number=db.next_ticket_number(models.database.obj), subject=parsed.subject or "(no subject)",
        status="new", resource=resource, requester=parsed.from_addr,
        requester_name=parsed.from_name, account=account, created_at=now, updated_at=now,
        escalation_due_at=escalation_due)


def _update_ticket(ticket: Ticket, decision: Decision, *, now: dt.datetime,
                   escalation_due: dt.datetime) -> None:
    if decision.action == REJECT:
        return
    ticket.updated_at = now
    if decision.status is not None:
        ticket.status = decision.status
    if decision.rearm:
        ticket.escalation_due_at = escalation_due
    if decision.action == REOPEN:
        ticket.closed_at = None
    ticket.save()


def first_run(source: str, now: dt.datetime) -> dt.datetime:
    """When helpdesk-fetch first stored mail of *source*: older mail is backlog (no auto-mail)."""
    key = f"first_run:{source}"
    models.Setting.insert(key=key, value=now.isoformat()).on_conflict_ignore().execute()
    return dt.datetime.fromisoformat(models.Setting.get_by_id(key).value)


def is_own_outbound(message_id: str | None) -> bool:
    """Whether *message_id* is one of our own auto-mails."""
    return message_id is not None and Message.select().where(
        (Message.message_id == message_id) & (Message.direction == "out")).exists()


def is_automatic(parsed: ParsedMessage) -> bool:
    """An auto-reply, bounce, list or bulk mail (RFC 3834 §2, RFC 2919, RFC 2076)."""
    auto = (parsed.header("auto-submitted") or "no").split(";")[0].strip().lower()
    precedence = (parsed.header("precedence") or "").strip().lower()
    return (auto != "no" or precedence in ("bulk", "junk", "list")
            or parsed.header("list-id") is not None)


def record_failure(account: str, key: str, *, reason: str, location: str, size: int,
                   raw: bytes | None = None, parsed: ParsedMessage | None = None,
                   sha256: str | None = None) -> FailedMessage:
    """Remember a message that did not ingest (or failed again), with why and where it waits."""
    now = utcnow()
    fields = dict(reason=reason, location=location, size=size, sha256=sha256,
                  raw=compress(raw) if raw is not None else None, state="pending", updated_at=now)
    if parsed is not None:
        fields.update(message_id=parsed.message_id, from_addr=parsed.from_addr,
                      subject=parsed.subject, date=parsed.date)
    row = FailedMessage.get_or_none((FailedMessage.account == account)
                                    & (FailedMessage.source_key == key))
    if row is None:
        return FailedMessage.create(account=account, source_key=key, created_at=now, **fields)
    for name, value in fields.items():
        setattr(row, name, value)
    row.attempts += 1
    row.save()
    return row


def pending_failure_keys(account: str) -> set[str]:
    """Source keys of this account's messages that failed and wait (POP3 leaves them on the
    server; later runs skip them)."""
    query = FailedMessage.select(FailedMessage.source_key).where(
        (FailedMessage.account == account) & (FailedMessage.state == "pending"))
    return {row[0] for row in query.tuples()}


def resolve_failure(failure_id: int) -> None:
    """Mark a failed message as re-processed (it is stored now)."""
    FailedMessage.update(state="resolved", updated_at=utcnow()).where(
        FailedMessage.id == failure_id).execute()


def dismiss_failure(failure_id: int, raw: bytes | None) -> None:
    """Give up on a failed message, keeping *raw* (when given) as its copy."""
    fields = {"state": "dismissed", "updated_at": utcnow()}
    if raw is not None:
        fields["raw"] = compress(raw)
    FailedMessage.update(**fields).where(FailedMessage.id == failure_id).execute()


def prune_history(days: int) -> int:
    """Forget runs, and failed messages resolved or dismissed, older than *days* (0: never)."""
    if days <= 0:
        return 0
    before = utcnow() - dt.timedelta(days=days)
    runs = AccountRun.delete().where(AccountRun.started_at < before).execute()
    resolved = FailedMessage.delete().where((FailedMessage.state != "pending")
                                            & (FailedMessage.updated_at < before)).execute()
    return runs + resolved
