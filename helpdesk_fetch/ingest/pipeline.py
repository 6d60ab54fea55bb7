"""One message, from raw bytes to a ticket message: parse, classify, thread, decide, store.

The pipeline knows nothing about mailboxes: ``fetch`` (ingest.py), ``deliver``, ``errors retry``
and ``ignored restore`` all hand it raw bytes with a source key and act on the Outcome (delete, set
aside, exit code). What a message is and does is worked out by ``decide.Decider`` (a Verdict);
everything it changes in the database happens in one transaction (spec §4.2; in ``fetch`` a
savepoint of its commit group, store/group.py): the ticket and the message, or the ignored mail
(§9.4), the bouncing addresses (§9.2), the auto-mails it causes and its ``[hooks]`` event (§12).
A canary of ``probe send`` (§11.3) is recognised before all that: its arrival is recorded, and it
is neither a copy, nor ignored mail, nor a ticket.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import peewee

from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.enums import MessageKind
from helpdesk_fetch.errors import account_named, unexpected
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.ingest.source import Source
from helpdesk_fetch.store import blobs, db, failures, write
from helpdesk_fetch.tickets.tags import installation_tagger

if TYPE_CHECKING:
    from helpdesk_fetch.automail.plan import Planned
    from helpdesk_fetch.ingest.decide import Decider, Verdict
    from helpdesk_fetch.message.budget import Parser
    from helpdesk_fetch.message.parse import ParsedMessage
    from helpdesk_fetch.store.group import Action, CommitGroup
    from helpdesk_fetch.tickets import rules

# The parser, the decider (the classifier, the rules) and the auto-mails (the email package,
# html.parser, templates) are imported where they are used, and so are the canaries, the hook
# queue and the ticket rules: a cron run that finds no mail never needs them (the no-op run of
# issues 7 and 18).

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

STORED, IGNORED, DUPLICATE, FAILED, PLANNED = "stored", "ignored", "duplicate", "failed", "planned"
CANARY = "canary"  # a canary of `probe send` (spec §11.3): its arrival recorded, no ticket
__all__ = ["CANARY", "DUPLICATE", "FAILED", "IGNORED", "PLANNED", "STORED", "Outcome", "Pipeline",
           "Prepared", "Source", "prepare"]


@dataclass
class Outcome:
    """What happened to one message (or, in a dry run, would happen)."""

    kind: str  # stored | ignored | duplicate | failed | planned (dry run) | canary
    key: str
    sha256: str = ""
    reason: str = ""
    parsed: ParsedMessage | None = None
    decision: rules.Decision | None = None
    ticket_number: str | None = None
    found_by: str | None = None  # "tag" | "reply" | "bounce" | None (a new ticket)
    duplicate_of: int | None = None
    verdict: Verdict | None = None
    ticket_id: int | None = None  # the ticket stored on (stored) or found (planned)
    message_row: int | None = None  # the id of the stored Message (stored) or IgnoredMessage
    automails: list[Planned] = field(default_factory=list)  # queued (stored) or planned
    # planned: why a message whose event calls for auto-mails causes none (a dry run says it)
    held_back: str | None = None
    # rules test: the message stored before as this (0: a key without it), judged as if new
    stored_before: int | None = None

    @property
    def label(self) -> str:
        """How log lines name the message: its Message-ID, else its source key."""
        if self.parsed is not None and self.parsed.message_id:
            return f"<{self.parsed.message_id}>"
        return self.key

    @property
    def message_kind(self) -> MessageKind | None:
        """The message's kind (spec §9), where it was classified."""
        return self.verdict.kind if self.verdict and self.verdict.classification else None

    @property
    def ignored(self) -> str | None:
        """Why the message opens no ticket (spec §9.4), or None."""
        return self.verdict.ignored if self.verdict else None

    def describe(self) -> str:
        """One line on what happens to the message: kind, deciding rule, its ticket or the
        resource of a new one, the auto-mails (``fetch --dry-run``, ``rules test``, retries)."""
        from helpdesk_fetch.ingest.report import describe

        return describe(self)


@dataclass
class Prepared:
    """The work on one message that holds neither the database nor, for the most part, Python's
    GIL: its hash and its compressed copy. ``fetch`` has it done in another thread ahead of the
    writer (prefetch.py), which also hands the message to the parse worker."""

    sha256: str
    compressed: list[bytes] | None = None  # the raw message as stored, in pieces
    parse_ticket: int | None = None  # Parser.submit's, when it is being parsed ahead


def prepare(raw: bytes, *, compress: bool = True) -> Prepared:
    """Hash and (unless *compress* is false) compress *raw*."""
    return Prepared(hashlib.sha256(raw).hexdigest(),
                    blobs.compress_pieces(raw) if compress else None)


def _unanswered(calls: Iterable[str], planned: list[Planned]) -> bool:
    """Whether the event's auto-mails (*calls*) are all held back, or the one to the sender."""
    from helpdesk_fetch.automail.plan import TO_SENDER

    to_sender = any(kind in TO_SENDER for kind in calls)
    return not planned or (to_sender and not any(p.kind in TO_SENDER for p in planned))


def _unexpected(exc: Exception, key: str, sha256: str, parsed: ParsedMessage) -> Outcome:
    """A message that met a bug of ours: set aside with the error as its reason (``errors
    retry`` files it once a fixed version is installed); the traceback at -vv."""
    log.debug("unexpected error while filing %s", key, exc_info=True)
    return Outcome(FAILED, key, sha256, unexpected(exc), parsed=parsed)


class Pipeline:
    """Turns raw messages into ticket messages for one run, command or retry."""

    def __init__(self, config: Config, *, dry_run: bool = False) -> None:
        self.config = config
        self.settings = config.settings
        self.dry_run = dry_run
        self.database = db.open_configured(self.settings, read_only=dry_run)
        self.tagger = self.call_db(installation_tagger, self.settings)
        self._parser: Parser | None = None
        # fetch's, while it stores a mailbox's messages: each message a savepoint in it
        self.group: CommitGroup | None = None

    @functools.cached_property
    def decider(self) -> Decider:
        """What decides about messages, made at the first message."""
        from helpdesk_fetch.ingest.decide import Decider

        return Decider(self.config, self.tagger)

    @property
    def parser(self) -> Parser:
        """The parse worker of this pipeline, made when there is mail (it imports the email
        package); its process starts when an IMAP server announces mail, else with the first
        message."""
        if self._parser is None:
            from helpdesk_fetch.message.budget import Parser

            self._parser = Parser(self.settings.parse_seconds)
        return self._parser

    def after_commit(self, action: Action) -> None:
        """Run *action* once the message just stored is committed (spec §4.1: delete it, count
        it, say it was stored): at the commit of the open group, or at once."""
        if self.group is not None:
            self.group.after_commit(action)
        else:
            action()

    def commit_group(self) -> None:
        """Commit the open group, if any: before waiting (for the parse worker, the mailbox),
        and before a record that must be committed on its own (spec §4.2)."""
        if self.group is not None:
            self.group.commit()

    def close(self) -> None:
        """Stop the parse worker, if one was started."""
        if self._parser is not None:
            self._parser.close()

    def prepare(self, raw: bytes) -> Prepared:
        """``prepare(raw)`` for ``ingest(..., prepared=...)``, with *raw* handed to the parse
        worker first; thread-safe, once ``parser.start()`` was called."""
        small = len(raw) <= self.settings.max_message_bytes  # else refused by ingest()
        ticket = self.parser.submit(raw) if small else None
        prepared = prepare(raw, compress=small and not self.dry_run)
        prepared.parse_ticket = ticket
        return prepared

    def parse(self, raw: bytes, prepared: Prepared | None = None) -> ParsedMessage:
        """The one way a message is parsed — ``fetch``, ``deliver`` and ``errors retry`` alike:
        in the parse worker, within parse_seconds (message/budget.py). Unparseable (ParseTimeout)
        when it cannot be parsed (in time)."""
        if prepared is not None and prepared.parse_ticket is not None:
            from helpdesk_fetch.store.group import IDLE_AFTER  # with mail only (the no-op run)

            return self.parser.result(prepared.parse_ticket, idle=self.commit_group,
                                      idle_after=IDLE_AFTER)
        return self.parser.parse(raw)

    def ingest(self, source: Source, raw: bytes, key: str, *,
               prepared: Prepared | None = None, restore: bool = False,
               trial: bool = False) -> Outcome:
        """Store *raw* (known to *source* as *key*) on its ticket, or say why not. *prepared*:
        ``prepare(raw)``, done ahead; without it the work is done here when needed. *restore*
        (``ignored restore``): a request after all, never ignored. *trial* (``rules test``): bytes
        kept as ignored mail are judged again, not taken as stored.

        A database failure that is not about this message raises DatabaseError: the caller must
        then delete nothing and stop."""
        from helpdesk_fetch.message.budget import Unparseable
        from helpdesk_fetch.message.parse import parse_headers

        sha256 = prepared.sha256 if prepared else hashlib.sha256(raw).hexdigest()
        limit = self.settings.max_message_bytes
        if len(raw) > limit:
            return Outcome(FAILED, key, sha256, f"{len(raw)} bytes is over max_message_bytes "
                                                f"({limit})", parsed=parse_headers(raw))
        # A restore brings back bytes kept as ignored mail, which are no duplicate of themselves;
        # `rules test` asks what the rules say of them (saved with `ignored show --raw`), and of
        # mail stored already (saved from the helpdesk's mailbox to try a new rule on).
        duplicate = self.call_db(write.find_duplicate, source.name, key, sha256,
                                 ignored=not (restore or trial))
        if trial:
            return self._trial(source, raw, key, sha256, duplicate)
        if duplicate is not None:
            if not self.dry_run:
                from helpdesk_fetch.store.group import atomic

                self._begin()
                with db.errors(), atomic(self.database):
                    write.remember_key(source.name, key, duplicate or None)
            return Outcome(DUPLICATE, key, sha256, duplicate_of=duplicate,
                           reason="stored before", parsed=parse_headers(raw))
        try:
            parsed = self.parse(raw, prepared)
        except Unparseable as exc:  # it cannot be parsed, or not within parse_seconds
            return Outcome(FAILED, key, sha256, str(exc), parsed=parse_headers(raw))
        if self.dry_run:
            return self._plan(source, raw, key, sha256, parsed, restore=restore)
        return self._store(source, raw, key, sha256, parsed, restore=restore,
                           compressed=prepared.compressed if prepared else None)

    def _trial(self, source: Source, raw: bytes, key: str, sha256: str,
               duplicate: int | None) -> Outcome:
        """``rules test``: the plan for *raw* as if it were new mail, its copies stored before
        (*duplicate*, or one by its headers) noted rather than decisive."""
        from helpdesk_fetch.message.budget import Unparseable
        from helpdesk_fetch.message.parse import parse_headers

        try:
            parsed = self.parse(raw)
        except Unparseable as exc:
            return Outcome(FAILED, key, sha256, str(exc), parsed=parse_headers(raw))
        outcome = self._plan(source, raw, key, sha256, parsed, restore=False, copies=False)
        if outcome.kind == PLANNED:
            copy = self.call_db(write.find_copy, parsed, utcnow())
            stored = duplicate if duplicate is not None else copy[1] if copy else None
            outcome.stored_before = stored
        return outcome

    def _plan(self, source: Source, raw: bytes, key: str, sha256: str, parsed: ParsedMessage,
              *, restore: bool, copies: bool = True) -> Outcome:
        now = utcnow()
        try:
            arrived = self._canary(source, key, sha256, parsed, now, record=False)
            if arrived is not None:
                return arrived
            verdict = self.decider.verdict(source, parsed, now, restore=restore, raw=raw,
                                           copies=copies)
            outcome = self._outcome(PLANNED, key, sha256, parsed, verdict)
            if verdict.decision is not None:
                outcome.automails = self._automails(source, verdict, parsed, now, record=False)
                if _unanswered(verdict.decision.automails, outcome.automails):
                    outcome.held_back = self._held_back(source, verdict, parsed, now)
        except peewee.PeeweeException as exc:
            raise db.as_database_error(exc) from None
        except Exception as exc:  # as in _store
            return _unexpected(exc, key, sha256, parsed)
        return outcome

    def _store(self, source: Source, raw: bytes, key: str, sha256: str,
               parsed: ParsedMessage, *, restore: bool,
               compressed: list[bytes] | None, again: bool = False) -> Outcome:
        from helpdesk_fetch.store.group import atomic

        now = utcnow()
        self._begin(len(raw))
        try:
            with atomic(self.database):  # a savepoint when in a group
                # A canary first: the copy check and the rules never see it (it would be a
                # copy of nothing, or an ignored auto-generated mail by some rule).
                arrived = self._canary(source, key, sha256, parsed, now)
                if arrived is not None:
                    return arrived
                verdict = self.decider.verdict(source, parsed, now, lock=True, restore=restore,
                                               raw=raw)
                outcome = self._file(source, raw, key, sha256, parsed, verdict, now=now,
                                     compressed=compressed)
                crashpoint("mid_transaction")
                if verdict.decision is not None:  # a ticket changed: in its transaction
                    outcome.automails = self._queue_automails(source, outcome, now)
                    self._queue_event(outcome, now)
        except write.AlreadyStored:
            return Outcome(DUPLICATE, key, sha256, parsed=parsed,
                           reason="stored by another process at the same moment")
        except (peewee.IntegrityError, peewee.DataError) as exc:
            return Outcome(FAILED, key, sha256, f"the database refused it: {exc}", parsed=parsed)
        except peewee.PeeweeException as exc:
            if self.group is not None and db.lock_conflict(exc) and not again:
                # PostgreSQL broke a deadlock with another worker (their groups waited for each
                # other's rows): the group's commit lets the other go on; then this once more
                log.info("%s: %s; committing what was stored and trying %s again",
                         account_named(source.name), db.describe_error(exc), key)
                self.group.commit()
                return self._store(source, raw, key, sha256, parsed, restore=restore,
                                   compressed=compressed, again=True)
            raise db.as_database_error(exc, "cannot store messages") from None
        except Exception as exc:  # a bug met by this message: it must not block the others
            return _unexpected(exc, key, sha256, parsed)
        if self.group is None:  # else at the group's commit
            crashpoint("after_commit")
        if outcome.kind != DUPLICATE:  # the caller logs duplicates, found here or before
            self.after_commit(functools.partial(log.info, "%s: %s", account_named(source.name),
                                                outcome.describe()))
        return outcome

    def _begin(self, size: int = 0) -> None:
        """Open the group, if fetch has one, before writing: what follows is a savepoint in it."""
        if self.group is not None:
            self.group.begin(size)

    def _canary(self, source: Source, key: str, sha256: str, parsed: ParsedMessage,
                now: dt.datetime, *, record: bool = True) -> Outcome | None:
        """The Outcome of a canary of ours for this account: its arrival recorded and its
        source key stored (so that it is deleted like any message, and never read twice);
        None for every other message."""
        from helpdesk_fetch.health import canary

        arrival = canary.receive(parsed, account=source.name, tagger=self.tagger, now=now,
                                 record=record)
        if arrival is None:
            return None
        if record:
            write.remember_key(source.name, key, None)
        travel = ("" if arrival.travel_seconds is None
                  else f" after {arrival.travel_seconds:.1f} s")
        return Outcome(CANARY, key, sha256, parsed=parsed,
                       reason=f"the canary {arrival.token} of probe send arrived{travel}")

    def _file(self, source: Source, raw: bytes, key: str, sha256: str, parsed: ParsedMessage,
              verdict: Verdict, *, now: dt.datetime, compressed: list[bytes] | None) -> Outcome:
        """Store what *verdict* says: a copy's key, ignored mail, or the message on its ticket."""
        if verdict.copy_of is not None:  # recorded by its key: deleted, never fetched again
            write.remember_key(source.name, key, verdict.copy_of[1])
            return self._outcome(DUPLICATE, key, sha256, parsed, verdict)
        store = self._store_ignored if verdict.decision is None else self._store_message
        return store(source, raw, key, sha256, parsed, verdict, now=now, compressed=compressed)

    def _store_message(self, source: Source, raw: bytes, key: str, sha256: str,
                       parsed: ParsedMessage, verdict: Verdict, *, now: dt.datetime,
                       compressed: list[bytes] | None) -> Outcome:
        """The message on its ticket (opened when new), and what a bounce reports failed."""
        from helpdesk_fetch.tickets import rules

        assert verdict.decision is not None, "_file stores a message with a decision"
        ticket, message_row = write.store_inbound(
            parsed, raw, sha256, account=source.name, key=key, ticket=verdict.ticket,
            decision=verdict.decision, filed=verdict.filed, now=now, compressed=compressed,
            escalation_due=rules.escalation_due(self.settings, now))
        verdict.ticket = ticket
        if verdict.bounced:  # found by the classifier
            assert verdict.classification is not None
            write.record_bounces(verdict.bounced, ticket_id=ticket.id, message_id=message_row,
                                 status=verdict.classification.reason, now=now)
        outcome = self._outcome(STORED, key, sha256, parsed, verdict)
        outcome.message_row = message_row
        return outcome

    def _store_ignored(self, source: Source, raw: bytes, key: str, sha256: str,
                       parsed: ParsedMessage, verdict: Verdict, *, now: dt.datetime,
                       compressed: list[bytes] | None) -> Outcome:
        """Mail that opens no ticket, kept for ``ignored_days`` (spec §9.4)."""
        assert verdict.ignored is not None, "_file stores as ignored what has no decision"
        outcome = self._outcome(IGNORED, key, sha256, parsed, verdict)
        outcome.message_row = write.store_ignored(
            parsed, raw, sha256, account=source.name, key=key, kind=verdict.kind,
            reason=verdict.ignored, now=now, compressed=compressed)
        return outcome

    @staticmethod
    def _outcome(kind: str, key: str, sha256: str, parsed: ParsedMessage,
                 verdict: Verdict) -> Outcome:
        ticket = verdict.ticket
        return Outcome(kind, key, sha256, parsed=parsed, decision=verdict.decision,
                       verdict=verdict, ticket_number=ticket.number if ticket else None,
                       ticket_id=ticket.id if ticket else None, found_by=verdict.found_by,
                       duplicate_of=verdict.copy_of[1] if verdict.copy_of else None,
                       reason=verdict.ignored or "")

    def _automails(self, source: Source, verdict: Verdict, parsed: ParsedMessage,
                   now: dt.datetime, *, record: bool = True) -> list[Planned]:
        """The auto-mails the message causes (*record* False: a dry run, nothing written)."""
        assert verdict.decision is not None and verdict.classification is not None
        if not verdict.decision.automails or self.config.smtp is None:
            return []
        from helpdesk_fetch.automail import plan as automail

        return automail.plan(
            verdict.decision, parsed, no_reply=verdict.classification.no_reply_reason,
            ours=verdict.classification.ours, config=self.config, automail=verdict.automail,
            resource=self.config.resource(verdict.resource), now=now,
            first_run=write.first_run(source.name, now, record=record))

    def _held_back(self, source: Source, verdict: Verdict, parsed: ParsedMessage,
                   now: dt.datetime) -> str | None:
        """Why the message is sent none of the auto-mails its event calls for, or none of
        those to its sender (a dry run)."""
        assert verdict.decision is not None and verdict.classification is not None
        if not (verdict.decision.automails and self.config.smtp):
            return None
        if not verdict.automail:  # the rule's word, or else the account's
            return (f"automail = false in rule {verdict.rule}" if source.automail
                    else f"automail = false on {account_named(source.name)}")
        from helpdesk_fetch.automail import plan as automail

        return automail.held_back(parsed, no_reply=verdict.classification.no_reply_reason,
                                  ours=verdict.classification.ours,
                                  first_run=write.first_run(source.name, now, record=False))

    def _queue_automails(self, source: Source, outcome: Outcome, now: dt.datetime) -> list[Planned]:
        verdict, parsed = outcome.verdict, outcome.parsed
        assert verdict is not None and parsed is not None, "of a stored message"
        planned = self._automails(source, verdict, parsed, now)
        if planned:
            from helpdesk_fetch.automail import plan as automail

            assert verdict.ticket is not None, "stored on it"
            for mail in planned:
                automail.queue(mail, ticket=verdict.ticket, parsed=parsed, config=self.config,
                               tagger=self.tagger, now=now)
        return planned

    def _queue_event(self, outcome: Outcome, now: dt.datetime) -> None:
        """The [hooks] event of the ticket change (spec §12), queued in its transaction: what
        the decision says happened (``rules.Decision.event``); a bounce's names the addresses
        it reported failed."""
        verdict = outcome.verdict
        assert verdict is not None and verdict.decision is not None, "of a stored message"
        assert verdict.ticket is not None and outcome.message_row is not None
        from helpdesk_fetch.hooks import queue as hooks

        hooks.queue(self.config, verdict.decision.event, ticket=verdict.ticket,
                    message_id=outcome.message_row, tagger=self.tagger, now=now,
                    bounced=verdict.bounced)

    def record_failure(self, source: Source, outcome: Outcome, *, raw: bytes | None, size: int,
                       location: str) -> bool:
        """Remember a message that did not ingest, before it is set aside (store first).

        True when this source key had been recorded before: an earlier run may have begun to
        set the message aside and died."""
        if self.dry_run:
            return False
        self.commit_group()  # the messages before it first: this record is committed alone
        with db.errors():  # the commit itself can fail (a full disk): that must stop it too
            with self.database.atomic():
                row = failures.record_failure(
                    source.name, outcome.key, reason=outcome.reason, location=location,
                    size=size, raw=raw, parsed=outcome.parsed, sha256=outcome.sha256 or None)
        return row.attempts > 1

    def resolve_failure(self, source: Source, key: str) -> None:
        """*key* failed in an earlier run and was left in the mailbox; stored now, its failure
        is resolved in the transaction that stored it."""
        if self.dry_run:
            return
        from helpdesk_fetch.store.group import atomic

        self._begin()
        with db.errors(), atomic(self.database):
            failures.resolve_stored(source.name, key)

    def call_db(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call a store function; a database failure stops the caller (nothing is deleted)."""
        with db.errors():
            return function(*args, **kwargs)
