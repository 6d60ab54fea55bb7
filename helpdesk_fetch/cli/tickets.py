"""``tickets``: what agents and scripts need: list, show, close, set-status."""

from __future__ import annotations

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import echo_json, is_tty, note, printable, table
from helpdesk_fetch.enums import TicketStatus


@cli.group()
def tickets() -> None:
    """The tickets in the database.

    \b
    Example:
      helpdesk-fetch tickets list --status confirmed_unread
    """


@tickets.command("list")
@click.option("--status", type=click.Choice(list(TicketStatus)),
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

    app.database(read_only=True)
    data = core.list_tickets(app.tagger(), status=status, resource=resource)
    if as_json:
        return echo_json(data)
    table(["id", "tag", "status", "resource", "requester", "updated", "msgs", "subject"],
          [[t["id"], t["tag"], t["status"], t["resource"] or "", t["requester"],
            t["updated_at"], t["message_count"], t["subject"]] for t in data])


def _ticket_choice(function):
    """The ticket a command acts on: ``ID``, or ``--number N`` (spec §3)."""
    function = click.option(
        "--number", metavar="N",
        help="The ticket with this number instead of an ID (a tag such as 1042QKXP or "
             "\"[TicketID 1042QKXP]\" works too).")(function)
    return click.argument("ident", metavar="[ID]", required=False)(function)


def _ticket(app: App, ident: str | None, number: str | None):
    """The ticket of ``ID`` or ``--number N``, exactly one of them given."""
    from helpdesk_fetch.tickets import queries as core

    if (ident is None) == (number is None):
        raise click.UsageError("give the ticket's ID, or --number N (not both)")
    if number is None:
        return core.get_ticket(ident)
    return core.get_ticket(core.ticket_number(number, app.tagger()), by_number=True)


@tickets.command()
@_ticket_choice
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, ident: str | None, number: str | None, as_json: bool) -> None:
    """The ticket ID, or --number N, with its messages (oldest first) and attachments.

    \b
    Examples:
      helpdesk-fetch tickets show 12
      helpdesk-fetch tickets show --number 1042 --json
    """
    from helpdesk_fetch.tickets import queries as core

    app.database(read_only=True)
    data = core.show_ticket(_ticket(app, ident, number), app.tagger())
    if as_json:
        return echo_json(data)
    _print_thread(data)


def _print_thread(t: dict) -> None:
    note(f"{t['tag']} {t['subject']}", style="bold")
    note(f"status {t['status']}, resource {t['resource'] or '-'}, requester {t['requester']}, "
         f"opened {t['created_at']}, escalation due {t['escalation_due_at'] or '-'}"
         + (f", closed {t['closed_at']}" if t["closed_at"] else ""))
    for m in t["messages"]:
        arrow = "<-" if m["direction"] == "in" else "->"
        state = "" if m["state"] == "accepted" else f" [{m['state'].upper()}]"
        header = f"\n{arrow} {m['date'] or '?'}  {m['from'] or '(no sender)'}{state}"
        note(header, style="bold cyan" if m["direction"] == "in" else "bold magenta")
        note(f"   Subject: {m['subject']}")
        for a in m["attachments"]:
            note(f"   Attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)")
        body = printable((m["text"] or "").strip() or "(no text)", lines=True)
        click.echo("\n".join("   " + line for line in body.splitlines()) if is_tty() else body)


@tickets.command()
@_ticket_choice
@pass_app
def close(app: App, ident: str | None, number: str | None) -> None:
    """Close the ticket ID, or --number N. A reply within the reactivation window reopens it.

    \b
    Examples:
      helpdesk-fetch tickets close 12
      helpdesk-fetch tickets close --number 1042
    """
    _set_status(app, ident, number, "closed")


@tickets.command("set-status")
@_ticket_choice
@click.argument("status", metavar="STATUS", required=False)
@pass_app
def set_status(app: App, ident: str | None, number: str | None, status: str | None) -> None:
    """Set the status of the ticket ID, or --number N. STATUS: new, confirmed_unread,
    in_progress or closed.

    \b
    Examples:
      helpdesk-fetch tickets set-status 12 in_progress
      helpdesk-fetch tickets set-status --number 1042 in_progress
    """
    if number is not None and status is None:  # `--number N STATUS`: the one word is STATUS
        ident, status = None, ident
    if status is None:
        raise click.UsageError("give the new STATUS: " + ", ".join(TicketStatus))
    _set_status(app, ident, number, status)


def _set_status(app: App, ident: str | None, number: str | None, status: str) -> None:
    from helpdesk_fetch.tickets import queries as core

    app.database()
    ticket = core.set_status(_ticket(app, ident, number), status)
    note(f"Ticket {ticket.number} is now {ticket.status}.")
