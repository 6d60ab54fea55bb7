"""Messages that did not ingest, as ``errors list``, ``errors show`` and ``status`` see them.

A failed message's source key says where it waits (its *place*): ``imap:`` in the account's IMAP
error folder, ``pop3:`` on the POP3 server (``fetch`` skips its UIDL), ``maildir:`` in the
Maildir's error folder, ``deliver:`` in the quarantine Maildir of ``deliver``. ``retry.py``
brings them back; the dictionaries here are the stable JSON of ``errors list --json``.
"""

from __future__ import annotations

from pathlib import Path

from helpdesk_fetch import store
from helpdesk_fetch.clock import isoformat
from helpdesk_fetch.errors import UsageError
from helpdesk_fetch.models import FailedMessage

DELIVER_PREFIX = "deliver:"
PLACES = {"imap": "IMAP error folder", "pop3": "POP3 server", "maildir": "Maildir error folder",
          "quarantine": "quarantine"}
PENDING, RESOLVED, DISMISSED = "pending", "resolved", "dismissed"
QUARANTINE_DIR = "quarantine"


def quarantine_dir(state_dir: str | Path) -> Path:
    """The Maildir where ``deliver`` keeps messages that can never be ingested as they are."""
    return Path(state_dir) / QUARANTINE_DIR


def place_of(source_key: str) -> str:
    """Where a message with this source key waits: imap, pop3, maildir or quarantine."""
    prefix = source_key.split(":", 1)[0]
    return "quarantine" if prefix == "deliver" else prefix


def failure_dict(row: FailedMessage, *, has_copy: bool) -> dict:
    return {
        "id": row.id,
        "account": row.account,
        "place": place_of(row.source_key),
        "location": row.location,
        "reason": row.reason,
        "message_id": row.message_id,
        "from": row.from_addr,
        "subject": row.subject,
        "date": isoformat(row.date),
        "size": row.size,
        "sha256": row.sha256,
        "copy_in_database": has_copy,
        "state": row.state,
        "attempts": row.attempts,
        "failed_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "source_key": row.source_key,
    }


def list_failures(*, include_resolved: bool = False, account: str | None = None) -> list[dict]:
    """Failed messages, oldest first: those waiting, or all that history still holds."""
    without_raw = [f for f in FailedMessage._meta.sorted_fields if f is not FailedMessage.raw]
    query = FailedMessage.select(*without_raw, FailedMessage.raw.is_null(False).alias("has_raw"))
    if not include_resolved:
        query = query.where(FailedMessage.state == PENDING)
    if account is not None:
        query = query.where(FailedMessage.account == account)
    return [failure_dict(row, has_copy=bool(row.has_raw)) for row in query.order_by(
        FailedMessage.id)]


def get_failure(ident: str | int) -> FailedMessage:
    """The failed message with this id; UsageError when there is none."""
    try:
        row = FailedMessage.get_or_none(FailedMessage.id == int(ident))
    except ValueError:
        raise UsageError(f"{ident!r} is not an error id (see `helpdesk-fetch errors list`)")
    if row is None:
        raise UsageError(f"no failed message with id {ident} (see `helpdesk-fetch errors list`)")
    return row


def stored_copy(row: FailedMessage) -> bytes | None:
    """The raw bytes kept when the message was downloaded, else None."""
    return store.decompress(row.raw) if row.raw is not None else None


def waiting() -> dict:
    """Counts of waiting messages per account and per place, and each account's latest."""
    counts: dict[str, int] = {}
    places = dict.fromkeys(PLACES, 0)
    latest: dict[str, dict] = {}
    query = (FailedMessage.select(FailedMessage.id, FailedMessage.account,
                                  FailedMessage.source_key, FailedMessage.reason,
                                  FailedMessage.updated_at)
             .where(FailedMessage.state == PENDING).order_by(FailedMessage.updated_at))
    for row in query:
        counts[row.account] = counts.get(row.account, 0) + 1
        places[place_of(row.source_key)] += 1
        latest[row.account] = {"id": row.id, "reason": row.reason,
                               "at": isoformat(row.updated_at)}
    return {"by_account": counts, "by_place": places, "latest": latest}
