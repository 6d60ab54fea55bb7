"""Messages that did not ingest: their records (written before a message is set aside), and
what ``errors list``, ``errors show`` and ``status`` see of them.

A failed message's source key says where it waits (its *place*): ``imap:`` in the account's IMAP
error folder, ``pop3:`` on the POP3 server (``fetch`` skips its UIDL), ``maildir:`` in the
Maildir's error folder, ``deliver:`` in the quarantine Maildir of ``deliver``; unless its
location says that the mailbox refused to set it aside (``LEFT``): then it is still where it
came from, and the next ``fetch`` tries it again. ``retry.py``
brings them back; the dictionaries here are the stable JSON of ``errors list --json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.enums import FailureState
from helpdesk_fetch.errors import UsageError
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import FailedMessage
from helpdesk_fetch.store.peewee_adapter import tuples

if TYPE_CHECKING:
    from helpdesk_fetch.message.parse import ParsedMessage

DELIVER_PREFIX = "deliver:"
PLACES = {"imap": "IMAP error folder", "pop3": "POP3 server", "maildir": "Maildir error folder",
          "quarantine": "quarantine", "mailbox": "mailbox it came from"}
QUARANTINE_DIR = "quarantine"
LEFT = "left in the mailbox: "  # a location: the mailbox refused to set the message aside


def quarantine_dir(state_dir: str | Path) -> Path:
    """The Maildir where ``deliver`` keeps messages that can never be ingested as they are."""
    return Path(state_dir) / QUARANTINE_DIR


def place_of(source_key: str, location: str | None = None) -> str:
    """Where a message with this source key (recorded with this *location*) waits: imap, pop3,
    maildir, quarantine, or mailbox (the IMAP folder or Maildir it came from, which refused to
    set it aside: its key still finds it there)."""
    if location is not None and location.startswith(LEFT):
        return "mailbox"
    prefix = source_key.split(":", 1)[0]
    return "quarantine" if prefix == "deliver" else prefix


def failure_dict(row: FailedMessage, *, has_copy: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "account": row.account,
        "place": place_of(row.source_key, row.location),
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


def list_failures(*, include_resolved: bool = False,
                  account: str | None = None) -> list[dict[str, Any]]:
    """Failed messages, oldest first: those waiting, or all that history still holds."""
    without_raw = [f for f in FailedMessage._meta.sorted_fields if f is not FailedMessage.raw]
    query = FailedMessage.select(*without_raw, FailedMessage.raw.is_null(False).alias("has_raw"))
    if not include_resolved:
        query = query.where(FailedMessage.state == FailureState.PENDING)
    if account is not None:
        query = query.where(FailedMessage.account == account)
    # "has_raw" is selected above: peewee sets it on each row it makes.
    return [failure_dict(row, has_copy=bool(row.has_raw))  # type: ignore[attr-defined]
            for row in query.order_by(FailedMessage.id)]


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
    return blobs.decompress(row.raw) if row.raw is not None else None


def waiting() -> dict[str, Any]:
    """Counts of waiting messages per account and per place, and each account's latest."""
    counts: dict[str, int] = {}
    places = dict.fromkeys(PLACES, 0)
    latest: dict[str, dict[str, Any]] = {}
    query = (FailedMessage.select(FailedMessage.id, FailedMessage.account,
                                  FailedMessage.source_key, FailedMessage.location,
                                  FailedMessage.reason, FailedMessage.updated_at)
             .where(FailedMessage.state == FailureState.PENDING).order_by(FailedMessage.updated_at))
    for row in query:
        counts[row.account] = counts.get(row.account, 0) + 1
        places[place_of(row.source_key, row.location)] += 1
        latest[row.account] = {"id": row.id, "reason": row.reason,
                               "at": isoformat(row.updated_at)}
    return {"by_account": counts, "by_place": places, "latest": latest}


def record_failure(account: str, key: str, *, reason: str, location: str, size: int,
                   raw: bytes | None = None, parsed: ParsedMessage | None = None,
                   sha256: str | None = None) -> FailedMessage:
    """Remember a message that did not ingest (or failed again), with why and where it waits."""
    now = utcnow()
    fields = dict(reason=reason, location=location, size=size, sha256=sha256,
                  raw=blobs.compress(raw) if raw is not None else None, state=FailureState.PENDING,
                  updated_at=now)
    if parsed is not None:
        fields.update(message_id=parsed.message_id, from_addr=parsed.from_addr,
                      subject=parsed.subject, date=parsed.date)
    row = FailedMessage.get_or_none((FailedMessage.account == account)
                                    & (FailedMessage.source_key == key))
    if row is None:
        return FailedMessage.create(account=account, source_key=key, created_at=now, **fields)
    if row.state != FailureState.PENDING:  # resolved or dismissed before: a failure anew
        row.created_at, row.attempts = now, 0
    for name, value in fields.items():
        setattr(row, name, value)
    row.attempts += 1
    row.save()
    return row


def pending_failure_keys(account: str) -> set[str]:
    """Source keys of this account's messages that failed and wait (POP3 leaves them on the
    server; later runs skip them)."""
    query = FailedMessage.select(FailedMessage.source_key).where(
        (FailedMessage.account == account) & (FailedMessage.state == FailureState.PENDING))
    return {row[0] for row in tuples(query)}


def resolve_stored(account: str, key: str) -> None:
    """A message that failed once is stored now (a later run, or `errors retry`, ingested it
    where it was left): its failure waits no more."""
    FailedMessage.update(state=FailureState.RESOLVED, updated_at=utcnow()).where(
        (FailedMessage.account == account) & (FailedMessage.source_key == key)
        & (FailedMessage.state == FailureState.PENDING)).execute()


def relocate(account: str, key: str, location: str) -> None:
    """Where this failed message waits after all: the mailbox refused to set it aside."""
    FailedMessage.update(location=location).where(
        (FailedMessage.account == account) & (FailedMessage.source_key == key)
        & (FailedMessage.state == FailureState.PENDING)).execute()


def resolve_failure(failure_id: int) -> None:
    """Mark a failed message as re-processed (it is stored now)."""
    FailedMessage.update(state=FailureState.RESOLVED, updated_at=utcnow()).where(
        FailedMessage.id == failure_id).execute()


def dismiss_failure(failure_id: int, raw: bytes | None) -> None:
    """Give up on a failed message, keeping *raw* (when given) as its copy."""
    fields = {"state": FailureState.DISMISSED, "updated_at": utcnow()}
    if raw is not None:
        fields["raw"] = blobs.compress(raw)
    FailedMessage.update(**fields).where(FailedMessage.id == failure_id).execute()
