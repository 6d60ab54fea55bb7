"""``tickets``: what agents and scripts need: list, show, close, set-status."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import echo, echo_json, is_tty, local, note, scrub, table, when
from helpdesk_fetch.enums import TicketStatus

if TYPE_CHECKING:
    from helpdesk_fetch.tickets.queries import ShownTicket


@cli.group()
def tickets() -> None:
    """The tickets in the database.

    \b
    Example:
      helpdesk-fetch tickets list --status confirmed_unread
    """


@tickets.command("list")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]),
              help="Only tickets with this status.")
@click.option("--resource", help="Only tickets of this resource.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: App, status: str | None, resource: str | None, as_json: bool) -> None:
    """Tickets, oldest first.

    \b
    Examples:
      helpdesk-fetch tickets list
      helpdesk-fetch tickets list --status new --resource it-support --json
    """
    from helpdesk_fetch.tickets import queries as core

    config = app.config()
    app.database(read_only=True)
    known = [r.name for r in config.resources] + [a.resource for a in config.accounts
                                                 if a.resource]
    data = core.list_tickets(app.tagger(), status=status, resource=resource, known=known)
    if as_json:
        return echo_json(data)
    updated = when if is_tty() else str  # a script reads the ISO time
    table(["number", "status", "resource", "updated", "msgs", "requester", "subject"],
          [[t["number"], t["status"], t["resource"] or "", updated(t["updated_at"]),
            t["message_count"], t["requester"], t["subject"]] for t in data],
          shrink=("requester", "subject"))


def _ticket_choice(function):
    """The ticket a command acts on (spec §3): TICKET, its number or tag, or ``--id N``."""
    function = click.option("--id", "ticket_id", type=int, metavar="N",
                            help="The ticket with this internal id (as --json shows it) "
                                 "instead of TICKET.")(function)
    function = click.option("--number", hidden=True)(function)  # TICKET, as before 0.2
    return click.argument("ticket", metavar="[TICKET]", required=False)(function)


def _ticket(app: App, ticket: str | None, number: str | None, ticket_id: int | None):
    """The ticket of TICKET (its number or tag) or ``--id N``, exactly one of them given."""
    from helpdesk_fetch.tickets import queries as core

    if ticket is not None and number is not None:
        raise click.UsageError("give the ticket's number once")
    return core.find_ticket(ticket or number, app.tagger(), ticket_id=ticket_id)


@tickets.command()
@_ticket_choice
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, ticket: str | None, number: str | None, ticket_id: int | None,
         as_json: bool) -> None:
    """The ticket TICKET (its number, or its tag) with its messages, oldest first, and their
    attachments.

    \b
    Examples:
      helpdesk-fetch tickets show 1042
      helpdesk-fetch tickets show 1042QKXP --json
      helpdesk-fetch tickets show --id 12 --json
    """
    from helpdesk_fetch.tickets import queries as core

    app.database(read_only=True)
    data = core.show_ticket(_ticket(app, ticket, number, ticket_id), app.tagger())
    if as_json:
        return echo_json(data)
    _print_thread(data)


def _print_thread(t: ShownTicket) -> None:
    note(f"{t['tag']} {t['subject']}", style="bold")
    note(f"status {t['status']}, resource {t['resource'] or '-'}, requester "
         f"{t['requester'] or '(no sender)'}")
    due = f"escalation due {local(t['escalation_due_at']) or '-'}"  # of an open ticket only
    note(f"opened {local(t['created_at'])}, "
         + (f"closed {local(t['closed_at']) or '-'}" if t["status"] == "closed" else due))
    if t["bounced_addresses"]:
        note(f"bounced: {', '.join(t['bounced_addresses'])} (sent no auto-mail for "
             "bounce_hold_days)", style="yellow")
    for m in t["messages"]:
        arrow = "<-" if m["direction"] == "in" else "->"
        state = "" if m["state"] == "accepted" else f" [{m['state'].upper()}]"
        if m["direction"] == "in" and m["kind"] != "message":
            state += f" [{m['kind'].upper().replace('_', '-')}]"
        sent = local(m["date"]) or f"{local(m['received_at'])} (received; no Date)"
        header = f"\n{arrow} {sent}  {m['from'] or '(no sender)'}{state}"
        note(header, style="bold cyan" if m["direction"] == "in" else "bold magenta")
        note(f"   Subject: {m['subject'] or '(no subject)'}")
        for a in m["attachments"]:
            note(f"   Attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
        if m.get("notice"):
            note(f"   Notice: {m['notice']}", style="bold yellow")
        text = (m["text"] or "").replace("\r\n", "\n")  # mail's line ends are CRLF
        body = scrub(text.strip() or "(no text)")
        echo("\n".join("   " + line for line in body.splitlines()) if is_tty() else body)


@tickets.command()
@_ticket_choice
@pass_app
def close(app: App, ticket: str | None, number: str | None, ticket_id: int | None) -> None:
    """Close the ticket TICKET (its number or tag). A reply within the reactivation window
    reopens it.

    Before the first `fetch` or `deliver` there is no database, so no such ticket: it says so
    (exit status 2) and creates none.

    \b
    Examples:
      helpdesk-fetch tickets close 1042
      helpdesk-fetch tickets close "[TicketID 1042QKXP]"
    """
    _set_status(app, ticket, number, ticket_id, TicketStatus.CLOSED)


@tickets.command("set-status")
@_ticket_choice
@click.argument("status", metavar="STATUS", required=False)
@pass_app
def set_status(app: App, ticket: str | None, number: str | None, ticket_id: int | None,
               status: str | None) -> None:
    """Set the status of the ticket TICKET (its number or tag). STATUS: new,
    confirmed_unread, in_progress or closed.

    Before the first `fetch` or `deliver` there is no database, so no such ticket: it says so
    (exit status 2) and creates none.

    \b
    Examples:
      helpdesk-fetch tickets set-status 1042 in_progress
      helpdesk-fetch tickets set-status --id 12 in_progress
    """
    if (number is not None or ticket_id is not None) and status is None:
        ticket, status = None, ticket  # `--id N STATUS`: the one word is STATUS
    if status is None:
        raise click.UsageError("give the new STATUS: " + ", ".join(TicketStatus))
    _set_status(app, ticket, number, ticket_id, status)


def _set_status(app: App, ticket: str | None, number: str | None, ticket_id: int | None,
                status: str) -> None:
    from helpdesk_fetch.clock import isoformat
    from helpdesk_fetch.errors import NoDatabase
    from helpdesk_fetch.tickets import queries as core

    try:
        app.database(create=False)  # a database that is not there holds no ticket
    except NoDatabase as exc:
        raise NoDatabase(f"no such ticket: {exc}") from None
    changed, was = core.set_status(_ticket(app, ticket, number, ticket_id), status)
    if was == changed.status:  # said so: a script or a typo closing the wrong one shows
        closed = f" (closed {local(isoformat(changed.closed_at))})" if changed.closed_at else ""
        return note(f"Ticket {changed.number} was {was} already{closed}; nothing changed.")
    note(f"Ticket {changed.number} is now {changed.status}.")
