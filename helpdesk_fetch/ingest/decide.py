"""What one parsed message is and what it does (spec §4.1, §4.5, §5, §9, §10): a copy of a mail
stored already? -> classify -> [[rules]] -> thread -> decide. It only reads (on the write path
with the ticket's row locked); the Pipeline stores what the Verdict says, and ``fetch --dry-run``
and ``rules test`` print it.

The first rule that matches decides: ``action = "ignore"`` ends it there (§9.4); otherwise the
rule names the resource of a ticket the message opens, whether auto-mails go out, and, with
``correlate``, makes a person's mail (kind ``message``) a monitoring ``alert``, threaded by its
key to the one open ticket of that key (§10.2).

The kinds of §9 decide before the ticket rules of §5: an auto-reply or a bounce that finds its
ticket is appended and changes nothing; one that finds none opens none (it is ignored, §9.4). A
bounce finds its ticket through the mail that bounced (its Message-IDs: one of our auto-mails or
a stored message), an auto-reply like any reply (tag, In-Reply-To/References).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.config import Config
from helpdesk_fetch.enums import MessageKind, TicketStatus
from helpdesk_fetch.health import canary
from helpdesk_fetch.ingest.report import OTHER_BODY
from helpdesk_fetch.ingest.source import Source
from helpdesk_fetch.message import authres
from helpdesk_fetch.message.classify import MARKER, Classification, classify
from helpdesk_fetch.store import write
from helpdesk_fetch.store.models import Ticket
from helpdesk_fetch.tickets import rules
from helpdesk_fetch.tickets.routing import Match, Rules
from helpdesk_fetch.tickets.tags import Tagger
from helpdesk_fetch.tickets.threads import alert_ticket, find_ticket, ticket_of_message_ids

if TYPE_CHECKING:
    from helpdesk_fetch.message.parse import ParsedMessage

MACHINE_KINDS = (MessageKind.AUTO_REPLY, MessageKind.BOUNCE)  # they open no ticket (§9.1, §9.2)


@dataclass
class Verdict:
    """What one message is and what it does; see the module's docstring."""

    classification: Classification | None = None
    kind: MessageKind = MessageKind.MESSAGE
    copy_of: tuple[str, int] | None = None  # ("out", id): our own auto-mail; ("in", id): a copy
    copy_ticket: str | None = None  # the number of the ticket that holds what it is a copy of
    ticket: Ticket | None = None  # the ticket it belongs to; None: it opens one (or none)
    found_by: str | None = None  # tag | reply | bounce | correlation; None: no ticket found
    decision: rules.Decision | None = None  # None: it opens no ticket (ignored or a copy)
    ignored: str | None = None  # why it opens no ticket: bounce, auto_reply or a rule's name
    rule: str | None = None  # the [[rules]] table that decided it (spec §10)
    resource: str | None = None  # where a ticket it opens goes
    correlation: str | None = None  # the alert key of a ticket it opens (spec §10.2)
    automail: bool = True  # whether its account (and rule) allow auto-mails about it

    @property
    def filed(self) -> write.Filed:
        """What is stored with the message besides its content."""
        c = self.classification
        return write.Filed(kind=self.kind, automatic=bool(c and c.automatic), rule=self.rule,
                           resource=self.resource, correlation=self.correlation)

    @property
    def bounced(self) -> tuple[str, ...]:
        """The addresses this message reports failed for good (a bounce, not a delay)."""
        c = self.classification
        if c is None or self.kind != MessageKind.BOUNCE or c.delay_only:
            return ()
        return c.failed_recipients


class Decider:
    """Verdicts for one run, command or retry: the configuration, the installation's tagger and
    what is worked out once (our own addresses, the compiled rules)."""

    def __init__(self, config: Config, tagger: Tagger) -> None:
        self.config, self.tagger = config, tagger

    @functools.cached_property
    def own(self) -> frozenset[str]:
        """Our own addresses (mail from them is never answered); worked out at the first mail."""
        from helpdesk_fetch.automail.plan import own_addresses

        return own_addresses(self.config)

    @functools.cached_property
    def routing(self) -> Rules:
        """The [[rules]], compiled once (spec §10)."""
        return Rules(self.config.rules)

    def verdict(self, source: Source, parsed: ParsedMessage, now: dt.datetime, *,
                lock: bool = False, restore: bool = False, raw: bytes | None = None,
                copies: bool = True) -> Verdict:
        """The Verdict on *parsed*, from *source*; *lock*: the ticket's row stays locked until
        the caller's commit; *restore* (``ignored restore``): it is a request whatever it is,
        so it is never ignored; without *copies* (``rules test``), no copy of stored mail.

        A copy by its headers (spec §4.1) is only recorded; one whose body (*raw*'s) is not the
        stored message's is kept as ignored mail instead, and restored it is a request.

        A canary of ``probe send`` gets here only when it is not this account's own (the
        Pipeline takes those first): diverted to another account, or forged. It must become a
        ticket, which is how a diverted canary gets noticed (spec §11.3): it is never a copy
        (one canary forwarded to two accounts is two tickets) and never ignored mail."""
        diverted = canary.marked(parsed)
        copy = None if diverted or not copies else write.find_copy(parsed, now, lock=lock)
        other = None if copy is None or raw is None or copy[0] != "in" else \
            write.body_differs(copy[1], raw)
        if copy is not None and other is None:  # named by its ticket (our own: no need)
            number = write.ticket_number_of(copy[1]) if copy[0] == "in" else None
            return Verdict(copy_of=copy, copy_ticket=number)
        if other is not None and not restore:  # its bytes are not dropped (never neither)
            return Verdict(ignored=OTHER_BODY.format(number=other))
        restore = restore or diverted
        classification = classify(parsed, own=self.own)
        verdict = Verdict(classification, classification.kind, automail=source.automail,
                          resource=source.resource)
        # restored past a rule that ignored it: the first rule that makes requests decides
        match = self.routing.first(source.name, parsed, requests_only=restore)
        if match is not None:
            _apply(match, verdict)
            if match.rule.action == "ignore":
                verdict.ignored = match.rule.name
                return verdict
        self._thread(verdict, parsed, lock=lock)
        if verdict.ticket is not None:  # a reply follows its ticket, whatever a rule says
            verdict.resource = verdict.ticket.resource
        self._settle(verdict, match, parsed, now, source=source, restore=restore)
        return verdict

    def _thread(self, verdict: Verdict, parsed: ParsedMessage, *, lock: bool) -> None:
        if verdict.kind == MessageKind.ALERT:  # its key, not its subject or references
            assert verdict.correlation is not None, "an alert has its key"
            verdict.ticket = alert_ticket(verdict.correlation, lock=lock)
            verdict.found_by = "correlation" if verdict.ticket else None
        elif verdict.kind == MessageKind.BOUNCE:
            # The mail that bounced: one of our auto-mails or a stored message (else backscatter)
            assert verdict.classification is not None, "a bounce is one by its classification"
            verdict.ticket = ticket_of_message_ids(list(verdict.classification.original_ids),
                                                   lock=lock)
            verdict.found_by = "bounce" if verdict.ticket else None
        else:
            verdict.ticket, verdict.found_by = find_ticket(parsed, self.tagger, lock=lock)

    def _settle(self, verdict: Verdict, match: Match | None, parsed: ParsedMessage,
                now: dt.datetime, *, source: Source, restore: bool) -> None:
        """The decision, or why the message opens no ticket: an alert's recovery of no open
        problem, an auto-reply or bounce that found no ticket (unless it is being restored)."""
        if verdict.kind == MessageKind.ALERT:
            assert match is not None, "an alert is one by its rule"
            if verdict.ticket is None and match.resolves and not restore:
                verdict.ignored = match.rule.name
            else:
                verdict.decision = rules.alert(verdict.ticket, resolves=match.resolves)
        elif verdict.kind in MACHINE_KINDS and verdict.ticket is None and not restore:
            verdict.ignored = str(verdict.kind)
        else:
            verdict.decision = self._decide(verdict, parsed, now, source)

    def _decide(self, verdict: Verdict, parsed: ParsedMessage, now: dt.datetime,
                source: Source) -> rules.Decision:
        """The decision of spec §5 or §9. A copy of one of our auto-mails (our marker, a
        Message-ID we did not send: rewritten on its way back) changes nothing on its ticket."""
        ticket = verdict.ticket
        if ticket is not None and parsed.header(MARKER) is not None:
            return rules.own_mail_returned()
        if ticket is not None and verdict.kind in MACHINE_KINDS:
            assert verdict.classification is not None, "machine kinds are classified ones"
            return rules.machine_reply(verdict.kind,
                                       delay_only=verdict.classification.delay_only)
        settings = self.config.settings
        verified = authres.sender_trusted(parsed.headers.get("authentication-results", []),
                                          parsed.from_addr, authserv_id=settings.authserv_id)
        received = arrived(source, parsed, now) if ticket is not None and \
            ticket.status == TicketStatus.CLOSED else now
        return rules.decide(ticket, parsed.from_addr, resource=self.config.resource(
            verdict.resource), settings=settings, now=now, received=received,
            sender_verified=verified)


def arrived(source: Source, parsed: ParsedMessage, now: dt.datetime) -> dt.datetime:
    """When *parsed* reached its mailbox, as far as can be told: spec §5.4 counts a reply to a
    closed ticket from when it was received, and mail waits in a mailbox while ingest is
    disabled, the account fails, or the database is down.

    The date its last mail server stamped into it (its topmost Received field), but never
    before the start of its account's latest successful run that ended by then (what was in the
    mailbox then, that run read: a stamp older than that is wrong or forged, and counts from
    there) and never after *now*, or after the source saw it (``errors retry``: when it first
    failed). Without a stamp that reads, that latest time: mail handed over as it arrives
    (``deliver``), or mail without a stamp."""
    from helpdesk_fetch.message.parse import stamped_at  # imported with the mail it reads

    latest = now if source.seen_by is None else min(source.seen_by, now)
    stamped = stamped_at(parsed) if source.waited else None
    since = write.last_read(source.name, by=latest) \
        if stamped is not None and stamped < latest else None
    if stamped is None or since is None:
        return latest
    return max(stamped, since)


def _apply(match: Match, verdict: Verdict) -> None:
    """What the deciding rule says: its name, the resource of a ticket the message opens, the
    auto-mails, and whether a person's mail is a monitoring alert (spec §10, §10.2)."""
    rule = match.rule
    verdict.rule = rule.name
    if rule.resource is not None:
        verdict.resource = rule.resource
    if rule.automail is not None:
        verdict.automail = rule.automail
    if rule.correlate and verdict.kind == MessageKind.MESSAGE:
        verdict.kind = MessageKind.ALERT
        verdict.correlation = match.correlation
