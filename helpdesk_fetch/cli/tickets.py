"""``tickets``: what agents and scripts need: list, show, close, set-status."""

from __future__ import annotations

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import echo_json, is_tty, note, printable, table
from helpdesk_fetch.rules import STATUSES


@cli.group()
def tickets() -> None:
    """The tickets in the database.

    \b
    Example:
      helpdesk-fetch tickets list --status confirmed_unread
    """


@tickets.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only tickets with this status.")
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
    from helpdesk_fetch import tickets as core

    app.database(read_only=True)
    data = core.list_tickets(app.tagger(), status=status, resource=resource)
    if as_json:
        return echo_json(data)
    table(["id", "tag", "status", "resource", "requester", "updated", "msgs", "subject"],
          [[t["id"], t["tag"], t["status"], t["resource"] or "", t["requester"],
            t["updated_at"], t["message_count"], t["subject"]] for t in data])


@tickets.command()
@click.argument("ident", metavar="ID")
@click.option("--number", "by_number", is_flag=True, help="ID is the ticket number, not its id.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, ident: str, by_number: bool, as_json: bool) -> None:
    """The ticket ID with its messages (oldest first) and attachments.

    \b
    Examples:
      helpdesk-fetch tickets show 12
      helpdesk-fetch tickets show --number 1042 --json
    """
    from helpdesk_fetch import tickets as core

    app.database(read_only=True)
    data = core.show_ticket(core.get_ticket(ident, by_number=by_number), app.tagger())
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
@click.argument("ident", metavar="ID")
@click.option("--number", "by_number", is_flag=True, help="ID is the ticket number, not its id.")
@pass_app
def close(app: App, ident: str, by_number: bool) -> None:
    """Close the ticket ID (a reply within the reactivation window reopens it).

    \b
    Example:
      helpdesk-fetch tickets close 12
    """
    _set_status(app, ident, "closed", by_number)


@tickets.command("set-status")
@click.argument("ident", metavar="ID")
@click.argument("status", type=click.Choice(STATUSES))
@click.option("--number", "by_number", is_flag=True, help="ID is the ticket number, not its id.")
@pass_app
def set_status(app: App, ident: str, status: str, by_number: bool) -> None:
    """Set the status of the ticket ID: new, confirmed_unread, in_progress or closed.

    \b
    Example:
      helpdesk-fetch tickets set-status 12 in_progress
    """
    _set_status(app, ident, status, by_number)


def _set_status(app: App, ident: str, status: str, by_number: bool) -> None:
    from helpdesk_fetch import tickets as core

    app.database()
    ticket = core.set_status(core.get_ticket(ident, by_number=by_number), status)
    note(f"Ticket {ticket.number} is now {ticket.status}.")
