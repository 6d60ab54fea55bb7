"""Mail that opened no ticket (spec §9.4), as ``ignored list``, ``ignored show`` and ``status``
see it. ``write.store_ignored`` keeps it, ``write.prune_ignored`` forgets it after
``ignored_days``, ``ingest.restore`` makes a request of it after all.

A restored message is stored under the source key ``restored:<id>`` of its account: that key is
how a second restore finds the first (and the ticket it went to).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from helpdesk_fetch.clock import isoformat
from helpdesk_fetch.errors import UsageError
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import IgnoredMessage, Message, SourceKey, Ticket

RESTORED_PREFIX = "restored:"


def restored_key(row: IgnoredMessage) -> str:
    """The source key a restored message is stored under."""
    return f"{RESTORED_PREFIX}{row.id}"


def ignored_dict(row: IgnoredMessage) -> dict[str, Any]:
    """The stable JSON of ``ignored list --json`` (more keys may be added)."""
    return {
        "id": row.id,
        "account": row.account,
        "received_at": isoformat(row.received_at),
        "from": row.from_addr,
        "subject": row.subject,
        "reason": row.reason,
        "kind": row.kind,
        "message_id": row.message_id,
        "date": isoformat(row.date),
        "size": row.size,
        "sha256": row.sha256,
        "restored_at": isoformat(row.restored_at),
    }


def list_ignored(*, account: str | None = None) -> list[dict[str, Any]]:
    """The ignored mail kept, oldest first (its raw bytes not loaded)."""
    fields = [f for f in IgnoredMessage._meta.sorted_fields if f is not IgnoredMessage.raw]
    query = IgnoredMessage.select(*fields)
    if account is not None:
        query = query.where(IgnoredMessage.account == account)
    return [ignored_dict(row) for row in query.order_by(IgnoredMessage.id)]


def get_ignored(ident: str | int) -> IgnoredMessage:
    """The ignored message with this id; UsageError when there is none (any more)."""
    try:
        row = IgnoredMessage.get_or_none(IgnoredMessage.id == int(ident))
    except ValueError:
        raise UsageError(f"{ident!r} is not an id of ignored mail (see `helpdesk-fetch ignored "
                         "list`)")
    if row is None:
        raise UsageError(f"no ignored message with id {ident} (see `helpdesk-fetch ignored "
                         "list`; ignored mail is kept for ignored_days)")
    return row


def raw_of(row: IgnoredMessage) -> bytes:
    return blobs.decompress(row.raw)


def restored_to(row: IgnoredMessage) -> str | None:
    """The number of the ticket a restore of *row* stored it on, or None."""
    found = (Ticket.select(Ticket.number).join(Message).join(
        SourceKey, on=(SourceKey.message == Message.id))
        .where((SourceKey.account == row.account) & (SourceKey.key == restored_key(row)))
        .tuples().first())
    return found[0] if found else None


def mark_restored(row: IgnoredMessage, now: dt.datetime) -> None:
    """Record that *row* was restored (the first time only)."""
    IgnoredMessage.update(restored_at=now).where(
        (IgnoredMessage.id == row.id) & IgnoredMessage.restored_at.is_null()).execute()
