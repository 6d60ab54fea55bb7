"""``fetch``: the command cron runs."""

from __future__ import annotations

import sys

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import is_tty, note, printable, table


@cli.command()
@click.option("--account", "names", multiple=True, metavar="NAME", shell_complete=complete_account,
              help="Only this account (repeatable); named accounts run even when disabled.")
@click.option("--dry-run", is_flag=True,
              help="Connect, read and report what would happen; change nothing anywhere.")
@click.pass_context
@pass_app
def fetch(app: App, ctx: click.Context, names: tuple[str, ...], dry_run: bool) -> None:
    """One pass over the enabled accounts: new mail becomes tickets or ticket replies, and is
    deleted from the mailbox once stored.

    Prints nothing when all is well. A message that cannot be ingested is set aside ("HD Error
    Messages") and reported on stderr; the run goes on. Exit status: 0 done, 1 an account could
    not be processed, 2 configuration error (also: the ingest switch in state_dir cannot be read;
    no mailbox is read then), 75 every selected account was busy with another run.

    \b
    Examples:
      helpdesk-fetch fetch
      helpdesk-fetch fetch --account helpdesk --dry-run
      * * * * *  helpdesk-fetch --config /etc/helpdesk-fetch/accounts.toml fetch
    """
    from helpdesk_fetch import state
    from helpdesk_fetch.errors import ConfigError

    config = app.config(reads_mail=True)
    try:  # checked before the ingest machinery is even imported
        switch = state.ingest_switch(config.settings.state_dir)
    except ConfigError as exc:  # unreadable: no mailbox is read, and cron hears why (exit 2)
        raise exc.in_file(config.path) from None
    if switch is not None:
        if is_tty() or app.verbosity > 0:
            note(f"Ingest is disabled on this machine ({_switch_text(switch)}); nothing read. "
                 "`helpdesk-fetch ingest enable` turns it back on.", style="bold yellow")
        ctx.exit(0)
    from helpdesk_fetch.ingest import run as ingest

    progress = _TerminalProgress() if is_tty(sys.stderr) and not dry_run else None
    try:
        report = ingest.fetch(config, names=list(names) or None, dry_run=dry_run,
                              progress=progress)
    except ConfigError as exc:  # e.g. the database setting: name the accounts file too
        raise exc.in_file(config.path) from None
    finally:
        if progress is not None:
            progress.stop()
    if dry_run:
        _print_plan(report)
    elif is_tty():
        _print_summary(report)
    if report.exit_code == 75 and app.verbosity > 0:
        note("Every selected account is being processed by another run.", err=True)
    ctx.exit(report.exit_code)


def _switch_text(switch: dict) -> str:
    parts = [f"since {switch['disabled_at']}" if switch.get("disabled_at") else "",
             f"by {switch['by']}" if switch.get("by") else "",
             f"reason: {switch['reason']}" if switch.get("reason") else ""]
    return ", ".join(p for p in parts if p) or "no details"


def _print_plan(report) -> None:
    for account in report.accounts:
        click.echo(printable(f"{account.account}: {account.outcome}"
                             + (f": {account.error}" if account.error else "")))
        for line in account.actions:  # Message-IDs and subjects: untrusted
            click.echo(printable(f"  would file {line}"))
        for line in account.failures:
            click.echo(printable(f"  would set aside {line}"))
        if not account.actions and not account.failures and not account.error:
            click.echo("  no mail waiting")
    click.echo("(dry run: nothing was changed)")


def _print_summary(report) -> None:
    rows = [[a.account, a.outcome, a.fetched, a.new_tickets, a.threaded, a.rejected,
             a.duplicates, a.errors, f"{a.seconds:.1f}s", a.error or ""]
            for a in report.accounts]
    table(["account", "outcome", "fetched", "new", "replies", "rejected", "dupes", "errors",
           "time", "problem"], rows, title="fetch")


class _TerminalProgress:
    """Per account: messages, bytes and rate, on stderr (only at a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.fields[done]}/{task.fields[count]} messages"), DownloadColumn(),
            TransferSpeedColumn(), TimeElapsedColumn(), console=Console(stderr=True))
        self._tasks: dict[str, int] = {}
        self._progress.start()

    def account_started(self, account: str, count: int, size: int) -> None:
        self._tasks[account] = self._progress.add_task(account, total=size or 1, done=0,
                                                       count=count)

    def message_done(self, account: str, size: int) -> None:
        task = self._tasks[account]
        done = self._progress.tasks[task].fields["done"] + 1
        self._progress.update(task, advance=size, done=done)

    def account_finished(self, report) -> None:
        task = self._tasks.get(report.account)
        if task is not None:
            self._progress.update(task, completed=self._progress.tasks[task].total)

    def stop(self) -> None:
        self._progress.stop()
