"""The domain's words, each defined once: what the database stores, the JSON shows and the rules
decide in. ``StrEnum`` members are plain strings, so they compare equal to the values stored
and printed (``TicketStatus.CLOSED == "closed"``).
"""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    """A ticket's status (spec §5); ``confirmed_unread`` is the "yellow clipboard"."""

    NEW = "new"
    CONFIRMED_UNREAD = "confirmed_unread"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Action(StrEnum):
    """What an inbound message does to its ticket (spec §5)."""

    NEW = "new"  # opens a ticket
    APPEND = "append"
    REOPEN = "reopen"
    REJECT = "reject"  # kept as a rejected message of a closed ticket
    RESOLVE = "resolve"  # an alert's recovery: appended, and its ticket closed (spec §10.2)


class Direction(StrEnum):
    IN = "in"  # mail that arrived
    OUT = "out"  # our own auto-mails


class MessageState(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class MessageKind(StrEnum):
    """What an inbound message is (spec §9)."""

    MESSAGE = "message"  # written by a person
    AUTO_REPLY = "auto_reply"  # out-of-office and other auto-responders
    BOUNCE = "bounce"  # a delivery status notification
    ALERT = "alert"  # a monitoring alert a rule correlates (spec §10.2)


class FailureState(StrEnum):
    """A message that did not ingest: waiting, ingested after all, or given up."""

    PENDING = "pending"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class RunOutcome(StrEnum):
    """How one account's part of a run ended."""

    RUNNING = "running"  # recorded at its start; a run that dies keeps it (see store/write.py)
    OK = "ok"
    FAILED = "failed"
    BUSY = "busy"  # another run held the account
    SKIPPED = "skipped"  # the run's time budget was used up first
    DRY_RUN = "dry-run"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM during the account; or it died (SIGKILL)


class AutomailKind(StrEnum):
    """The auto-mails of spec §6."""

    NEW_TICKET = "new_ticket"  # to the requester
    NEW_TICKET_RESOURCE = "new_ticket_resource"  # to the resource
    CUSTOMER_REPLY = "customer_reply"  # to the resource
    TICKET_CLOSED = "ticket_closed"  # to the sender of a too-late reply


class EventKind(StrEnum):
    """The events a ``[hooks]`` command is run for (spec §12)."""

    TICKET_CREATED = "ticket.created"
    TICKET_REPLIED = "ticket.replied"
    TICKET_REOPENED = "ticket.reopened"
    TICKET_REJECTED = "ticket.rejected"  # a reply after the reactivation window
    MESSAGE_BOUNCED = "message.bounced"  # a bounce appended to its ticket (spec §9.2)
