"""``deliver``: one message on standard input, for Postfix ``pipe``, procmail or monitoring."""

from __future__ import annotations

import contextlib
import logging
import sys

import click

from helpdesk_fetch import state
from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import echo
from helpdesk_fetch.errors import (
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_TEMPFAIL,
    account_named,
    unexpected,
)

log = logging.getLogger(__name__)


class _MtaCommand(click.Command):
    """An MTA understands sysexits only: a mistyped command line must keep the message queued
    (75), not bounce it (click's usual 2)."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            # click declares exit_code per class; this error's is the MTA's "try again later"
            exc.exit_code = EXIT_TEMPFAIL  # type: ignore[misc]
            raise


@cli.command(cls=_MtaCommand)
@click.option("--resource", metavar="NAME", help="File new tickets under this resource.")
@click.option("--account", metavar="NAME", shell_complete=complete_account,
              help="File the message as if it came from this account (its resource and "
                   "automail setting).")
@click.pass_context
@pass_app
def deliver(app: App, ctx: click.Context, resource: str | None, account: str | None) -> None:
    """Read one message on standard input and file it like `fetch` would (MTA pipe).

    Exit status, as MTAs expect: 0 stored; 75 try again later (database locked, read-only or
    unreachable, configuration error, ingest disabled; nothing was consumed, the MTA keeps the
    message); 65 it can never be ingested as it is: it was kept in the quarantine Maildir
    (state_dir/quarantine) and shows in `errors list`; `errors retry` takes it after a fix.

    \b
    Examples:
      helpdesk-fetch deliver --resource it-support < message.eml
      # Postfix master.cf (a line that starts with a space goes on):
      helpdesk unix - n n - - pipe flags=DR user=helpdesk
        argv=/opt/helpdesk-fetch/bin/helpdesk-fetch
        --config /etc/helpdesk-fetch/accounts.toml deliver --resource it-support
    """
    if (resource is None) == (account is None):
        echo("helpdesk-fetch: error: deliver needs --resource NAME or --account NAME"
             + (", not both" if resource is not None else ""), err=True)
        _failed(app, "", "deliver was run without --resource NAME or --account NAME, or with "
                "both")
        ctx.exit(EXIT_TEMPFAIL)
    if sys.stdin.isatty():  # a person at a terminal, not an MTA: nothing would ever come
        echo("helpdesk-fetch: error: deliver reads one message on standard input, from an MTA "
             "pipe or a file: helpdesk-fetch deliver --resource NAME < message.eml", err=True)
        ctx.exit(EXIT_TEMPFAIL)
    raw = sys.stdin.buffer.read()
    ctx.exit(_deliver(app, raw, resource=resource, account=account))


def _deliver(app: App, raw: bytes, *, resource: str | None, account: str | None) -> int:
    """Every failure but "never ingestible" is temporary: the MTA keeps the message."""
    from helpdesk_fetch.errors import HelpdeskError

    target = state.deliver_target(resource=resource, account=account)
    try:
        from helpdesk_fetch.ingest import deliver as core

        delivery = core.deliver(app.config(), raw, resource=resource, account=account)
    except HelpdeskError as exc:
        log.error("temporary failure, the MTA keeps the message: %s", exc)
        if not isinstance(exc, core.IngestDisabled):  # switched off on purpose: check says so
            _failed(app, target, str(exc))
        return EXIT_TEMPFAIL
    except Exception as exc:  # anything unexpected: never bounce, never lose
        log.exception("temporary failure, the MTA keeps the message: unexpected error")
        _failed(app, target, unexpected(exc))
        return EXIT_TEMPFAIL
    _worked(app, target)
    outcome = delivery.outcome
    if delivery.quarantined is not None:
        log.error("%s: %s: %s; kept in quarantine as %s (see `helpdesk-fetch errors "
                  "list`)", account_named(delivery.source), outcome.label, outcome.reason,
                  delivery.quarantined)
        return EXIT_DATAERR
    return EXIT_OK


def _failed(app: App, target: str, reason: str) -> None:
    """Tell ``check`` that mail for *target* waits in the MTA's queue (a typo in master.cf, a
    dead database would otherwise go unseen until the MTA bounces the mail days later); the
    MTA's log hears when even that cannot be written down."""
    from helpdesk_fetch.secrets.redact import redact

    try:
        state_dir = app.config().settings.state_dir
    except Exception:  # the accounts file itself: said above, and check sees it too
        return
    try:
        problem = state.deliver_failed(state_dir, target or "none", redact(reason))
    except Exception as exc:  # never the reason for an exit status the MTA misreads
        problem = unexpected(exc)
    if problem is not None:
        log.error("cannot note this failure for check: %s", problem)


def _worked(app: App, target: str) -> None:
    with contextlib.suppress(Exception):
        state.deliver_worked(app.config().settings.state_dir, target)
