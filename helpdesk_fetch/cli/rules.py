"""``rules``: try the [[rules]] of the accounts file on messages, storing and sending nothing."""

from __future__ import annotations

import sys

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import automail_remark, echo_json, hanging, note, printable
from helpdesk_fetch.errors import account_named


@cli.group()
def rules() -> None:
    """The [[rules]] of the accounts file: route, filter and correlate mail by recipient,
    sender, headers and subject. They are checked when the file loads.

    \b
    Example:
      helpdesk-fetch rules test saved-mail.eml
    """


@rules.command("test")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--account", metavar="NAME", shell_complete=complete_account,
              help="Take the messages as mail of this account (default: the first enabled "
                   "one).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def test(app: App, ctx: click.Context, files: tuple[str, ...], account: str | None,
         as_json: bool) -> None:
    """What the rules and the classifier would do with the messages in FILE... (one message
    per file, as saved from a mail program; - reads one from standard input): its kind, the
    rule that decides it, the ticket it would thread to or the resource it would open one in,
    and the auto-mails it would cause. The same as `fetch --dry-run` says; nothing is stored
    or sent. Exit status 1 when a file cannot be read.

    \b
    Examples:
      helpdesk-fetch rules test alert.eml reply.eml
      helpdesk-fetch rules test --account monitoring --json - < alert.eml
    """
    from helpdesk_fetch.ingest import trial as core

    messages, unreadable = _read(files)
    from helpdesk_fetch.ingest.report import Plan

    config = app.config()
    source, trials = core.trial(config, messages, account=account)
    if as_json:
        echo_json([t.as_dict() for t in trials])
    else:
        for t in trials:
            if t.outcome.kind == "failed":
                click.echo(printable(f"{t.name}: would be set aside: {t.outcome.reason}"))
                continue
            which, where = Plan.of(t.outcome, unnamed="(no Message-ID, no subject)").lines()
            click.echo(hanging(printable(f"{t.name}: {which}"), 2))
            click.echo(hanging(printable(where), 5))
        note(f"(as mail of {account_named(source.name)}; nothing was stored or sent)")
        note(automail_remark(config.smtp is not None))
    ctx.exit(1 if unreadable else 0)


def _read(files: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], int]:
    """(name, bytes) of each readable file; unreadable ones are reported on stderr."""
    messages, unreadable = [], 0
    for name in files:
        try:
            if name == "-":
                messages.append((name, sys.stdin.buffer.read()))
            else:
                with open(name, "rb") as handle:
                    messages.append((name, handle.read()))
        except OSError as exc:
            unreadable += 1
            note(f"helpdesk-fetch: error: cannot read {name}: {exc.strerror or exc}", err=True)
    return messages, unreadable
