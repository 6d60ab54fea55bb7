"""One message, from raw bytes to a ticket message: parse, thread, apply the rules, store.

The pipeline knows nothing about mailboxes: ``fetch`` (ingest.py), ``deliver`` and ``errors retry``
all hand it raw bytes with a source key and act on the Outcome (delete, set aside, exit code).
Everything a message changes in the database happens in one transaction (spec §4.2).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import peewee

from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.health import canary
from helpdesk_fetch.hooks import queue as hooks
from helpdesk_fetch.message import authres
from helpdesk_fetch.store import blobs, db, failures, write
from helpdesk_fetch.store.models import Ticket
from helpdesk_fetch.tickets import rules
from helpdesk_fetch.tickets.tags import installation_tagger
from helpdesk_fetch.tickets.threads import find_ticket

if TYPE_CHECKING:
    from helpdesk_fetch.message.budget import Parser
    from helpdesk_fetch.message.parse import ParsedMessage

# The parser and the auto-mails (the email package, html.parser, templates) are imported where
# they are used: a cron run that finds no mail never needs them (issue 7: the no-op run).

log = logging.getLogger(__name__)

STORED, DUPLICATE, FAILED, PLANNED = "stored", "duplicate", "failed", "planned"
CANARY = "canary"  # a canary of `probe send` (spec §11.3): its arrival recorded, no ticket


@dataclass(frozen=True)
class Source:
    """Where a message comes from, as far as tickets care."""

    name: str  # the account (or "deliver"): source keys and duplicates are per source
    resource: str | None
    automail: bool = True


@dataclass
class Outcome:
    """What happened to one message."""

    kind: str  # stored | duplicate | failed | planned (dry run) | canary
    key: str
    sha256: str = ""
    reason: str = ""
    parsed: ParsedMessage | None = None
    decision: rules.Decision | None = None
    ticket_number: str | None = None
    found_by: str | None = None  # "tag" | "reply" | None (a new ticket)
    duplicate_of: int | None = None

    @property
    def label(self) -> str:
        """How log lines name the message: its Message-ID, else its source key."""
        if self.parsed is not None and self.parsed.message_id:
            return f"<{self.parsed.message_id}>"
        return self.key


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


def _unexpected(exc: Exception, key: str, sha256: str, parsed: ParsedMessage) -> Outcome:
    """A message that met a bug of ours: set aside with the error as its reason (``errors
    retry`` files it once a fixed version is installed); the traceback at -vv."""
    log.debug("unexpected error while filing %s", key, exc_info=True)
    return Outcome(FAILED, key, sha256, f"unexpected error (please report it): "
                   f"{type(exc).__name__}: {exc}", parsed=parsed)


class Pipeline:
    """Turns raw messages into ticket messages for one run, command or retry."""

    def __init__(self, config: Config, *, dry_run: bool = False) -> None:
        self.config = config
        self.settings = config.settings
        self.dry_run = dry_run
        self.database = db.open_configured(self.settings, read_only=dry_run)
        self.tagger = self.call_db(installation_tagger, self.settings)
        self._parser: Parser | None = None

    @property
    def parser(self) -> Parser:
        """The parse worker of this pipeline, made when there is mail (it imports the email
        package); its process starts with the first message."""
        if self._parser is None:
            from helpdesk_fetch.message.budget import Parser

            self._parser = Parser(self.settings.parse_seconds)
        return self._parser

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
            return self.parser.result(prepared.parse_ticket)
        return self.parser.parse(raw)

    def ingest(self, source: Source, raw: bytes, key: str, *,
               prepared: Prepared | None = None) -> Outcome:
        """Store *raw* (known to *source* as *key*) on its ticket, or say why not. *prepared*:
        ``prepare(raw)``, done ahead; without it the work is done here when needed.

        A database failure that is not about this message raises DatabaseError: the caller must
        then delete nothing and stop."""
        from helpdesk_fetch.message.budget import Unparseable
        from helpdesk_fetch.message.parse import parse_headers

        sha256 = prepared.sha256 if prepared else hashlib.sha256(raw).hexdigest()
        limit = self.settings.max_message_bytes
        if len(raw) > limit:
            return Outcome(FAILED, key, sha256, f"{len(raw)} bytes is over max_message_bytes "
                                                f"({limit})", parsed=parse_headers(raw))
        duplicate = self.call_db(write.find_duplicate, source.name, key, sha256)
        if duplicate is not None:
            if not self.dry_run:
                self.call_db(write.remember_key, source.name, key, duplicate or None)
            return Outcome(DUPLICATE, key, sha256, duplicate_of=duplicate,
                           parsed=parse_headers(raw))
        try:
            parsed = self.parse(raw, prepared)
        except Unparseable as exc:  # it cannot be parsed, or not within parse_seconds
            return Outcome(FAILED, key, sha256, str(exc), parsed=parse_headers(raw))
        if self.dry_run:
            return self._plan(source, key, sha256, parsed)
        return self._store(source, raw, key, sha256, parsed,
                           compressed=prepared.compressed if prepared else None)

    def _plan(self, source: Source, key: str, sha256: str, parsed: ParsedMessage) -> Outcome:
        try:
            arrived = self._canary(source, key, sha256, parsed, utcnow(), record=False)
            if arrived is not None:
                return arrived
            found = self._classify(source, key, sha256, parsed, utcnow())
        except peewee.PeeweeException as exc:
            raise db.as_database_error(exc) from None
        except Exception as exc:  # as in _store
            return _unexpected(exc, key, sha256, parsed)
        if isinstance(found, Outcome):
            return found
        ticket, how, decision = found
        return Outcome(PLANNED, key, sha256, parsed=parsed, decision=decision,
                       ticket_number=ticket.number if ticket else None, found_by=how)

    def _classify(self, source: Source, key: str, sha256: str, parsed: ParsedMessage, now, *,
                  lock: bool = False):
        """(ticket, found by, decision) for *parsed*, or the Outcome that ends it here; *lock*:
        the ticket's row stays locked until commit (PostgreSQL)."""
        if write.is_own_outbound(parsed.message_id):
            return Outcome(DUPLICATE, key, sha256, parsed=parsed,
                           reason="one of our own auto-mails, already stored")
        ticket, how = find_ticket(parsed, self.tagger, lock=lock)
        return ticket, how, self._decide(source, ticket, parsed, now)

    def _store(self, source: Source, raw: bytes, key: str, sha256: str,
               parsed: ParsedMessage, *, compressed: list[bytes] | None) -> Outcome:
        now = utcnow()
        try:
            with self.database.atomic():
                arrived = self._canary(source, key, sha256, parsed, now)
                if arrived is not None:
                    return arrived
                found = self._classify(source, key, sha256, parsed, now, lock=True)
                if isinstance(found, Outcome):
                    if found.kind == DUPLICATE:
                        write.remember_key(source.name, key, None)
                    return found
                ticket, how, decision = found
                ticket, message_id = write.store_inbound(
                    parsed, raw, sha256, account=source.name, key=key, ticket=ticket,
                    decision=decision, resource=source.resource, now=now, compressed=compressed,
                    escalation_due=rules.escalation_due(self.settings, now))
                crashpoint("mid_transaction")
                self._queue_automails(source, ticket, parsed, decision, now)
                hooks.queue(self.config, decision.event, ticket=ticket, message_id=message_id,
                            tagger=self.tagger, now=now)
        except write.AlreadyStored:
            return Outcome(DUPLICATE, key, sha256, parsed=parsed,
                           reason="stored by another process at the same moment")
        except (peewee.IntegrityError, peewee.DataError) as exc:
            return Outcome(FAILED, key, sha256, f"the database refused it: {exc}", parsed=parsed)
        except peewee.PeeweeException as exc:
            raise db.as_database_error(exc, "cannot store messages") from None
        except Exception as exc:  # a bug met by this message: it must not block the others
            return _unexpected(exc, key, sha256, parsed)
        crashpoint("after_commit")
        log.info("account %s: %s -> ticket %s: %s", source.name,
                 f"<{parsed.message_id}>" if parsed.message_id else key, ticket.number,
                 decision.why)
        return Outcome(STORED, key, sha256, parsed=parsed, decision=decision,
                       ticket_number=ticket.number, found_by=how)

    def _canary(self, source: Source, key: str, sha256: str, parsed: ParsedMessage, now, *,
                record: bool = True) -> Outcome | None:
        """The Outcome of a canary of ours for this account: its arrival recorded and its
        source key stored (so that it is deleted like any message, and never read twice);
        None for every other message."""
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

    def _queue_automails(self, source: Source, ticket: Ticket, parsed: ParsedMessage,
                         decision: rules.Decision, now) -> None:
        if not decision.automails or self.config.smtp is None:
            return
        from helpdesk_fetch.automail import plan as automail

        planned = automail.plan(decision, parsed, config=self.config, automail=source.automail,
                                resource=self.config.resource(ticket.resource), now=now,
                                first_run=write.first_run(source.name, now))
        for mail in planned:
            automail.queue(mail, ticket=ticket, parsed=parsed, config=self.config,
                           tagger=self.tagger, now=now)

    def _decide(self, source: Source, ticket: Ticket | None, parsed: ParsedMessage,
                now) -> rules.Decision:
        """The rules' decision. A copy of one of our auto-mails (our marker, a Message-ID we did
        not send: rewritten on its way back) changes nothing on its ticket; without a ticket it
        is new mail like any other, and is never answered (``automail.no_reply_reason``)."""
        from helpdesk_fetch.automail import plan as automail

        if parsed.header(automail.MARKER) is not None and ticket is not None:
            return rules.own_mail_returned()
        resource = self.config.resource(ticket.resource if ticket else source.resource)
        verified = authres.sender_trusted(parsed.headers.get("authentication-results", []),
                                          parsed.from_addr, authserv_id=self.settings.authserv_id)
        return rules.decide(ticket, parsed.from_addr, resource=resource, settings=self.settings,
                            now=now, sender_verified=verified)

    def record_failure(self, source: Source, outcome: Outcome, *, raw: bytes | None, size: int,
                       location: str) -> bool:
        """Remember a message that did not ingest, before it is set aside (store first).

        True when this source key had been recorded before: an earlier run may have begun to
        set the message aside and died."""
        if self.dry_run:
            return False
        with db.errors():  # the commit itself can fail (a full disk): that must stop it too
            with self.database.atomic():
                row = failures.record_failure(
                    source.name, outcome.key, reason=outcome.reason, location=location,
                    size=size, raw=raw, parsed=outcome.parsed, sha256=outcome.sha256 or None)
        return row.attempts > 1

    def call_db(self, function, *args, **kwargs):
        """Call a store function; a database failure stops the caller (nothing is deleted)."""
        with db.errors():
            return function(*args, **kwargs)
