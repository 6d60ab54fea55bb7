"""``errors retry``: bring messages that did not ingest back through the pipeline, after a fix;
``errors dismiss``: give up on one, keeping its bytes in the database for ``history_days``.

A failed message waits in a *place* (``failures.place_of``). Retry opens that place with the
ordinary mail sources — the IMAP error folder as an IMAP folder, the Maildir error folder and the
quarantine as Maildirs, the POP3 server as it is — finds the message again, hands its bytes to
the same Pipeline as ``fetch``, and removes it from the place only after that commit (store
first, delete second). Retrying twice doubles nothing: the message keeps its original source key,
so a second attempt finds it stored and only cleans up.

Finding a message again: POP3 UIDLs and Maildir file names survive being set aside, so the source
key finds it. An IMAP MOVE gives it a new UID, so there it is found by its size (server-side, no
download) and then by the SHA-256 of its bytes recorded at failure time — no UIDPLUS/COPYUID
needed, and a copy moved by hand or by another client is found just the same. A message that was
never downloaded (over ``max_message_bytes``) has no hash yet: its size identifies it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpdesk_fetch import state
from helpdesk_fetch.config import Account, Config, require_accounts
from helpdesk_fetch.enums import FailureState
from helpdesk_fetch.errors import (
    AccountBusy,
    ConfigError,
    FolderMissing,
    HelpdeskError,
    MailboxError,
    UsageError,
    account_named,
)
from helpdesk_fetch.ingest.pipeline import FAILED, IGNORED, STORED, Outcome, Pipeline, Source
from helpdesk_fetch.sources.base import Mailbox, MessageRef, batches
from helpdesk_fetch.sources.open import open_mailbox
from helpdesk_fetch.store import failures, write
from helpdesk_fetch.store.models import FailedMessage

log = logging.getLogger(__name__)

SEARCHED = ("imap", "quarantine")  # places where a message's key changed on the way there
INGESTED, ALREADY, STILL_FAILS, MISSING, SKIPPED, DISMISSED, IGNORED_ = (
    "ingested", "already stored", "still fails", "missing", "skipped", "dismissed", "ignored")


@dataclass
class RetryResult:
    """What retrying one failed message did."""

    id: int
    account: str
    outcome: str  # ingested | ignored | already stored | still fails | missing | skipped |
    # dismissed
    detail: str = ""
    ticket_number: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in (INGESTED, IGNORED_, ALREADY, DISMISSED)


def retry(config: Config, ids: list[int] | None) -> list[RetryResult]:
    """Re-ingest the failed messages *ids* (None: every waiting one), place by place."""
    return _each_place(config, ids, dismiss=False)


def dismiss(config: Config, ids: list[int]) -> list[RetryResult]:
    """Give up on the failed messages *ids*: copy each into the database (if it is not there
    yet), then remove it from its place; ``errors show --raw`` has it for ``history_days``."""
    return _each_place(config, ids, dismiss=True)


def _each_place(config: Config, ids: list[int] | None, *, dismiss: bool) -> list[RetryResult]:
    switch = state.ingest_switch(config.settings.state_dir)
    if switch is not None:
        raise HelpdeskError("ingest is disabled on this machine, and this changes mailboxes; "
                            "`helpdesk-fetch ingest enable` first")
    pipeline = Pipeline(config)
    try:
        rows, results = _select(pipeline, ids)
        groups: dict[tuple[str, str], list[FailedMessage]] = {}
        for row in rows:
            place = failures.place_of(row.source_key, row.location)
            groups.setdefault((row.account, place), []).append(row)
        for (account, place), group in groups.items():
            results += PlaceWork(config, pipeline, account, place).run(group, dismiss=dismiss)
    finally:
        pipeline.close()
    if any(r.outcome == INGESTED for r in results):
        from helpdesk_fetch.ingest.deliver import send_automails_after_commit

        send_automails_after_commit(config)
    return sorted(results, key=lambda r: r.id)


def _select(pipeline: Pipeline,
            ids: list[int] | None) -> tuple[list[FailedMessage], list[RetryResult]]:
    """The waiting rows to retry, and results for named rows that were resolved before."""
    if ids is None:
        return pipeline.call_db(list, FailedMessage.select().where(
            FailedMessage.state == FailureState.PENDING)), []
    rows = {row.id: row for row in pipeline.call_db(list, FailedMessage.select().where(
        FailedMessage.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in rows]
    if missing:
        raise UsageError(f"no failed message with id {', '.join(missing)} "
                         "(see `helpdesk-fetch errors list`)")
    done = [RetryResult(r.id, r.account, ALREADY if r.state == FailureState.RESOLVED else DISMISSED,
                        f"{r.state} earlier") for r in rows.values()
            if r.state != FailureState.PENDING]
    return [r for r in rows.values() if r.state == FailureState.PENDING], done


def source_and_place(config: Config, account_name: str, place: str) -> tuple[Source, Account]:
    """Who a failed message belongs to (for the pipeline), and its place opened as an account."""
    settings = config.settings
    account: Account | None
    if account_name.startswith(failures.DELIVER_PREFIX):  # `deliver --resource R`
        source, account = Source(account_name, account_name.split(":", 1)[1]), None
    else:
        # a file that lost its accounts says so, not "no such account" (what deliver set
        # aside is retried all the same)
        account = require_accounts(config).account(account_name)
        # mail of a mailbox waited there; what deliver --account set aside came as it arrived
        source = Source(account.name, account.resource, account.automail,
                        waited=place != "quarantine")
    if place == "quarantine":
        path = failures.quarantine_dir(settings.state_dir)
        return source, Account(name=account_name, protocol="maildir", path=str(path))
    assert account is not None, "what deliver set aside is in the quarantine"
    if place == "imap":
        return source, dataclasses.replace(account, folder=settings.error_folder)
    if place == "maildir":
        assert account.path is not None, "a Maildir account has its path (load())"
        path = Path(account.path) / f".{settings.error_folder}"
        return source, dataclasses.replace(account, path=str(path))
    return source, account


@contextlib.contextmanager
def open_place(config: Config, view: Account, place: str, *,
               read_only: bool = False) -> Iterator[Place]:
    """The *place* (seen as the account *view*) as a connected mailbox; a Maildir that does not
    exist holds nothing."""
    limit = config.settings.max_message_bytes
    search = place in SEARCHED
    if view.protocol == "maildir" and not Path(view.path or "").is_dir():  # load(): a path
        yield Place(None, [], limit, search=search)
        return
    with contextlib.ExitStack() as stack:
        try:
            box = stack.enter_context(open_mailbox(view, settings=config.settings,
                                                   timeout=config.timeout_for(view),
                                                   dry_run=read_only))
        except FolderMissing:
            if place != "imap":  # the account's own folder: the configuration is wrong
                raise
            box = None  # an error folder deleted by hand: its messages are gone from it
        yield Place(box, box.list() if box is not None else [], limit, search=search,
                    verify=place == "mailbox")  # a key of the folder the account reads now


class Place:
    """Where failed messages wait, opened as a mailbox: find them again, read, remove.

    *search*: keys change on the way here (an IMAP MOVE, the quarantine), so look by content."""

    def __init__(self, box: Mailbox | None, refs: list[MessageRef], limit: int, *,
                 search: bool, verify: bool = False) -> None:
        self.box, self.refs, self.limit, self.search = box, refs, limit, search
        self.verify = verify  # a key found is checked to be the message (``_same``)
        self.by_key = {r.key: r for r in refs}
        self.hashes: dict[str, str] = {}  # key -> SHA-256 of what was read, read at most once
        self.taken: set[str] = set()
        self.refused: str | None = None  # why the last read() gave nothing, when known
        self.handed_over: bytes | None = None  # and what the server handed over instead

    def find(self, row: FailedMessage) -> MessageRef | None:
        """The message of *row* in this place, or None when it is not there."""
        # Searching, a key is never compared: the row's key was made in another folder, whose
        # UIDVALIDITY a server may give this folder too (RFC 3501 allows it).
        ref = None if self.search else self.by_key.get(row.source_key)
        if ref is not None and self.verify and not self._same(ref, row):
            ref = None  # another message under that key (another folder, the same UIDVALIDITY)
        if ref is None and self.search and row.sha256 is None:
            # Never downloaded (it was too large): its size is all that is known of it.
            ref = next((r for r in self._free() if r.size == row.size), None)
        elif ref is None and self.search and row.sha256 is not None:
            ref = self._by_hash(row.sha256, row.size)
        if ref is not None:
            self.taken.add(ref.key)
        return ref

    @property
    def mailbox(self) -> Mailbox:
        """The open mailbox; a place without one holds no message to act on."""
        assert self.box is not None, "no message is found in a place without a mailbox"
        return self.box

    def _same(self, ref: MessageRef, row: FailedMessage) -> bool:
        """Whether *ref* is *row*'s message: its bytes' hash where the row has one, else the
        size the server listed for it then."""
        if row.sha256 is None:
            return ref.size == row.size
        self._hash([ref])
        return self.hashes.get(ref.key) == row.sha256

    def _free(self) -> list[MessageRef]:
        return [r for r in self.refs if r.key not in self.taken]

    def _by_hash(self, sha256: str, size: int) -> MessageRef | None:
        free = self._free()
        same_size = [r for r in free if r.size == size]
        others = [r for r in free if r.size != size and r.size <= self.limit]
        for group in (same_size, others):  # a server may count the size differently
            self._hash(group)
            match = next((r for r in group if self.hashes.get(r.key) == sha256), None)
            if match is not None:
                return match
        return None

    def _hash(self, refs: list[MessageRef]) -> None:
        for batch in batches([r for r in refs if r.key not in self.hashes]):
            for ref, raw in self.mailbox.fetch(batch):
                self.hashes[ref.key] = hashlib.sha256(raw).hexdigest()

    def read(self, ref: MessageRef) -> bytes | None:
        """The message's bytes; None when the server did not hand it over, and then
        ``refused`` says why where the server handed over something else (POP3), and
        ``handed_over`` has that."""
        raw = next((raw for _, raw in self.mailbox.fetch([ref])), None)
        held = next(iter(self.mailbox.withheld()), None)
        self.refused, self.handed_over = (held.reason, held.handed_over) if held else (None, None)
        return raw

    def unreadable(self, ref: MessageRef) -> str | None:
        return self.mailbox.unreadable(ref)

    def remove(self, ref: MessageRef) -> None:
        """Delete a message that is stored now, at once (the caller has committed)."""
        self.mailbox.delete([ref])
        self.mailbox.flush()


class PlaceWork:
    """The failed messages of one account in one place, retried or dismissed under the
    account's lock."""

    def __init__(self, config: Config, pipeline: Pipeline, account: str, place: str) -> None:
        self.config, self.pipeline, self.account, self.place_name = config, pipeline, account, place
        self.limit = config.settings.max_message_bytes

    def run(self, rows: list[FailedMessage], *, dismiss: bool) -> list[RetryResult]:
        results: list[RetryResult] = []
        action = self._dismiss if dismiss else self._retry
        lock = state.quarantine_lock() if self.place_name == "quarantine" else self.account
        try:
            source, view = source_and_place(self.config, self.account, self.place_name)
            with state.account_lock(lock, state_dir=self.config.settings.state_dir,
                                    database=self.pipeline.database), \
                    open_place(self.config, view, self.place_name) as place:
                for row in self._as_now(rows):  # read again under the account's lock
                    if isinstance(row, RetryResult):
                        results.append(row)
                        continue
                    results.append(action(source, place, row))
        except AccountBusy:
            return results + self._skipped(rows, results, "another run is processing this "
                                           "account; try again in a moment")
        except (MailboxError, ConfigError) as exc:
            if isinstance(exc, ConfigError):  # e.g. a password source: name the file too
                exc = exc.in_file(self.config.path)
            log.error("%s", exc)
            return results + self._skipped(rows, results, str(exc))
        return results

    def _as_now(self, rows: list[FailedMessage]) -> list[FailedMessage | RetryResult]:
        """*rows* as the database has them now: a run that held the account meanwhile may
        have stored a message, or set it aside elsewhere (then it is skipped, to be asked for
        again)."""
        ids = [r.id for r in rows]
        now = {r.id: r for r in self.pipeline.call_db(
            lambda: list(FailedMessage.select().where(FailedMessage.id.in_(ids))))}
        fresh: list[FailedMessage | RetryResult] = []
        for row in rows:
            current = now.get(row.id)
            if current is not None and current.state == row.state and self.place_name == \
                    failures.place_of(current.source_key, current.location):
                fresh.append(current)
            else:
                fresh.append(RetryResult(row.id, row.account, SKIPPED, "it changed while this "
                                         "waited for the account; run the command again"))
        return fresh

    def _skipped(self, rows: list[FailedMessage], done: list[RetryResult],
                 why: str) -> list[RetryResult]:
        seen = {r.id for r in done}
        return [RetryResult(r.id, r.account, SKIPPED, why) for r in rows if r.id not in seen]

    def _dismiss(self, source: Source, place: Place, row: FailedMessage) -> RetryResult:
        ref = place.find(row)
        copy = None
        if ref is not None and row.raw is None:
            # Given up on: keep what the server hands over even where it is not the message
            # as listed (a notice in its place quotes it, or the server miscounted its size).
            copy = place.read(ref)
            copy = copy if copy is not None else place.handed_over
        self.pipeline.call_db(failures.dismiss_failure, row.id, copy)
        if ref is not None:
            place.remove(ref)
        kept = "its copy" if row.raw is not None or copy is not None else "its record"
        log.info("%s: error %d dismissed", account_named(row.account), row.id)
        where = failures.PLACES[self.place_name]
        done = f"removed from the {where}" if ref is not None else f"no longer in the {where}"
        return RetryResult(row.id, row.account, DISMISSED,
                           f"{done}; {kept} is kept for "
                           f"{self.config.settings.history_days or 'all'} days")

    def _retry(self, source: Source, place: Place, row: FailedMessage) -> RetryResult:
        ref = place.find(row)
        why = place.unreadable(ref) if ref is not None else None
        if ref is not None and why is None and ref.size > self.limit:
            why = f"{ref.size} bytes is over max_message_bytes ({self.limit}); not downloaded"
        if why is not None:
            assert ref is not None, "only a message found is unreadable or too large"
            return self._still_fails(source, row, Outcome(FAILED, row.source_key, reason=why),
                                     raw=None, size=ref.size)
        raw = place.read(ref) if ref is not None else failures.stored_copy(row)
        if raw is None and ref is not None and place.refused:
            return self._still_fails(source, row, Outcome(FAILED, row.source_key,
                                                          reason=place.refused),
                                     raw=None, size=ref.size)
        if raw is None:
            return self._not_found(row)
        # it arrived by its first failure, however long the fix took (spec §5.4)
        outcome = self.pipeline.ingest(dataclasses.replace(source, seen_by=row.created_at), raw,
                                       row.source_key)
        if outcome.kind == FAILED:
            return self._still_fails(source, row, outcome, raw=raw, size=len(raw))
        if ref is not None:
            place.remove(ref)
        self.pipeline.call_db(failures.resolve_failure, row.id)
        found = "" if ref is not None else " (from the copy in the database; it was no longer " \
                                           f"in the {failures.PLACES[self.place_name]})"
        log.info("%s: %s (error %d) re-processed: %s%s", account_named(row.account),
                 outcome.label, row.id, outcome.kind, found)
        if outcome.kind == STORED:
            assert outcome.decision is not None, "stored by a decision"
            return RetryResult(row.id, row.account, INGESTED, outcome.decision.why + found,
                               outcome.ticket_number)
        if outcome.kind == IGNORED:  # opened no ticket: `ignored list` has it (spec §9.4)
            return RetryResult(row.id, row.account, IGNORED_,
                               f"opened no ticket ({outcome.ignored}); see `helpdesk-fetch "
                               f"ignored list`{found}")
        from helpdesk_fetch.ingest.report import copy_text

        verdict = outcome.verdict
        copy = verdict.copy_of if verdict is not None else None
        why = ("it was stored before" if copy is None else
               "one of our own auto-mails, already stored" if copy[0] == "out" else
               copy_text(verdict.copy_ticket if verdict is not None else None))
        return RetryResult(row.id, row.account, ALREADY, why + found)

    def _still_fails(self, source: Source, row: FailedMessage, outcome: Outcome, *,
                     raw: bytes | None, size: int) -> RetryResult:
        log.info("%s: %s (error %d) still fails: %s", account_named(row.account),
                 outcome.label, row.id, outcome.reason)
        self.pipeline.record_failure(source, outcome, raw=raw, size=size, location=row.location)
        return RetryResult(row.id, row.account, STILL_FAILS, outcome.reason)

    def _not_found(self, row: FailedMessage) -> RetryResult:
        if self.pipeline.call_db(write.stored_keys, row.account, [row.source_key]):
            self.pipeline.call_db(failures.resolve_failure, row.id)
            return RetryResult(row.id, row.account, ALREADY, "it was stored before")
        where = failures.PLACES[self.place_name]
        return RetryResult(row.id, row.account, MISSING,
                           f"not found in the {where}, and it was too large to keep a copy "
                           "in the database; was it removed by hand?")


def fetch_raw(config: Config, row: FailedMessage) -> bytes:
    """The raw bytes of a failed message: the database copy, else read from its place."""
    raw = failures.stored_copy(row)
    if raw is not None:
        return raw
    where = failures.place_of(row.source_key, row.location)
    _, view = source_and_place(config, row.account, where)
    with open_place(config, view, where, read_only=True) as place:
        ref = place.find(row)
        raw = place.read(ref) if ref is not None else None
        why = place.refused
    if raw is None:
        raise HelpdeskError(f"failed message {row.id}: {why}" if why else
                            f"failed message {row.id} is no longer in the "
                            f"{failures.PLACES[where]}")
    return raw
