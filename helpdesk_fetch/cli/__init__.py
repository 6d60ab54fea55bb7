"""The command line: parse, call one core function, render, map errors to exit codes (spec §3).

Only this package imports click and rich, and only it exits. Heavy modules (the database, the mail
libraries, rich) are imported inside the commands that need them, so that a cron run with nothing to
do starts fast.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import click

from helpdesk_fetch import __version__
from helpdesk_fetch.errors import HelpdeskError


@dataclass
class App:
    """What every command shares: where the accounts file is, verbosity, the opened pieces."""

    config_option: str | None = None
    verbosity: int = 0
    _config: object = None
    _database: object = None
    _tagger: object = None
    read_only: bool = field(default=False)

    def config(self):
        if self._config is None:
            from helpdesk_fetch import auth, config

            self._config = config.load(config.config_path(self.config_option))
            for item in (*self._config.accounts, self._config.smtp):
                if item is not None and item.password:
                    auth.remember_secret(item.password)
            auth.remember_secret(urlsplit(self._config.settings.database).password or "")
        return self._config

    def database(self, *, read_only: bool = False):
        """The database, opened once (read-only commands never create or migrate it)."""
        if self._database is None:
            from helpdesk_fetch import db

            self._database = db.open_configured(self.config().settings, read_only=read_only)
        return self._database

    def tagger(self):
        if self._tagger is None:
            from helpdesk_fetch import db
            from helpdesk_fetch.threads import Tagger

            self.database()
            self._tagger = Tagger(db.setting("tag_secret") or "", self.config().settings)
        return self._tagger


pass_app = click.make_pass_decorator(App)


class Group(click.Group):
    """A group that turns the core's HelpdeskError into a message and the spec's exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HelpdeskError as exc:
            from helpdesk_fetch.auth import redact

            click.echo(f"helpdesk-fetch: error: {redact(str(exc))}", err=True)
            ctx.exit(exc.exit_code)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from helpdesk_fetch.auth import redact

        record.msg = redact(record.getMessage())
        record.args = None
        return True


def setup_logging(verbosity: int) -> None:
    """Warnings and errors to stderr (the cron mail); -v adds progress, -vv debugging, -q less."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactingFilter())
    fmt = "helpdesk-fetch: %(message)s" if verbosity < 2 else "%(asctime)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbosity < 3:  # imaplib's protocol trace only at -vvv
        logging.getLogger("imapclient").setLevel(max(level, logging.INFO))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", metavar="PATH", envvar=None,
              help="The accounts file (default: $HELPDESK_FETCH_CONFIG, else "
                   "~/.config/helpdesk-fetch/accounts.toml).")
@click.option("-v", "--verbose", count=True, help="Say more: -v progress, -vv debugging.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.version_option(__version__, prog_name="helpdesk-fetch")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, verbose: int, quiet: bool) -> None:
    """Turn mail from IMAP, POP3 and Maildir mailboxes into helpdesk tickets.

    Run `fetch` from cron; it prints nothing when all is well.

    \b
    Example:
      helpdesk-fetch --config /etc/helpdesk-fetch/accounts.toml fetch
    """
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity)
    ctx.obj = App(config_option=config_option, verbosity=verbosity)


def main() -> None:
    cli(prog_name="helpdesk-fetch")


# The commands register themselves on import.
from helpdesk_fetch.cli import accounts, admin, db, fetch, tickets  # noqa: E402, F401
