"""Which ticket a message belongs to (spec §4.5): a valid subject tag, else In-Reply-To/References.

The tag is ``<prefix><keyword> <number><four check letters><suffix>``, e.g. ``[TicketID 1042QKXP]``.
The letters are an HMAC of the number under the installation's secret, so a guessed or mistyped
number never threads a stranger's mail into someone else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from typing import TYPE_CHECKING

from helpdesk_fetch import sql
from helpdesk_fetch.config import Settings
from helpdesk_fetch.models import Ticket

MAX_REFERENCES = 50  # the newest References looked up; a message may carry thousands

if TYPE_CHECKING:  # the email package is imported only when there is mail
    from helpdesk_fetch.parse import ParsedMessage


class Tagger:
    """Writes and reads ticket tags for one installation's secret and settings."""

    def __init__(self, secret: str, settings: Settings) -> None:
        self._secret = secret.encode()
        self.keyword = settings.ticket_keywords[0]
        self.prefix, self.suffix = settings.tag_prefix, settings.tag_suffix
        keywords = "|".join(re.escape(k) for k in settings.ticket_keywords)
        self._pattern = re.compile(
            # ASCII digits and letters only: under IGNORECASE, [A-Za-z] would also match the
            # Kelvin sign and a dotted capital I, which no tag of ours contains
            rf"(?<![A-Za-z0-9])(?:{keywords}) ?([0-9]{{1,18}})((?-i:[A-Za-z]{{4}}))"
            r"(?![A-Za-z0-9])", re.IGNORECASE)

    def letters(self, number: str) -> str:
        digest = hmac.new(self._secret, number.encode(), hashlib.sha256).digest()
        return "".join(string.ascii_uppercase[b % 26] for b in digest[:4])

    def tag(self, number: str) -> str:
        """The tag as written into subjects: ``[TicketID 1042QKXP]``."""
        return f"{self.prefix}{self.keyword} {number}{self.letters(number)}{self.suffix}"

    def numbers_in(self, subject: str) -> list[str]:
        """Ticket numbers of the valid tags in *subject*, in order; forged ones are left out."""
        found = []
        for number, letters in self._pattern.findall(subject):
            number = number.lstrip("0") or "0"
            if hmac.compare_digest(letters.upper(), self.letters(number)):
                found.append(number)
        return found

    def subject_with_tag(self, subject: str, number: str) -> str:
        """*subject* carrying the ticket's tag exactly once."""
        if number in self.numbers_in(subject):
            return subject
        return f"{self.tag(number)} {subject}".strip()


def find_ticket(parsed: ParsedMessage, tagger: Tagger, *,
                lock: bool = False) -> tuple[Ticket | None, str | None]:
    """The ticket *parsed* belongs to and how it was found ("tag" or "reply"), or (None, None).

    *lock* (the write path, inside its transaction): the ticket's row is locked until commit."""
    statements = sql.statements()
    by_number, by_id = ((statements.ticket_by_number_locked, statements.ticket_by_id_locked)
                        if lock else (statements.ticket_by_number, statements.ticket_by_id))
    for number in tagger.numbers_in(parsed.subject):
        ticket = sql.one_ticket(by_number, (number,))
        if ticket is not None:
            return ticket, "tag"
    newest = [*reversed(parsed.references)][:MAX_REFERENCES]
    ids = list(dict.fromkeys(i for i in [parsed.in_reply_to, *newest] if i))
    if not ids:
        return None, None
    ticket_of = {}
    for message_id, ticket_id in sql.run(statements.tickets_of(ids), ids):
        ticket_of.setdefault(message_id, ticket_id)
    for message_id in ids:
        if message_id in ticket_of:
            return sql.one_ticket(by_id, (ticket_of[message_id],)), "reply"
    return None, None
