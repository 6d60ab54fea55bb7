"""``check`` (the monitoring plugin) and ``probe send`` (canary messages)."""

from __future__ import annotations

import logging

import click

from helpdesk_fetch.cli import App, cli, complete_account, missing_database_text, pass_app
from helpdesk_fetch.cli.render import echo, echo_json, is_tty, note
from helpdesk_fetch.errors import account_named

log = logging.getLogger(__name__)

class _PluginUsageError(click.UsageError):
    """A wrong command line is UNKNOWN (3) to a monitoring system, told on stdout, where it
    reads the plugin's output; click's usual exit 2 would pass for CRITICAL."""

    exit_code = 3

    def show(self, file=None) -> None:
        echo(f"HELPDESK-FETCH UNKNOWN - {self.format_message()}", lines=False, whole=True)


class _PluginCommand(click.Command):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _PluginUsageError(exc.format_message(), exc.ctx) from None


@cli.command(cls=_PluginCommand)
@click.option("--max-age", type=click.IntRange(min=1), default=15, show_default=True,
              metavar="MINUTES",
              help="CRITICAL when an enabled account had no successful run for this long.")
@click.option("--json", "as_json", is_flag=True, help="The same as a JSON object.")
@click.pass_context
@pass_app
def check(app: App, ctx: click.Context, max_age: int, as_json: bool) -> None:
    """A monitoring plugin (Nagios, Icinga and the like): one line "HELPDESK-FETCH STATE -
    summary | perfdata", exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    CRITICAL: an enabled account had no successful run for --max-age minutes or failed its
    last 3 finished runs; a canary of `probe send` is overdue (canary_max_minutes); the
    ingest switch cannot be read; the accounts file is invalid, defines neither an account
    nor a resource, or no account although `fetch` ran here in the last 24 hours. WARNING:
    ingest disabled; failed messages waiting; auto-mails or hook events queued for more than 30
    minutes; hook events given up in the last 24 hours; the SQLite database does not exist yet
    (nothing fetched). UNKNOWN: the database or the accounts file cannot be read by this user.
    Without accounts (mail piped in by `deliver` only) the summary says so. Run it as the user
    that runs `fetch`.

    \b
    Examples:
      helpdesk-fetch check
      helpdesk-fetch check --max-age 30 --json
      sudo -u helpdesk helpdesk-fetch check   # from NRPE or an Icinga agent
    """
    from helpdesk_fetch.health import check as core

    result = _judge(app, core, max_age)
    if as_json:
        echo_json(result.as_dict())
    else:
        echo(result.line(), lines=False, whole=True)  # one line (spec §11.1)
    ctx.exit(int(result.state))


def _judge(app: App, core, max_age: int):
    """The check's result; whatever stops it from looking is UNKNOWN, never a traceback."""
    from helpdesk_fetch.errors import (
        ConfigError,
        ConfigUnreadable,
        DatabaseMoved,
        HelpdeskError,
        unexpected,
    )
    from helpdesk_fetch.secrets.redact import redact

    try:
        config = app.config()
    except ConfigUnreadable as exc:  # the check's own set-up (user, path): it sees nothing
        return core.unknown(redact(str(exc)))
    except ConfigError as exc:  # the file every run reads is wrong: every run fails
        return core.critical(f"the accounts file is invalid, every run fails: "
                             f"{redact(str(exc))}")
    try:
        from helpdesk_fetch.store import db

        app.database(read_only=True, say_missing=False)  # said in the check's own line
        with db.errors("cannot read the database"):
            result = core.check(config, max_age=max_age)
        missing = db.missing_sqlite_file(config.settings.database)
        if missing is not None:  # a new installation, or fetch never ran as this user
            result.problems.append(core.Problem(core.State.WARNING,
                                                missing_database_text(missing)))
        return result
    except DatabaseMoved as exc:  # the file every run reads names a database left behind
        return core.critical(f"every run fails: {redact(str(exc))}")
    except HelpdeskError as exc:
        return core.unknown(redact(str(exc)))
    except Exception as exc:  # a plugin must answer; the traceback helps nobody at 3 a.m.
        return core.unknown(redact(unexpected(exc)))


@cli.group()
def probe() -> None:
    """Canary messages: test mail that proves mail sent to each account reaches it.

    \b
    Example:
      helpdesk-fetch probe send
    """


@probe.command("send")
@click.option("--account", "names", multiple=True, metavar="NAME",
              shell_complete=complete_account,
              help="Only this account (repeatable); named accounts are probed even when "
                   "disabled.")
@click.pass_context
@pass_app
def probe_send(app: App, ctx: click.Context, names: tuple[str, ...]) -> None:
    """Send each enabled account a canary through [smtp], to its address. The `fetch` that
    reads it records how long it travelled and deletes it (no ticket); `status` shows it, and
    `check` is CRITICAL when one has not arrived after canary_max_minutes. Run it hourly.

    Prints nothing when all is well (like `fetch`), except at a terminal or with -v. Sends
    nothing while ingest is disabled on this machine. Exit status 1 when a canary could not be
    sent.

    \b
    Examples:
      helpdesk-fetch probe send
      helpdesk-fetch probe send --account helpdesk
      # crontab of the helpdesk user, hourly:
      HELPDESK_FETCH_CONFIG=/etc/helpdesk-fetch/accounts.toml
      0 * * * *  helpdesk-fetch probe send
    """
    from helpdesk_fetch.health import canary

    config = app.config()
    app.database()
    probes = canary.send(config, list(names) or None, tagger=app.tagger())
    chatty = is_tty() or app.verbosity > 0
    if probes is None:
        if chatty:
            note("Ingest is disabled on this machine: no canary sent.", style="bold yellow")
        ctx.exit(0)
    for p in probes:
        if p.sent and chatty:
            note(f"{p.account}: canary sent to {p.address}")
        elif p.address is None and chatty:
            note(f"{p.account}: skipped: {p.problem}", style="yellow")
        elif not p.sent and p.address is not None:
            log.error("%s: canary not sent: %s", account_named(p.account), p.problem)
    ctx.exit(1 if any(p.address and not p.sent for p in probes) else 0)
