"""Queueing a hook event in the transaction of the ticket change it reports (spec §12): the event
exists exactly when the change does, so a crash can delay it but never lose it."""

from __future__ import annotations

import datetime as dt
import json

from helpdesk_fetch.config import Config
from helpdesk_fetch.enums import EventKind
from helpdesk_fetch.store.models import HookEvent, Ticket
from helpdesk_fetch.tickets.tags import Tagger


def queue(config: Config, event: EventKind | None, *, ticket: Ticket, message_id: int,
          tagger: Tagger, now: dt.datetime, bounced: tuple[str, ...] = ()) -> HookEvent | None:
    """Queue *event* about *ticket* and its message *message_id*, when ``[hooks]`` asks for it;
    the caller holds the transaction. The ticket and message are written as they are now: the
    command learns what happened, not what the ticket became later. A ``message.bounced``
    event also names the addresses the bounce reported failed (*bounced*; none for one that
    names none), which neither the ticket nor the message shape holds."""
    hooks = config.hooks
    if hooks is None or event is None or event not in hooks.events:
        return None
    from helpdesk_fetch.tickets.queries import event_dicts  # only with [hooks]

    data = event_dicts(ticket, message_id, tagger)
    if event == EventKind.MESSAGE_BOUNCED:
        data["bounced_addresses"] = list(bounced)
    payload = json.dumps(data, ensure_ascii=False)
    return HookEvent.create(event=event, ticket=ticket.id, payload=payload, created_at=now,
                            next_attempt_at=now)
