"""The ticket rules of spec §5, as plain functions of (ticket, sender, settings, now)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.config import Resource, Settings

if TYPE_CHECKING:
    from helpdesk_fetch.store.models import Ticket

NEW, APPEND, REOPEN, REJECT = "new", "append", "reopen", "reject"
STATUSES = ("new", "confirmed_unread", "in_progress", "closed")


@dataclass(frozen=True)
class Decision:
    """What an inbound message does to its ticket."""

    action: str  # new | append | reopen | reject
    status: str | None  # the ticket's new status; None: unchanged
    rearm: bool  # escalation deadline set to now + escalation_hours
    automails: tuple[str, ...]  # auto-mail kinds this event calls for (spec §6)
    why: str  # for the log and for --dry-run


def decide(ticket: Ticket | None, sender: str, *, resource: Resource | None, settings: Settings,
           now: dt.datetime, sender_verified: bool = True) -> Decision:
    """Apply §5.1-§5.4 to a message from *sender* that belongs to *ticket* (None: no ticket).

    *sender_verified* False (the organisation's mail server did not vouch for the From address,
    see ``authres``) makes a member's message count as a customer's."""
    if ticket is None:
        return Decision(NEW, "new", True, ("new_ticket", "new_ticket_resource"),
                        "no matching ticket: a new one")
    if ticket.status == "closed":
        if within_reactivation(ticket, settings, now):
            return Decision(REOPEN, "confirmed_unread", True, ("customer_reply",),
                            f"reply within {settings.reactivation_days} days of closing: reopened")
        return Decision(REJECT, None, False, ("ticket_closed",),
                        "reply after the reactivation window: kept as rejected, ticket stays "
                        "closed")
    if settings.no_status_change_from_members and sender_verified and is_member(sender, resource):
        return Decision(APPEND, None, False, ("customer_reply",),
                        "reply from a member of the resource: appended, status unchanged")
    return Decision(APPEND, "confirmed_unread", True, ("customer_reply",),
                    "reply: appended, confirmed_unread")


def own_mail_returned() -> Decision:
    """One of our own auto-mails came back into a mailbox: keep it, change nothing, tell no one."""
    return Decision(REJECT, None, False, (),
                    "one of our own auto-mails came back: kept on its ticket, nothing changed")


def within_reactivation(ticket: Ticket, settings: Settings, now: dt.datetime) -> bool:
    """True when a reply now may still reopen the closed *ticket* (§5.4; 0 days: never)."""
    if settings.reactivation_days <= 0 or ticket.closed_at is None:
        return False
    return now - ticket.closed_at <= dt.timedelta(days=settings.reactivation_days)


def is_member(address: str, resource: Resource | None) -> bool:
    """Whether the bare *address* is one of the resource's staff (case-insensitive)."""
    if resource is None or not address:
        return False
    return address.lower() in {m.lower() for m in resource.members}


def escalation_due(settings: Settings, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(hours=settings.escalation_hours)
