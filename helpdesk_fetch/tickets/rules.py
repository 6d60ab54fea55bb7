"""The ticket rules of spec §5, as plain functions of (ticket, sender, settings, now); and what mail
that is not a person's request does to its ticket (§9: auto-replies, bounces)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.config import Resource, Settings
from helpdesk_fetch.enums import Action, AutomailKind, EventKind, MessageKind, TicketStatus

if TYPE_CHECKING:
    from helpdesk_fetch.store.models import Ticket



@dataclass(frozen=True)
class Decision:
    """What an inbound message does to its ticket."""

    action: Action
    status: TicketStatus | None  # the ticket's new status; None: unchanged
    rearm: bool  # escalation deadline set to now + escalation_hours
    automails: tuple[AutomailKind, ...]  # the auto-mails this event calls for (spec §6)
    why: str  # for the log and for --dry-run
    event: EventKind | None = None  # the [hooks] event it causes (spec §12); None: none


def decide(ticket: Ticket | None, sender: str, *, resource: Resource | None, settings: Settings,
           now: dt.datetime, received: dt.datetime | None = None,
           sender_verified: bool = True) -> Decision:
    """Apply §5.1-§5.4 to a message from *sender* that belongs to *ticket* (None: no ticket),
    *received* (reached its mailbox; default *now*).

    *sender_verified* False (the organisation's mail server did not vouch for the From address,
    see ``authres``) makes a member's message count as a customer's."""
    if ticket is None:
        # A member's own request earns them no receipt: nobody is sent an auto-mail about an
        # event their own message caused (§5.3); the rest of the staff are still told.
        receipt = () if sender_verified and is_member(sender, resource) else (
            AutomailKind.NEW_TICKET,)
        return Decision(Action.NEW, TicketStatus.NEW, True,
                        (*receipt, AutomailKind.NEW_TICKET_RESOURCE),
                        "no matching ticket: a new one", EventKind.TICKET_CREATED)
    if ticket.status == TicketStatus.CLOSED:
        received = now if received is None else min(received, now)
        when = "" if received == now else \
            f" (it reached the mailbox {received.isoformat(sep=' ', timespec='minutes')} UTC)"
        if within_reactivation(ticket, settings, received):
            return Decision(Action.REOPEN, TicketStatus.CONFIRMED_UNREAD, True,
                            (AutomailKind.CUSTOMER_REPLY,),
                            f"reply within {settings.reactivation_days} days of closing{when}: "
                            "reopened", EventKind.TICKET_REOPENED)
        return Decision(Action.REJECT, None, False, (AutomailKind.TICKET_CLOSED,),
                        f"reply after the reactivation window{when}: kept as rejected, ticket "
                        "stays closed", EventKind.TICKET_REJECTED)
    if settings.no_status_change_from_members and sender_verified and is_member(sender, resource):
        return Decision(Action.APPEND, None, False, (AutomailKind.CUSTOMER_REPLY,),
                        "reply from a member of the resource: appended, status unchanged",
                        EventKind.TICKET_REPLIED)
    return Decision(Action.APPEND, TicketStatus.CONFIRMED_UNREAD, True,
                    (AutomailKind.CUSTOMER_REPLY,),
                    "reply: appended, confirmed_unread", EventKind.TICKET_REPLIED)


def own_mail_returned() -> Decision:
    """One of our own auto-mails came back into a mailbox: keep it, change nothing, tell no one
    (no auto-mail, no hook event)."""
    return Decision(Action.REJECT, None, False, (),
                    "one of our own auto-mails came back: kept on its ticket, nothing changed")


def machine_reply(kind: MessageKind, *, delay_only: bool = False) -> Decision:
    """An auto-reply or a bounce that found its ticket (spec §9.1, §9.2): appended, and nothing
    else changes: not the status (a closed ticket stays closed), not the escalation deadline, and
    no auto-mail goes out. The team sees it on the ticket; nobody is told "the customer replied".

    Hooks hear of a bounce (``message.bounced``: an address of the ticket is dead, someone may
    have to call); not of an auto-reply (an out-of-office to every receipt would ping a chat
    for nothing), nor of a delay notice (*delay_only*: nothing failed yet)."""
    if kind == MessageKind.AUTO_REPLY:
        return Decision(Action.APPEND, None, False, (),
                        "an auto-reply: appended, status and escalation unchanged")
    if delay_only:
        return Decision(Action.APPEND, None, False, (),
                        "a delay notice: appended, status and escalation unchanged")
    return Decision(Action.APPEND, None, False, (),
                    f"a {kind}: appended, status and escalation unchanged",
                    EventKind.MESSAGE_BOUNCED)


def alert(ticket: Ticket | None, *, resolves: bool) -> Decision:
    """A monitoring alert (spec §10.2) with the open ticket of its key, or None: the first
    opens a ticket (the resource is told, the monitoring system is not answered), the next are
    appended with nothing changed, a recovery is appended and closes the ticket.

    Hooks hear of each (spec §12 has five event names, none for closing): ``ticket.created``
    for the first, ``ticket.replied`` for the next and for the recovery, whose event's ticket
    says ``"status": "closed"``."""
    if ticket is None:
        return Decision(Action.NEW, TicketStatus.NEW, True, (AutomailKind.NEW_TICKET_RESOURCE,),
                        "an alert with no open ticket for its key: a new one",
                        EventKind.TICKET_CREATED)
    if resolves:
        return Decision(Action.RESOLVE, TicketStatus.CLOSED, False, (),
                        "an alert's recovery: appended, ticket closed", EventKind.TICKET_REPLIED)
    return Decision(Action.APPEND, None, False, (),
                    "an alert: appended to the open ticket of its key, status unchanged",
                    EventKind.TICKET_REPLIED)


def within_reactivation(ticket: Ticket, settings: Settings, now: dt.datetime) -> bool:
    """True when a reply received *now* may still reopen the closed *ticket* (§5.4; 0 days:
    never). A reply received before the ticket was closed may."""
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
