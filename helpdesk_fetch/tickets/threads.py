"""Which ticket a message belongs to (spec §4.5): a valid subject tag, else In-Reply-To/References.

The tag is ``<prefix><keyword> <number><four check letters><suffix>``, e.g. ``[TicketID 1042QKXP]``.
The letters are an HMAC of the number under the installation's secret, so a guessed or mistyped
number never threads a stranger's mail into someone else's ticket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpdesk_fetch.store import sql
from helpdesk_fetch.store.models import Ticket
from helpdesk_fetch.tickets.tags import Tagger

MAX_REFERENCES = 50  # the newest References looked up; a message may carry thousands

if TYPE_CHECKING:  # the email package is imported only when there is mail
    from helpdesk_fetch.message.parse import ParsedMessage


def find_ticket(parsed: ParsedMessage, tagger: Tagger, *,
                lock: bool = False) -> tuple[Ticket | None, str | None]:
    """The ticket *parsed* belongs to and how it was found ("tag" or "reply"), or (None, None).

    *lock* (the write path, inside its transaction): the ticket's row is locked until commit."""
    statements = sql.statements()
    by_number, by_id = ((statements.ticket_by_number_locked, statements.ticket_by_id_locked)
                        if lock else (statements.ticket_by_number, statements.ticket_by_id))
    numbers, forged = tagger.scan(parsed.subject)
    if forged:
        label = f"<{parsed.message_id}>" if parsed.message_id else "a message without Message-ID"
        tagger.forgeries.report(forged, label, parsed.from_addr or "no sender")
    for number in numbers:
        ticket = sql.one_ticket(by_number, (number,))
        if ticket is not None:
            return ticket, "tag"
    newest = [*reversed(parsed.references)][:MAX_REFERENCES]
    ids = list(dict.fromkeys(i for i in [parsed.in_reply_to, *newest] if i))
    if not ids:
        return None, None
    ticket_of: dict[str, int] = {}
    for message_id, ticket_id in sql.run(statements.tickets_of(ids), ids):
        ticket_of.setdefault(message_id, ticket_id)
    for message_id in ids:
        if message_id in ticket_of:
            return sql.one_ticket(by_id, (ticket_of[message_id],)), "reply"
    return None, None

