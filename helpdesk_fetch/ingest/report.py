"""What happens to a message: ``fetch --dry-run``, ``rules test`` and the log of ``fetch -v``
say the same (spec §10.1): its kind, the rule that decided it, the ticket it threads to or the
resource a new one opens in, and the auto-mails it causes. The log has it on one line:

    <CAE7x1@mail.example.org> -> a new ticket in it-support [message]: no matching ticket: a
    new one; auto-mails: new_ticket to carol@example.org; new_ticket_resource to alice@...

a dry run on two (``Plan``): the message, then where it goes; the auto-mails are named where
there are some (``automails``), and the command says once that the others cause none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.enums import MessageKind

if TYPE_CHECKING:
    from helpdesk_fetch.ingest.pipeline import Outcome

# The reason kept with a copy by its headers whose body is not the stored message's (spec §4.1)
OTHER_BODY = "copy of a message on ticket {number}, with another body"
_IGNORED = {MessageKind.BOUNCE: "a bounce of no mail stored here (backscatter)",
            MessageKind.AUTO_REPLY: "an auto-reply to no ticket"}


@dataclass(frozen=True)
class Plan:
    """What a dry run says about one message, on two lines: ``would file`` *message*, then
    ``-> `` *verdict* (with ``; `` *automails* when it causes some)."""

    message: str  # its Message-ID, else its subject, else its source key
    verdict: str
    automails: str | None  # "auto-mails: new_ticket to ..." or why none; None: none called for
    about: str = ""  # its sender and subject, as people find it in the mailbox

    @classmethod
    def of(cls, outcome: Outcome, *, unnamed: str | None = None) -> Plan:
        """*unnamed*: what names a message with neither Message-ID nor subject (default: its
        source key)."""
        parsed = outcome.parsed
        if parsed is not None and not parsed.message_id:  # named by its subject
            message = repr(parsed.subject) if parsed.subject else (unnamed or outcome.key)
        else:
            message = outcome.label
        about = ""
        if parsed is not None:
            subject = repr(parsed.subject) if parsed.message_id and parsed.subject else ""
            about = ": ".join(filter(None, (f"from {parsed.from_addr or '(no sender)'}", subject)))
        unanswered = f"no auto-mail: {outcome.held_back}" if outcome.held_back else None
        if outcome.automails and unanswered:  # the staff are told; the sender is not answered
            unanswered = f"{mails(outcome)}; none to the sender: {outcome.held_back}"
        said = unanswered or (mails(outcome) if outcome.automails else None)
        return cls(message, verdict(outcome), said, about)

    def lines(self, indent: str = "  ") -> list[str]:
        """The message (with its sender and subject), then where it goes."""
        return [f"{self.message} {self.about}".rstrip(), f"{indent}-> {self.verdict}"
                + (f"; {self.automails}" if self.automails else "")]


def describe(outcome: Outcome) -> str:
    """What *outcome* says, on one line (see the module's docstring)."""
    line = f"{outcome.label} -> {verdict(outcome)}"
    return line + f"; {mails(outcome)}" if outcome.decision is not None else line


def verdict(outcome: Outcome) -> str:
    """Where *outcome* goes and why, without its auto-mails; ``rules test`` of mail stored
    already says so first (it is judged as if it were new)."""
    said = _verdict(outcome)
    if outcome.stored_before is not None:
        return f"(stored already: fetch would only delete it; as new mail:) {said}"
    return said


def _verdict(outcome: Outcome) -> str:
    from helpdesk_fetch.ingest.pipeline import CANARY

    if outcome.kind == CANARY:  # neither classified nor decided (spec §11.3)
        return f"no ticket: {outcome.reason}"
    verdict = outcome.verdict
    if verdict is not None and verdict.classification is None and verdict.ignored:
        return f"ignored ({verdict.ignored}): its bytes kept as ignored mail; opens no ticket"
    if verdict is None or verdict.classification is None:
        return _duplicate(outcome)
    kind = f" [{verdict.kind}" + (f", rule {verdict.rule}" if verdict.rule else "") + "]"
    if verdict.ignored:
        return (f"ignored ({verdict.ignored}){kind}: {ignored_why(verdict.ignored, verdict.kind)}"
                "; opens no ticket")
    if outcome.ticket_number is None:  # planned
        target = "a new ticket" + _in(verdict.resource)
    elif outcome.found_by is None:  # stored: the ticket it opened
        target = f"ticket {outcome.ticket_number} (new{_in(verdict.resource)})"
    else:
        target = f"ticket {outcome.ticket_number} (by {outcome.found_by})"
    assert outcome.decision is not None, "a message that is not ignored has a decision"
    return f"{target}{kind}: {outcome.decision.why}"


def ignored_why(reason: str, kind: str) -> str:
    """Why mail kept as ignored opened no ticket (spec §9.4), from its reason and kind."""
    if reason == kind:
        return _IGNORED.get(MessageKind(kind), reason)
    if reason.startswith(OTHER_BODY.split("{", 1)[0]):
        return reason
    if kind == MessageKind.ALERT:
        return f"rule {reason}: a recovery, and no ticket of its key is open"
    return f'rule {reason}: action = "ignore"'


def mails(outcome: Outcome) -> str:
    """The auto-mails of *outcome*: "auto-mails: KIND to ADDRESS, ...; ..." or "no auto-mail"."""
    if not outcome.automails:
        return "no auto-mail"
    return "auto-mails: " + "; ".join(f"{p.kind} to {', '.join(p.recipients)}"
                                      for p in outcome.automails)


def copy_text(ticket_number: str | None) -> str:
    """What a copy of a stored mail is called (spec §4.1): by the ticket that holds it."""
    return (f"a copy of a message on ticket {ticket_number or '?'}, stored before through "
            "this or another account (the same Message-ID, From, Date and Subject)")


def _in(resource: str | None) -> str:
    return f" in {resource}" if resource else ""


def _duplicate(outcome: Outcome) -> str:
    verdict = outcome.verdict
    if verdict is not None and verdict.copy_of is not None:
        if verdict.copy_of[0] == "out":
            return "one of our own auto-mails, already stored: only deleted from the mailbox"
        return (f"{copy_text(verdict.copy_ticket)}: only recorded and deleted from the "
                "mailbox")
    return (f"already stored ({outcome.reason or 'the same source key or bytes'}): only deleted "
            "from the mailbox")
