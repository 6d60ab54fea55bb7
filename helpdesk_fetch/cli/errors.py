"""``errors``: the messages that did not ingest — list, show, retry after a fix."""

from __future__ import annotations

import sys

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import ago, echo, echo_json, is_tty, note, table


@cli.group()
def errors() -> None:
    """Messages that did not ingest, and re-processing them once the cause is fixed.

    A message that cannot be ingested waits where `fetch` set it aside: the IMAP folder
    "HD Error Messages", the POP3 server (later runs skip it), the Maildir folder
    ".HD Error Messages", or the quarantine of `deliver`.

    \b
    Example:
      helpdesk-fetch errors list
      helpdesk-fetch errors retry --all
    """


@errors.command("list")
@click.option("--all", "include_resolved", is_flag=True,
              help="Also those re-processed or dismissed (kept for history_days).")
@click.option("--account", metavar="NAME", shell_complete=complete_account,
              help="Only this account's.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: App, include_resolved: bool, account: str | None, as_json: bool) -> None:
    """The messages waiting in error folders and quarantine: id, account, when, sender,
    subject and why, oldest first.

    \b
    Examples:
      helpdesk-fetch errors list
      helpdesk-fetch errors list --account helpdesk --json
    """
    from helpdesk_fetch.store import failures

    app.database(read_only=True)
    data = failures.list_failures(include_resolved=include_resolved, account=account)
    if as_json:
        return echo_json(data)
    if not data and is_tty():
        return note("No failed messages are waiting.", style="green")
    columns = ["id", "account", "failed", "waits in", "from", "subject"]
    rows = [[f["id"], f["account"], ago(f["failed_at"]) if is_tty() else f["failed_at"],
             f["place"] if f["state"] == "pending" else "", f["from"], f["subject"]]
            for f in data]  # what was re-processed or dismissed waits nowhere
    if include_resolved:
        columns.insert(4, "state")
        rows = [row[:4] + [f["state"]] + row[4:] for row, f in zip(rows, data, strict=True)]
    table(columns, rows, notes=[f["reason"] for f in data], notes_column="reason",
          shrink=("from", "subject"))  # the sender shortened first


@errors.command()
@click.argument("ident", metavar="ID")
@click.option("--raw", is_flag=True, help="Print the message exactly as received.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, ident: str, raw: bool, as_json: bool) -> None:
    """The failed message ID: why it failed, where it waits, its headers; with --raw the
    message itself (read from its error folder when it was too large to keep a copy).

    \b
    Examples:
      helpdesk-fetch errors show 3
      helpdesk-fetch errors show 3 --raw | less
    """
    from helpdesk_fetch.store import failures

    app.database(read_only=True)
    row = failures.get_failure(ident)
    if raw:
        from helpdesk_fetch.ingest.retry import fetch_raw

        sys.stdout.buffer.write(fetch_raw(app.config(), row))
        sys.stdout.buffer.flush()
        return
    data = failures.failure_dict(row, has_copy=row.raw is not None)
    if as_json:
        return echo_json(data)
    labels = [("account", "account"), ("state", "state"), ("failed", "failed_at"),
              ("attempts", "attempts"), ("reason", "reason"), ("waits in", "location"),
              ("from", "from"), ("subject", "subject"), ("date", "date"),
              ("message id", "message_id"), ("size", "size"), ("sha256", "sha256")]
    note(f"Failed message {data['id']}", style="bold")
    if data["sha256"] is None:  # set aside unread (too large, or a link in a Maildir)
        data = {**data, "sha256": "(not downloaded)"}
    for label, key in labels:  # sender, subject, reason: from the message, untrusted
        echo(f"  {label + ':':12} {'' if data[key] is None else data[key]}".rstrip(),
             lines=False)
    if data["state"] == "pending":
        echo(f"Fix the cause, then: helpdesk-fetch errors retry {data['id']}; or, when no fix "
             f"will make it ingestible (an empty message, spam): helpdesk-fetch errors dismiss "
             f"{data['id']}")


@errors.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.option("--all", "retry_all", is_flag=True, help="Every waiting message.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def retry(app: App, ctx: click.Context, ids: tuple[int, ...], retry_all: bool,
          as_json: bool) -> None:
    """Re-process failed messages after the cause is fixed (a new version, a larger
    max_message_bytes, ...): each goes through the same steps as in `fetch` and is removed
    from its error folder only once stored. Retrying twice stores nothing twice.

    Exit status 0 when every message was stored, 1 when any still fails or was skipped.

    \b
    Examples:
      helpdesk-fetch errors retry 3
      helpdesk-fetch errors retry --all
    """
    from helpdesk_fetch.ingest import retry as core

    if bool(ids) == retry_all:
        raise click.UsageError("give the ids of the messages to retry, or --all")
    results = core.retry(app.config(), None if retry_all else list(ids))
    if as_json:
        echo_json([vars(r) for r in results])
    else:
        _print_results(results)
    ctx.exit(0 if all(r.ok for r in results) else 1)


@errors.command()
@click.argument("ids", nargs=-1, type=int, required=True, metavar="ID...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def dismiss(app: App, ctx: click.Context, ids: tuple[int, ...], as_json: bool) -> None:
    """Give up on failed messages that no fix will ever make ingestible (spam, an empty
    message): each is copied into the database, then removed from its error folder (or from
    the POP3 server). `errors list --all` and `errors show ID --raw` keep it for history_days.

    \b
    Example:
      helpdesk-fetch errors dismiss 7 9
    """
    from helpdesk_fetch.ingest import retry as core

    results = core.dismiss(app.config(), list(ids))
    if as_json:
        echo_json([vars(r) for r in results])
    else:
        _print_results(results)
    ctx.exit(0 if all(r.ok for r in results) else 1)


def _print_results(results) -> None:
    if not results:
        note("No failed messages are waiting.", style="green")
    for r in results:
        target = f" -> ticket {r.ticket_number}" if r.ticket_number else ""
        note(f"{r.id} ({r.account}): {r.outcome}{target}" + (f": {r.detail}" if r.detail else ""),
             style="green" if r.ok else "bold red")
    failing = [str(r.id) for r in results if r.outcome == "still fails"]
    if failing:
        note(f"(what no fix will make ingestible: helpdesk-fetch errors dismiss "
             f"{' '.join(failing)})")
