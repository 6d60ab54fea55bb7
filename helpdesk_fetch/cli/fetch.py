"""``fetch``: the command cron runs."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import (
    automail_remark,
    echo,
    hanging,
    is_tty,
    note,
    problem_of,
    scrub,
    table,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from helpdesk_fetch.state import IngestSwitch


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
        if (is_tty() and app.verbosity >= 0) or app.verbosity > 0:  # -q: only errors
            note(f"Ingest is disabled on this machine ({_switch_text(switch)}); nothing read. "
                 "`helpdesk-fetch ingest enable` turns it back on.", style="bold yellow")
        ctx.exit(0)
    quiet = app.verbosity < 0  # -q: only errors, at a terminal too
    with _Signals() as signals:
        report = _run(config, names=list(names) or None, dry_run=dry_run, quiet=quiet)
    if dry_run:
        _print_plan(report, automail=config.smtp is not None)
    elif is_tty() and not quiet:
        _print_summary(report)
    if report.interrupted:
        signals.die(f"{signals.name}: " + ("nothing was changed (dry run)" if dry_run else
                    f"stopped after storing {sum(a.stored for a in report.accounts)} "
                    "messages; the rest stays on the server for the next run"))
    if report.exit_code == 75 and app.verbosity > 0:
        note("Every selected account is being processed by another run.", err=True)
    ctx.exit(report.exit_code)


def _run(config, *, names: list[str] | None, dry_run: bool, quiet: bool = False):
    """The run, with a progress display at a terminal (not with *quiet*); Ctrl-C (or SIGTERM)
    at any moment ends it with what was stored kept (an interrupted report)."""
    from helpdesk_fetch.errors import ConfigError
    from helpdesk_fetch.ingest import ahead

    progress = None
    try:
        shown = is_tty(sys.stderr) and not (dry_run or quiet)
        progress = _TerminalProgress() if shown else None
        return ahead.fetch(config, names=names, dry_run=dry_run, progress=progress)
    except ConfigError as exc:  # e.g. the database setting: name the accounts file too
        raise exc.in_file(config.path) from None
    except KeyboardInterrupt:  # before the run began, or a second Ctrl-C while it ended
        from helpdesk_fetch.ingest.run import RunReport

        return RunReport(interrupted=True)
    finally:
        if progress is not None:
            progress.stop()


def _switch_text(switch: IngestSwitch) -> str:
    parts = [f"since {switch['disabled_at']}" if switch.get("disabled_at") else "",
             f"by {switch['by']}" if switch.get("by") else "",
             f"reason: {switch['reason']}" if switch.get("reason") else ""]
    return ", ".join(p for p in parts if p) or "no details"


def _print_plan(report, *, automail: bool) -> None:
    """Each message on two lines: which, then where it goes (report.Plan); that the messages
    without auto-mails cause none is said once, at the end."""
    said = is_tty() and is_tty(sys.stderr)  # the error is on the screen already, in full
    for account in report.accounts:
        error = "(said above)" if said else account.error
        echo(f"{account.account}: {account.outcome}" + (f": {error}" if account.error else ""),
             lines=False)
        for plan in account.actions:  # Message-IDs and subjects: untrusted
            which, where = plan.lines("    ")
            echo(hanging(scrub(f"  would file {which}", lines=False), 4))
            echo(hanging(scrub(where, lines=False), 7))  # control characters shown first
        for line in account.failures:
            echo(f"  would set aside {line}", lines=False)
        if not account.actions and not account.failures and not account.error:
            echo("  no mail waiting")
    echo("(dry run: nothing was changed)")
    if any(account.actions for account in report.accounts):  # else there is nothing to remark
        echo(automail_remark(automail))


def _print_summary(report) -> None:
    """The run at a glance; mail that opened no ticket (spec §9.4) in a column of its own
    when there was some: without it the table fits 80 columns with longer account names."""
    if not report.accounts:  # the run stopped before its first account: its error said why
        return
    ignored = any(a.ignored for a in report.accounts)
    rows = [[a.account, a.outcome, a.fetched, a.new_tickets, a.threaded, a.rejected,
             a.duplicates, *([a.ignored] if ignored else []), a.errors, f"{a.seconds:.1f}s"]
            for a in report.accounts]
    table(["account", "outcome", "read", "new", "replies", "rejected", "dupes",
           *(["ignored"] if ignored else []), "errors", "time"], rows, title="fetch",
          notes=[problem_of(a.account, a.error or (BUSY if a.outcome == "busy" else None))
                 for a in report.accounts])


# What the table says of an account skipped as busy: no failure, but news (the log says it too)
BUSY = ("skipped: another run is processing this account (or ingest was switched off "
        "meanwhile); the next run reads it")


class _Signals:
    """While the run goes on, Ctrl-C and SIGTERM (systemd stopping the unit, kill) end it
    where it is, the message being stored finished first (``interrupts``); the run records
    itself as interrupted. ``die`` then ends the process by that signal, so that its parent (a
    shell, systemd) sees how it ended."""

    def __enter__(self) -> _Signals:
        from helpdesk_fetch import interrupts

        self._previous = {signum: signal.signal(signum, interrupts.handle)
                          for signum in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def name(self) -> str:
        from helpdesk_fetch import interrupts

        signum = interrupts.received or signal.SIGINT
        return "interrupted (Ctrl-C)" if signum == signal.SIGINT else \
            f"interrupted ({signal.Signals(signum).name})"

    def die(self, message: str) -> None:
        from helpdesk_fetch import interrupts

        signum = interrupts.received or signal.SIGINT
        note(f"helpdesk-fetch: {message}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        sys.exit(128 + signum)  # not reached: the shell's way of saying the same


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
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def account_started(self, account: str, count: int, size: int, aside: int) -> None:
        if not count:  # a bar of nothing would read "0/0 messages 1/1 bytes"
            if not aside:  # else their lines said what there was
                self._progress.console.print(f"{account}: no new mail", markup=False,
                                             highlight=False)
            return
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
