"""Auto-mails (spec §6): who gets which one, whether a message may be answered at all (RFC 3834),
their texts, and queueing them in the same transaction as the ticket change. ``outbox`` sends them.

A message that must not be answered (RFC 3834: a robot's, a list's or bulk mail) is sent nothing:
that is what keeps two robots from talking to each other forever. The staff are still told of
a new ticket it opens (spec §5.1: a web form's mail from a no-reply address is a request like
any other), never of its replies to a ticket (a robot among the staff would be told of its own
answers again and again), and of nothing when the mail is our own (answering it would answer
ourselves) or backlog; an auto-reply or a bounce changes nothing and causes nothing (§9).
It is ingested and threaded like any other.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from importlib import resources as package_files
from pathlib import Path

from helpdesk_fetch.config import BARE_ADDRESS_RE, Config, Resource
from helpdesk_fetch.enums import Direction
from helpdesk_fetch.message.parse import ParsedMessage
from helpdesk_fetch.store import blobs
from helpdesk_fetch.store.models import Message, Outbox, RawMessage, Ticket
from helpdesk_fetch.store.write import bouncing
from helpdesk_fetch.tickets.rules import Decision
from helpdesk_fetch.tickets.tags import Tagger

log = logging.getLogger(__name__)

MARKER = "X-Helpdesk-Fetch"  # on every auto-mail we send; mail carrying it is never answered
KINDS = ("new_ticket", "new_ticket_resource", "customer_reply", "ticket_closed")
TO_SENDER = ("new_ticket", "ticket_closed")
NEW_TICKET = ("new_ticket", "new_ticket_resource")
BACKLOG_GRACE = dt.timedelta(hours=1)
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_ID_BREAKER = re.compile(r"[\s\x00-\x1f\x7f<>]")


def own_addresses(config: Config) -> frozenset[str]:
    """The addresses mail from which we never answer: our SMTP sender and our mailboxes (their
    user names and addresses): the ``own`` of ``message.classify``, which makes the no-reply
    decision."""
    found = {a.username.lower() for a in config.accounts if a.username and "@" in a.username}
    found.update(a.address for a in config.accounts if a.address)
    if config.smtp is not None:
        found.add(parseaddr(config.smtp.from_address)[1].lower())
        if config.smtp.username and "@" in config.smtp.username:
            found.add(config.smtp.username.lower())
    return frozenset(found)


@dataclass(frozen=True)
class Planned:
    kind: str
    recipients: tuple[str, ...]


def plan(decision: Decision, parsed: ParsedMessage, *, no_reply: str | None, ours: str | None,
         config: Config, automail: bool, resource: Resource | None, now: dt.datetime,
         first_run: dt.datetime | None) -> list[Planned]:
    """The auto-mails the event calls for, after every rule that can cancel one. *no_reply*:
    why the sender must never be answered (``Classification.no_reply_reason``), *ours*: why
    the message is our own (``Classification.ours``), or None."""
    if config.smtp is None or not automail or not decision.automails:
        return []
    silent = _silent(parsed, ours=ours, first_run=first_run)
    if silent is not None:
        log.info("%s: no auto-mail: %s", _label(parsed), silent)
        return []
    wanted = [Planned(kind, rcpts) for kind in decision.automails
              if getattr(config.automail, kind)
              and (rcpts := _recipients(kind, parsed, resource))]
    # No readable Date (RFC 5322 requires one): a mail program always writes it; old mail, a
    # newsletter or a script's output is not told "we have your request"
    unanswered = no_reply or (None if parsed.date else "no readable Date header")
    if unanswered is not None and any(p.kind in TO_SENDER for p in wanted):
        log.info("%s: no auto-mail to the sender: %s", _label(parsed), unanswered)
        wanted = [p for p in wanted if p.kind not in TO_SENDER]
    if no_reply is not None and any(p.kind not in NEW_TICKET for p in wanted):
        # A robot's reply to a ticket tells nobody: a robot among the staff (a moderated list,
        # another ticket system) answering our notification would otherwise be told again
        log.info("%s: no auto-mail about a reply: %s", _label(parsed), no_reply)
        wanted = [p for p in wanted if p.kind in NEW_TICKET]
    wanted = _not_bouncing(wanted, parsed, config.settings.bounce_hold_days, now)
    return _within_rate(wanted, parsed, config.settings.automail_per_sender_per_hour, now)


def held_back(parsed: ParsedMessage, *, no_reply: str | None, ours: str | None,
              first_run: dt.datetime | None) -> str | None:
    """Why a message whose event calls for auto-mails and that causes none (a dry run's
    question) is not answered: it is our own, backlog, or must never be answered (*no_reply*;
    then its staff had none to tell); None: it may be."""
    return _silent(parsed, ours=ours, first_run=first_run) or no_reply


def _silent(parsed: ParsedMessage, *, ours: str | None,
            first_run: dt.datetime | None) -> str | None:
    """Why the message causes no auto-mail at all, not even to the staff: it is our own
    (*ours*), or older than the account's first run (backlog: the first run on a mailbox with
    two years of mail tells nobody of two years of tickets); None: it may cause some."""
    if ours is not None:
        return ours
    if first_run and parsed.date and parsed.date < first_run - BACKLOG_GRACE:
        return "dated before the account's first run (backlog)"
    return None


def _not_bouncing(wanted: list[Planned], parsed: ParsedMessage, days: int,
                  now: dt.datetime) -> list[Planned]:
    """*wanted* without the recipients a bounce reported failed in the last *days* (spec §9.2):
    spam that forges a dead address must not make us bounce again and again."""
    addresses = {a for p in wanted for a in p.recipients}
    if days <= 0 or not addresses:
        return wanted
    held = bouncing(addresses, now - dt.timedelta(days=days))
    if not held:
        return wanted
    log.info("%s: no auto-mail to %s: bounced in the last %d days (bounce_hold_days)",
             _label(parsed), ", ".join(sorted(held)), days)
    kept = [Planned(p.kind, tuple(a for a in p.recipients if a not in held)) for p in wanted]
    return [p for p in kept if p.recipients]


def _recipients(kind: str, parsed: ParsedMessage, resource: Resource | None) -> tuple[str, ...]:
    if kind in TO_SENDER:
        wanted = [parsed.reply_to or parsed.from_addr]
    else:  # nobody is told about an event their own message caused (spec §5.3)
        staff = resource.notify if resource else ()
        wanted = [a.lower() for a in staff if a.lower() != parsed.from_addr]
    return tuple(dict.fromkeys(a for a in wanted if a and BARE_ADDRESS_RE.match(a)))


def _within_rate(wanted: list[Planned], parsed: ParsedMessage, cap: int,
                 now: dt.datetime) -> list[Planned]:
    """At most *cap* auto-mails an hour caused by one sender, and at most *cap* an hour to one
    address of a sender (a Reply-To naming someone else must not multiply them)."""
    hour_ago = now - dt.timedelta(hours=1)
    sent = (Outbox.select().where((Outbox.rate_key == (parsed.from_addr or None))  # as queued
                                  & (Outbox.created_at > hour_ago)).count())
    allowed = max(0, cap - sent)
    if len(wanted) > allowed:
        held = len(wanted) - allowed
        log.warning("%s: %d auto-mail%s not sent: %s caused %d in the last hour (cap %d)",
                    _label(parsed), held, "" if held == 1 else "s",
                    parsed.from_addr or "mail without a sender", sent, cap)
    return [p for p in wanted[:allowed]
            if p.kind not in TO_SENDER or not _recipient_capped(p, parsed, cap, hour_ago)]


def _recipient_capped(planned: Planned, parsed: ParsedMessage, cap: int,
                      hour_ago: dt.datetime) -> bool:
    received = (Outbox.select().where((Outbox.kind << TO_SENDER)
                                      & (Outbox.recipients == json.dumps(list(planned.recipients)))
                                      & (Outbox.created_at > hour_ago)).count())
    if received >= cap:
        log.warning("%s: no %s auto-mail: %s got %d in the last hour (cap %d)", _label(parsed),
                    planned.kind, ", ".join(planned.recipients), received, cap)
    return received >= cap


def queue(planned: Planned, *, ticket: Ticket, parsed: ParsedMessage, config: Config,
          tagger: Tagger, now: dt.datetime) -> Outbox:
    """Store the auto-mail as an outbound message of the ticket and queue it for sending."""
    subject, body = render(planned.kind, _values(ticket, parsed, config, tagger), config)
    mail = _build(planned, subject=tagger.subject_with_tag(subject, ticket.number), body=body,
                  inbound=parsed, config=config, now=now, ticket=ticket)
    raw = wire_bytes(mail)
    message = Message.create(
        ticket=ticket, direction=Direction.OUT, message_id=mail["Message-ID"].strip("<>"),
        in_reply_to=parsed.message_id, references=" ".join(_references(parsed)),
        from_addr=parseaddr(config.outgoing().from_address)[1].lower(),
        to_addrs=json.dumps(list(planned.recipients)), date=now, subject=str(mail["Subject"]),
        text=body, size=len(raw), received_at=now, auto_submitted=True)
    RawMessage.insert(message=message, data=blobs.compress(raw)).execute()
    return Outbox.create(message=message, kind=planned.kind,
                         recipients=json.dumps(list(planned.recipients)),
                         rate_key=parsed.from_addr or None, created_at=now, next_attempt_at=now)


def _values(ticket: Ticket, parsed: ParsedMessage, config: Config,
            tagger: Tagger) -> dict[str, str]:
    return {
        "number": ticket.number,
        "tag": tagger.tag(ticket.number),
        "subject": ticket.subject,
        "resource": ticket.resource or "",
        "requester": ticket.requester,
        "sender": parsed.from_addr,
        "status": ticket.status,
        "reactivation_days": str(config.settings.reactivation_days),
        "text": parsed.text[:4000],
    }


def render(kind: str, values: dict[str, str], config: Config) -> tuple[str, str]:
    """(subject, body) of *kind* from the administrator's template or the built-in one."""
    text, origin = template_text(kind, config)
    head, _, body = text.partition("\n\n")
    if not head.lower().startswith("subject:"):
        log.error("%s does not start with a \"Subject:\" line; using the built-in text", origin)
        text, origin = _builtin(kind, config.settings.language)
        head, _, body = text.partition("\n\n")

    def fill(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    subject = _one_line(_PLACEHOLDER.sub(fill, head[len("subject:"):]))
    return subject, _PLACEHOLDER.sub(fill, body)


def template_text(kind: str, config: Config) -> tuple[str, str]:
    """The template for *kind*: templates_dir/<kind>.<language>.txt or <kind>.txt, else ours."""
    settings = config.settings
    if settings.templates_dir:
        for name in (f"{kind}.{settings.language}.txt", f"{kind}.txt"):
            path = Path(settings.templates_dir) / name
            if path.is_file():
                try:
                    return path.read_text(encoding="utf-8"), str(path)
                except (OSError, UnicodeDecodeError) as exc:
                    log.error("cannot read the template %s (%s); using the built-in text", path,
                              getattr(exc, "strerror", None) or "not UTF-8")
                    break
    return _builtin(kind, settings.language)


def _builtin(kind: str, language: str) -> tuple[str, str]:
    name = f"{kind}.{language}.txt"
    text = package_files.files(__package__).joinpath("templates", name).read_text("utf-8")
    return text, f"built-in {name}"


def _build(planned: Planned, *, subject: str, body: str, inbound: ParsedMessage, config: Config,
           now: dt.datetime, ticket: Ticket) -> EmailMessage:
    sender = config.outgoing().from_address
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(planned.recipients)
    mail["Subject"] = subject
    mail["Date"] = format_datetime(now.replace(tzinfo=dt.UTC))
    mail["Message-ID"] = make_msgid("hd", _domain(sender))
    if _header_safe(inbound.message_id):
        mail["In-Reply-To"] = f"<{inbound.message_id}>"
        mail["References"] = " ".join(f"<{i}>" for i in _references(inbound) if _header_safe(i))
    mail["Auto-Submitted"] = "auto-replied"
    mail["X-Auto-Response-Suppress"] = "All"
    mail[MARKER] = f"{planned.kind}; ticket={ticket.number}"
    mail.set_content(body)
    return mail


def wire_bytes(mail: EmailMessage) -> bytes:
    """*mail* as it is sent (CRLF, folded at 78), its Subject starting on the Subject line:
    CPython folds a value of 70 to 78 characters whole onto the next line ("Subject:", then
    " [TicketID ..."), which is legal, but breaks filters on ``^Subject:.*TicketID`` and shows
    a leading space in some programs."""
    head, blank, body = mail.as_bytes(policy=SMTP).partition(b"\r\n\r\n")
    head = re.sub(rb"(?m)^Subject:\r\n ", b"Subject: ", head, count=1)
    return head + blank + body


def _references(parsed: ParsedMessage) -> list[str]:
    ids = [*parsed.references, *([parsed.message_id] if parsed.message_id else [])]
    return list(dict.fromkeys(ids))[-20:]


def _domain(address: str) -> str:
    bare = parseaddr(address)[1]
    try:
        return Address(addr_spec=bare).domain or "localhost"
    except (ValueError, IndexError):
        return "localhost"


def _one_line(text: str) -> str:
    """Header text that cannot inject headers: no CR, LF, other control characters or anything
    else Python takes for a line break (U+0085, U+2028, U+2029)."""
    return _BREAKS.sub(" ", text).strip()


def _header_safe(message_id: str | None) -> bool:
    """Whether a Message-ID from a message can go into our headers as it is (no white space or
    control character: those only come from broken or hostile mail)."""
    return message_id is not None and message_id != "" and _ID_BREAKER.search(message_id) is None


def _label(parsed: ParsedMessage) -> str:
    return f"<{parsed.message_id}>" if parsed.message_id else parsed.subject[:60]
