"""``ignored``: mail that opened no ticket (spec §9.4) — list, show, restore as a request."""

from __future__ import annotations

import sys

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import echo_json, is_tty, note, table, when


@cli.group()
def ignored() -> None:
    """Mail that opened no ticket: bounces of no mail of ours (backscatter), auto-replies to no
    ticket, and mail a rule with action = "ignore" matched. It was deleted from its mailbox
    like any other and is kept here, with its bytes, for ignored_days (default 30).

    \b
    Example:
      helpdesk-fetch ignored list
      helpdesk-fetch ignored restore 12
    """


@ignored.command("list")
@click.option("--account", metavar="NAME", shell_complete=complete_account,
              help="Only this account's.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: App, account: str | None, as_json: bool) -> None:
    """The ignored mail kept: id, account, when, sender, subject and the reason (bounce,
    auto_reply or the name of the rule that ignored it), oldest first.

    \b
    Examples:
      helpdesk-fetch ignored list
      helpdesk-fetch ignored list --account helpdesk --json
    """
    from helpdesk_fetch.store import ignored as core

    app.database(read_only=True)
    data = core.list_ignored(account=account)
    if as_json:
        return echo_json(data)
    if not data and is_tty():
        return note("No ignored mail is kept.", style="green")
    received = when if is_tty() else str  # a script reads the ISO time
    table(["id", "account", "received", "from", "subject", "reason"],
          [[m["id"], m["account"], received(m["received_at"]), m["from"], m["subject"],
            m["reason"] + (" (restored)" if m["restored_at"] else "")] for m in data],
          shrink=("from", "subject", "reason"))  # a long reason too: one line per row


@ignored.command()
@click.argument("ident", metavar="ID")
@click.option("--raw", is_flag=True, help="Print the message exactly as received.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, ident: str, raw: bool, as_json: bool) -> None:
    """The ignored message ID: why it opened no ticket, its sender, subject and date; with
    --raw the message itself.

    \b
    Examples:
      helpdesk-fetch ignored show 12
      helpdesk-fetch ignored show 12 --raw | less
    """
    from helpdesk_fetch.store import ignored as core

    app.database(read_only=True)
    row = core.get_ignored(ident)
    if raw:
        sys.stdout.buffer.write(core.raw_of(row))
        sys.stdout.buffer.flush()
        return
    from helpdesk_fetch.ingest.report import ignored_why

    data = core.ignored_dict(row)
    data["restored_to"] = core.restored_to(row)
    data["why"] = ignored_why(data["reason"], data["kind"])
    if as_json:
        return echo_json(data)
    labels = [("account", "account"), ("received", "received_at"), ("reason", "reason"),
              ("why", "why"), ("kind", "kind"), ("from", "from"), ("subject", "subject"),
              ("date", "date"),
              ("message id", "message_id"), ("size", "size"), ("sha256", "sha256"),
              ("restored", "restored_at"), ("to ticket", "restored_to")]
    note(f"Ignored message {data['id']}", style="bold")
    for label, key in labels:
        click.echo(f"  {label + ':':12} {'' if data[key] is None else data[key]}")
    if data["restored_at"] is None:
        click.echo(f"Make it a request after all: helpdesk-fetch ignored restore {data['id']}")


@ignored.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def restore(app: App, ident: str, as_json: bool) -> None:
    """Ingest the ignored message ID as a request after all (a rule misfired): it goes through
    the same steps as in `fetch`, as mail of its account, except that nothing ignores it; its
    auto-mails are sent. Restoring it again stores nothing and says where it went.

    \b
    Example:
      helpdesk-fetch ignored restore 12
    """
    from helpdesk_fetch.ingest import restore as core

    result = core.restore(app.config(), ident)
    if as_json:
        return echo_json(vars(result))
    if result.outcome == "restored":  # the detail names the message and its ticket
        return note(f"{result.id}: restored {result.detail}", style="green")
    target = f" -> ticket {result.ticket_number}" if result.ticket_number else ""
    note(f"{result.id}: {result.outcome}{target}: {result.detail}", style="yellow")
