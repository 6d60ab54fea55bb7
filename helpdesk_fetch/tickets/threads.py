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
    by_number = statements.ticket_by_number_locked if lock else statements.ticket_by_number
    numbers, forged = tagger.scan(parsed.subject)
    if forged:
        label = f"<{parsed.message_id}>" if parsed.message_id else "a message without Message-ID"
        tagger.forgeries.report(forged, label, parsed.from_addr or "no sender")
    for number in numbers:
        ticket = sql.one_ticket(by_number, (number,))
        if ticket is not None:
            return ticket, "tag"
    newest = [*reversed(parsed.references)][:MAX_REFERENCES]
    ticket = ticket_of_message_ids([i for i in [parsed.in_reply_to, *newest] if i], lock=lock)
    return (ticket, "reply") if ticket is not None else (None, None)


def ticket_of_message_ids(message_ids: list[str], *, lock: bool = False) -> Ticket | None:
    """The ticket of the first of *message_ids* that names a stored message (inbound or one of
    our auto-mails), or None. One query for the ids, one for the ticket."""
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return None
    statements = sql.statements()
    ticket_of: dict[str, int] = {}
    for message_id, ticket_id in sql.run(statements.tickets_of(ids), ids):
        ticket_of.setdefault(message_id, ticket_id)
    for message_id in ids:
        if message_id in ticket_of:
            by_id = statements.ticket_by_id_locked if lock else statements.ticket_by_id
            return sql.one_ticket(by_id, (ticket_of[message_id],))
    return None


def alert_ticket(key: str, *, lock: bool = False) -> Ticket | None:
    """The open ticket of the alert key *key* (spec §10.2), or None. *lock* (the write path):
    on PostgreSQL the key is locked until commit first, so that two workers with two alerts of
    one key open one ticket, not two."""
    statements = sql.statements()
    if lock and statements.text_lock is not None:
        sql.run(statements.text_lock, (f"alert:{key}",))
    return sql.one_ticket(statements.alert_ticket_locked if lock else statements.alert_ticket,
                          (key,))
