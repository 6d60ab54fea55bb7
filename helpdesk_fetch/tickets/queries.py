"""Tickets as agents and scripts see them: lists, one ticket with its thread, status changes.

The dictionaries returned here are the stable JSON shapes of spec §3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import NotRequired, TypedDict

from peewee import JOIN, ModelSelect, fn

from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.enums import Direction, TicketStatus
from helpdesk_fetch.errors import UsageError
from helpdesk_fetch.store import models, write
from helpdesk_fetch.store.models import Attachment, BouncingAddress, Message, Ticket
from helpdesk_fetch.store.peewee_adapter import tuples
from helpdesk_fetch.tickets.tags import Tagger


class TicketDict(TypedDict):
    """A ticket as ``tickets list --json`` shows it."""

    id: int
    number: str
    subject: str
    status: str  # a TicketStatus
    resource: str | None
    requester: str
    created_at: str | None  # ISO 8601 (clock.isoformat), None for no time
    updated_at: str | None
    closed_at: str | None
    escalation_due_at: str | None
    message_count: int  # inbound messages, accepted and rejected
    tag: str


class AttachmentDict(TypedDict):
    filename: str
    content_type: str
    size: int
    sha256: str


# Functional form: "from" is a keyword.
MessageDict = TypedDict("MessageDict", {
    "id": int,
    "direction": str,  # a Direction
    "state": str,  # a MessageState
    "account": str | None,
    "message_id": str | None,
    "from": str,
    "to": list[str],
    "cc": list[str],
    "date": str | None,  # the Date header; None when it has none (or none that parses)
    "received_at": str | None,  # when it was stored (ours: when it was written)
    "subject": str,
    "text": NotRequired[str],  # not in hook events (event_dicts)
    "html": NotRequired[str | None],
    "attachments": list[AttachmentDict],
    "kind": str,  # a MessageKind (spec §9)
    "rule": str | None,  # the [[rules]] table that decided it
    "notice": str | None,
})


class ShownTicket(TicketDict):
    """A ticket with its thread, as ``tickets show --json`` shows it."""

    bounced_addresses: list[str]  # what its bounces reported failed (spec §9.2)
    messages: list[MessageDict]


class EventDicts(TypedDict):
    """What a hook event says about its ticket and message (spec §12)."""

    ticket: TicketDict
    message: MessageDict
    bounced_addresses: NotRequired[list[str]]  # message.bounced only (hooks.queue)


def ticket_dict(ticket: Ticket, tagger: Tagger, message_count: int) -> TicketDict:
    return {
        "id": ticket.id,
        "number": str(ticket.number),
        "subject": ticket.subject,
        "status": ticket.status,
        "resource": ticket.resource,
        "requester": ticket.requester,
        "created_at": isoformat(ticket.created_at),
        "updated_at": isoformat(ticket.updated_at),
        "closed_at": isoformat(ticket.closed_at),
        "escalation_due_at": isoformat(ticket.escalation_due_at),
        "message_count": message_count,
        "tag": tagger.tag(str(ticket.number)),
    }


def _with_counts() -> ModelSelect[Ticket]:
    """Tickets with the number of inbound messages (accepted and rejected) in one query."""
    inbound = fn.COUNT(Message.id).alias("inbound")
    return (Ticket.select(Ticket, inbound)
            .join(Message, JOIN.LEFT_OUTER,
                  on=(Message.ticket == Ticket.id) & (Message.direction == Direction.IN))
            .group_by(Ticket.id))


def list_tickets(tagger: Tagger, *, status: str | None = None, resource: str | None = None,
                 known: Iterable[str] = ()) -> list[TicketDict]:
    """Tickets, oldest first, optionally of one status and/or resource; *known*: the resources
    the accounts file names, which may have no ticket yet."""
    query = _with_counts()
    if status is not None:
        query = query.where(Ticket.status == check_status(status))
    if resource is not None:
        check_resource(resource, known)
        query = query.where(Ticket.resource == resource)
    # "inbound" is the count _with_counts selects: peewee sets it on each row it makes.
    return [ticket_dict(t, tagger, t.inbound)  # type: ignore[attr-defined]
            for t in query.order_by(Ticket.id)]


def find_ticket(text: str | None, tagger: Tagger, *, ticket_id: int | None = None) -> Ticket:
    """The ticket a user names (spec §3): *text* is its number or its tag ("1042",
    "1042QKXP", "[TicketID 1042QKXP]"); *ticket_id* instead selects by the internal id that
    ``--json`` shows. Exactly one of them; UsageError when there is no such ticket."""
    if text is None and ticket_id is None:
        raise UsageError("which ticket? give its number (or its tag), or --id N")
    if text is not None and ticket_id is not None:
        raise UsageError("give the ticket's number (or its tag), or --id N; not both")
    if text is None:
        ticket = Ticket.get_or_none(Ticket.id == ticket_id)
        if ticket is None:
            raise UsageError(f"no ticket with id {ticket_id}")
        return ticket
    number = ticket_number(text, tagger)
    ticket = Ticket.get_or_none(Ticket.number == number)
    if ticket is None:
        raise UsageError(f"no ticket number {number}")
    return ticket


def ticket_number(text: str, tagger: Tagger) -> str:
    """The ticket number that *text* gives: the number itself, or a tag as written into
    subjects ("1042QKXP", "[TicketID 1042QKXP]"); UsageError for anything else (a forged tag)."""
    text = text.strip()
    if re.fullmatch(r"[0-9]+", text):
        return text.lstrip("0") or "0"
    found = tagger.numbers_in(text) or tagger.numbers_in(f"{tagger.keyword} {text}")
    if not found:
        raise UsageError(f"{text!r} is neither a ticket number nor a valid ticket tag")
    return found[0]


def show_ticket(ticket: Ticket, tagger: Tagger) -> ShownTicket:
    """The ticket with its messages, oldest first, their attachments and the addresses its
    bounces reported failed (four queries)."""
    messages = list(Message.select().where(Message.ticket == ticket).order_by(Message.id))
    attachments = attachments_of([m.id for m in messages])
    inbound = sum(1 for m in messages if m.direction == Direction.IN)
    return {**ticket_dict(ticket, tagger, inbound),
            "bounced_addresses": bounced_addresses(ticket),
            "messages": [message_dict(m, attachments.get(m.id, [])) for m in messages]}


def bounced_addresses(ticket: Ticket) -> list[str]:
    """The addresses bounces on *ticket* reported failed (spec §9.2), in the order reported."""
    query = (BouncingAddress.select(BouncingAddress.address)
             .where(BouncingAddress.ticket == ticket).order_by(BouncingAddress.id))
    return list(dict.fromkeys(row[0] for row in tuples(query)))


def attachments_of(message_ids: list[int]) -> dict[int, list[AttachmentDict]]:
    """The attachments of these messages, by message id, in their order (one query)."""
    attachments: dict[int, list[AttachmentDict]] = {}
    query = (Attachment.select(Attachment.message, Attachment.filename, Attachment.content_type,
                               Attachment.size, Attachment.sha256)
             .where(Attachment.message.in_(message_ids)).order_by(Attachment.id))
    for a in query:
        attachments.setdefault(a.message_id, []).append(
            {"filename": a.filename, "content_type": a.content_type, "size": a.size,
             "sha256": a.sha256})
    return attachments


def event_dicts(ticket: Ticket, message_id: int, tagger: Tagger) -> EventDicts:
    """What a hook event (spec §12) says about its ticket and message: the ticket as ``tickets
    list`` shows it, the message as ``tickets show`` does, without its text and HTML."""
    inbound = (Message.select().where((Message.ticket == ticket.id)
                                      & (Message.direction == Direction.IN)).count())
    message = message_dict(Message.get_by_id(message_id),
                           attachments_of([message_id]).get(message_id, []))
    del message["text"], message["html"]
    return {"ticket": ticket_dict(ticket, tagger, inbound), "message": message}


def message_dict(m: Message, attachments: list[AttachmentDict]) -> MessageDict:
    return {
        "id": m.id,
        "direction": m.direction,
        "state": m.state,
        "account": m.account,
        "message_id": m.message_id,
        "from": m.from_addr,
        "to": json.loads(m.to_addrs),
        "cc": json.loads(m.cc_addrs),
        "date": isoformat(m.date),
        "received_at": isoformat(m.received_at),
        "subject": m.subject,
        "text": m.text,
        "html": m.html,
        "attachments": attachments,
        "kind": m.kind,
        "rule": m.rule,
        "notice": m.notice,  # what is shown only in the raw message, e.g. parts past 1000
    }


def check_resource(resource: str, known: Iterable[str]) -> None:
    """UsageError for a resource that neither the accounts file nor any ticket has: a typo
    would otherwise list no ticket, as if the resource had none."""
    if resource in known or Ticket.select().where(Ticket.resource == resource).exists():
        return
    have = {name for name in known if name} | {
        name for (name,) in tuples(Ticket.select(Ticket.resource).distinct()) if name}
    raise UsageError(f"no resource {resource!r} in the accounts file or on any ticket; "
                     f"resources: {', '.join(sorted(have)) or 'none'}")


def check_status(status: str) -> str:
    if status not in list(TicketStatus):
        raise UsageError(f"unknown status {status!r}; use one of {', '.join(TicketStatus)}")
    return status


def set_status(ticket: Ticket, status: str) -> tuple[Ticket, str]:
    """What an agent does: move *ticket* to *status* (closing records the closing time); the
    ticket as it is now, and the status it had.

    Only the id of *ticket* is used: the row is read again under a lock in the transaction that
    writes it, so that a reply stored since it was read (a re-armed escalation deadline, a
    reopening) is kept."""
    status = TicketStatus(check_status(status))
    now = utcnow()
    with models.database.atomic():
        current = write.lock_ticket(ticket.id)
        if current is None:
            raise UsageError(f"ticket number {ticket.number} no longer exists")
        was = current.status
        if was == status:  # nothing to change, not even the time it was last changed
            return current, was
        closed_at = current.closed_at if was == TicketStatus.CLOSED else now
        write.update_ticket(current, status=status, updated_at=now,
                            closed_at=closed_at if status == TicketStatus.CLOSED else None)
    return current, was
