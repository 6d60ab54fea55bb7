"""``hooks``: the queue of ticket events for the [hooks] command — list, retry after a fix."""

from __future__ import annotations

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import ago, echo_json, is_tty, note, table


@cli.group()
def hooks() -> None:
    """The ticket events queued for the [hooks] command, and running them again once the
    command works: an event is tried until max_attempts (10: about 15 hours), then given up.

    \b
    Example:
      helpdesk-fetch hooks list
      helpdesk-fetch hooks retry --all
    """


@hooks.command("list")
@click.option("--all", "include_delivered", is_flag=True,
              help="Also those delivered (kept for history_days).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: App, include_delivered: bool, as_json: bool) -> None:
    """The events not delivered yet: id, event, ticket, when it was queued, attempts and its
    state (waiting, failing: retried later, given_up: after max_attempts), oldest first; the
    last error under each.

    \b
    Examples:
      helpdesk-fetch hooks list
      helpdesk-fetch hooks list --json
    """
    from helpdesk_fetch.hooks import manage

    app.database(read_only=True)
    data = manage.list_events(include_delivered=include_delivered)
    if as_json:
        return echo_json(data)
    if not data and is_tty():
        return note("No hook event is waiting.", style="green")
    queued = ago if is_tty() else str  # a script reads the ISO time
    table(["id", "event", "ticket", "queued", "attempts", "state"],
          [[e["id"], e["event"], e["ticket"] or "", queued(e["created_at"]), e["attempts"],
            e["state"].replace("_", " ")] for e in data],
          notes=[e["last_error"] if e["state"] != "delivered" else None for e in data],
          notes_column="last error")


@hooks.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.option("--all", "retry_all", is_flag=True, help="Every event not delivered.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def retry(app: App, ctx: click.Context, ids: tuple[int, ...], retry_all: bool,
          as_json: bool) -> None:
    """Run hook events again now, once the command works: one given up after max_attempts
    gets max_attempts new attempts, one still failing is run without waiting for its
    back-off. Events of one ticket still run in order; delivery is at least once, as always.

    Exit status 0 when every event was delivered (now or before), 1 when any was not, 2
    for an id that is no event.

    \b
    Examples:
      helpdesk-fetch hooks retry 12
      helpdesk-fetch hooks retry --all
    """
    from helpdesk_fetch.hooks import manage

    if bool(ids) == retry_all:
        raise click.UsageError("give the ids of the events to retry, or --all")
    config = app.config()
    app.database()
    results = manage.retry(config, None if retry_all else list(ids))
    if as_json:
        echo_json([{**vars(r), "ok": r.ok} for r in results])
    elif not results:
        note("No hook event is waiting.", style="green")
    for r in [] if as_json else results:
        about = f" ({r.event} of ticket {r.ticket})" if r.ticket else \
            f" ({r.event})" if r.event else ""
        note(f"event {r.id}{about}: {r.outcome.replace('_', ' ')}"
             + (f": {r.detail}" if r.detail else ""), style="green" if r.ok else "bold red")
    ctx.exit(0 if all(r.ok for r in results) else 1)
