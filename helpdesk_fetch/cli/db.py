"""``db``: the database itself; ``db copy`` moves a SQLite database to PostgreSQL."""

from __future__ import annotations

import click

from helpdesk_fetch.cli import App, cli, pass_app
from helpdesk_fetch.cli.render import echo_json, note, table


@cli.group("db")
def db_group() -> None:
    """The ticket database.

    \b
    Example:
      helpdesk-fetch db copy --to postgresql://helpdesk@db.example.com/helpdesk
      helpdesk-fetch db reopen
    """


@db_group.command("copy")
@click.option("--to", "target", required=True, metavar="URL",
              help="The empty PostgreSQL database: postgresql://USER@HOST[:PORT]/DBNAME.")
@click.option("--password-env", metavar="VAR", help="Its password is in this variable.")
@click.option("--password-file", metavar="PATH", help="Its password is in this file (mode 600).")
@click.option("--password-command", metavar="CMD", help="This command prints its password.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def copy(app: App, target: str, password_env: str | None, password_file: str | None,
         password_command: str | None, as_json: bool) -> None:
    """Copy the configured SQLite database into an empty PostgreSQL database and verify it.

    Tickets, messages, raw messages, attachments, source keys, failed messages, the auto-mail
    queue, run history and settings (the ticket-tag secret too) are copied with their ids; the
    ticket-number sequence continues where SQLite stopped. Every table is compared (row counts
    and SHA-256 checksums) before the copy is committed. A database that already holds
    tickets or messages is refused. Ingest must be disabled first (`ingest disable`); a fetch,
    deliver or errors retry still running makes it exit 75: try again once it is done. Then
    point `[settings] database` at the new URL: until then every command refuses the SQLite
    file, marked as copied, so that no mail is stored where the copy never sees it (`db reopen`
    goes back to it). Without a --password-* option, libpq's PGPASSWORD and ~/.pgpass are used.

    \b
    Example:
      helpdesk-fetch ingest disable --reason "moving to PostgreSQL"
      helpdesk-fetch db copy --to postgresql://helpdesk@db.example.com/helpdesk \\
          --password-env HELPDESK_DB_PASSWORD
    """
    from helpdesk_fetch.errors import ConfigError
    from helpdesk_fetch.secrets.passwords import password_from
    from helpdesk_fetch.store.copy import copy_database

    config = app.config()
    settings = config.settings
    try:
        password = password_from(env=password_env, file=password_file,
                                 command=password_command, key_prefix="",
                                 timeout=settings.timeout_seconds)
    except ConfigError as exc:  # an option's, not the accounts file's: named as given
        option = f"--{(exc.key or 'password').replace('_', '-')}"
        raise click.UsageError(f"{option}: {exc.message}") from None
    source = app.database(read_only=True, moved=True, say_missing=False)
    report = copy_database(config, source, target, password=password,
                           timeout=settings.timeout_seconds)
    if report.mark_error is not None:
        note(f"helpdesk-fetch: warning: cannot mark {report.source} as copied "
             f"({report.mark_error}): commands go on using it until [settings] database "
             "names the copy; do not enable ingest before that", style="yellow", err=True)
    if as_json:
        return echo_json({"source": report.source, "target": report.target,
                          "next_ticket_number": report.next_ticket_number, "verified": True,
                          "marked": report.mark_error is None,
                          "tables": [vars(t) for t in report.tables]})
    table(["table", "rows", "sha256"], [[t.table, t.rows, t.sha256[:16]] for t in report.tables],
          title="Copied and verified")
    note(f"Copied {report.source} to {report.target}: {report.rows('ticket')} tickets, "
         f"{report.rows('message')} messages; counts and checksums match. The next ticket "
         f"number is {report.next_ticket_number}.", style="green")
    note(f'Now set [settings] database = "{report.target}" (and database_password_env or '
         "_file or _command), then enable ingest again. Until then every command refuses "
         "the SQLite file, marked as copied (`db reopen` goes back to it).")


@db_group.command("reopen")
@pass_app
def reopen(app: App) -> None:
    """Go on with a SQLite database that `db copy` has copied, instead of the copy.

    After a copy, every command refuses the SQLite file (so that nothing is stored where the
    copy never sees it) until `[settings] database` names the copy. When you stay with SQLite
    after all (the copy is abandoned), this takes that mark away. What is stored from now on
    is in the SQLite file only; a later `db copy` needs an empty database again.

    \b
    Example:
      helpdesk-fetch db reopen
    """
    from helpdesk_fetch.store import db
    from helpdesk_fetch.store.models import Setting

    database = app.database(moved=True, create=False)
    mark = db.moved_to(database)
    if mark is None:
        return note("The database is not marked as copied; nothing to do.")
    with db.errors("cannot write the database"):
        Setting.delete().where(Setting.key == db.MOVED).execute()
    note(f"In use again. The copy at {mark['url']} ({mark['at']}) is not kept up to date: "
         "what is stored from now on is in this database only.", style="green")
