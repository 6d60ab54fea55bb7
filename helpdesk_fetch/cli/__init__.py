"""The command line: parse, call one core function, render, map errors to exit codes (spec §3).

Only this package imports click and rich, and only it exits. Heavy modules (the database, the mail
libraries, rich) are imported inside the commands that need them, so that a cron run with nothing to
do starts fast.
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TextIO

import click

from helpdesk_fetch import __version__
from helpdesk_fetch.errors import HelpdeskError, close_match

if TYPE_CHECKING:
    from helpdesk_fetch.config import Config

log = logging.getLogger(__name__)


@dataclass
class App:
    """What every command shares: where the accounts file is, verbosity, the opened pieces."""

    config_option: str | None = None
    verbosity: int = 0
    _config: Config | None = None
    _database: object = None
    _tagger: object = None
    read_only: bool = field(default=False)

    def config(self, *, reads_mail: bool = False):
        """The accounts file, loaded once; *reads_mail*: the command reads mailboxes, and a
        file without any account is an error for it (spec §2)."""
        from helpdesk_fetch import config

        if self._config is None:
            from helpdesk_fetch.config import dburl
            from helpdesk_fetch.secrets.redact import remember_secret

            self._config = config.load(config.config_path(self.config_option))
            for item in (*self._config.accounts, self._config.smtp):
                if item is not None and item.password:
                    remember_secret(item.password)
            remember_secret(dburl.password(self._config.settings.database) or "")
        return config.require_accounts(self._config) if reads_mail else self._config

    def database(self, *, read_only: bool = False, create: bool = True,
                 say_missing: bool = True, moved: bool = False):
        """The database, opened once (read-only commands never create or migrate it; without
        *create*, a database not created yet is NoDatabase; without *moved*, a SQLite file
        that `db copy` copied is DatabaseMoved). A read-only command on a SQLite file that
        does not exist yet reads an empty database and, unless *say_missing* is false, says
        so on stderr: an empty list is no answer then."""
        if self._database is None:
            from helpdesk_fetch.errors import ConfigError
            from helpdesk_fetch.store.peewee_adapter import import_peewee

            config = self.config()
            import_peewee(config.settings.database)  # for SQLite without psycopg2
            from helpdesk_fetch.store import db

            try:
                self._database = db.open_configured(config.settings, read_only=read_only,
                                                    create=create, moved=moved)
            except ConfigError as exc:  # its password source, its URL: name the file too
                raise exc.in_file(config.path) from None
            missing = db.missing_sqlite_file(config.settings.database) if read_only else None
            if missing is not None and say_missing:
                from helpdesk_fetch.cli.render import note

                note(f"helpdesk-fetch: note: {missing_database_text(missing)}", err=True)
        return self._database

    def say_if_no_accounts(self) -> None:
        """A note on stderr when the accounts file defines no account and that is news (``check``
        says when): `status` and `accounts list` would show an empty system as if all were
        well, where `fetch` refuses the file. After ``database()``."""
        config = self.config()
        if config.accounts:
            return
        from helpdesk_fetch.clock import utcnow
        from helpdesk_fetch.health.check import no_accounts_problem

        problem = no_accounts_problem(config, now=utcnow())
        if problem is not None:
            from helpdesk_fetch.cli.render import note

            note(f"helpdesk-fetch: note: {config.path}: {problem}", err=True)

    def tagger(self):
        if self._tagger is None:
            from helpdesk_fetch.tickets.tags import installation_tagger

            self.database()
            self._tagger = installation_tagger(self.config().settings)
        return self._tagger


pass_app = click.make_pass_decorator(App)


def missing_database_text(path: object) -> str:
    """What a read-only command says of a SQLite database that does not exist yet."""
    return (f"the database {path} does not exist yet: nothing has been fetched into it (the "
            "first `helpdesk-fetch fetch` creates it)")


def complete_account(ctx: click.Context, param, incomplete: str) -> list[str]:
    """Shell completion: the account names of the accounts file in use."""
    from helpdesk_fetch import config

    try:
        path = config.config_path(ctx.find_root().params.get("config_option"))
        return [a.name for a in config.load(path).accounts if a.name.startswith(incomplete)]
    except Exception:  # completion must never print a traceback into the shell
        return []


# Each command's module, imported only when that command runs (or help lists them all): a cron
# run of `fetch` does not pay for the other commands' modules.
SUBCOMMANDS = {"accounts": "accounts", "check": "health", "db": "db", "deliver": "deliver",
               "errors": "errors", "fetch": "fetch", "hooks": "hooks", "ignored": "ignored",
               "ingest": "admin", "probe": "health", "rules": "rules", "status": "admin",
               "tickets": "tickets"}


class Group(click.Group):
    """The top-level group: loads its commands lazily, and turns the core's HelpdeskError into a
    message and the spec's exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in SUBCOMMANDS:
            import importlib  # the module registers its commands on this group

            importlib.import_module(f"{__name__}.{SUBCOMMANDS[name]}")
        return self.commands.get(name)

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        """As click's, naming the command a mistyped one is close to (``ticket list``), as click
        does for the subcommands; it cannot here, where commands are loaded when they run."""
        name = args[0] if args else ""
        if name and name[0] != "-" and name not in SUBCOMMANDS and name not in self.commands \
                and not ctx.resilient_parsing:
            close = close_match(name, self.list_commands(ctx))
            ctx.fail(f"No such command {name!r}." + (f" Did you mean {close!r}?" if close
                                                     else ""))
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(_ARGV, list(args))  # the whole command line, for _misplaced
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HelpdeskError as exc:
            _fail(ctx, exc)
        except click.exceptions.NoSuchOption as exc:
            raise _misplaced(ctx, exc) or exc from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            if not _stdout_gone():
                _crash(ctx)
            _reader_gone(ctx)
        except Exception as exc:  # a database failure outside the paths that expect one
            translated = _database_error(exc)
            if translated is None:
                _crash(ctx)
            _fail(ctx, translated)


_ARGV = "helpdesk_fetch.argv"


def _own_options(command: click.Command) -> dict[str, bool]:
    """The options of *command* (helpdesk-fetch itself): name -> whether it takes a value."""
    return {name: not (param.is_flag or param.count)
            for param in command.params if isinstance(param, click.Option)
            for name in (*param.opts, *param.secondary_opts)}


def _misplaced(ctx: click.Context, exc: click.exceptions.NoSuchOption) -> click.UsageError | None:
    """``helpdesk-fetch fetch -q``: an option of helpdesk-fetch itself after the command
    (as cron lines are often written) is named as such, with the whole command line that works:
    the same words, that option (and its value) moved before the command."""
    argv, own = ctx.meta.get(_ARGV), _own_options(ctx.command)
    if exc.option_name not in own or exc.ctx is None or exc.ctx is ctx or argv is None:
        return None
    command = exc.ctx.command_path[len(ctx.command_path):].split()[0]  # "accounts"
    at = _command_at(argv, command, own)
    found = next((i for i in range(at + 1, len(argv)) if _names(argv[i], exc.option_name)), None)
    if found is None:
        return None
    takes_value = own[exc.option_name] and "=" not in argv[found]
    moved = argv[found:found + (2 if takes_value else 1)]
    rest = argv[:found] + argv[found + len(moved):]
    before = _without(rest[:at], exc.option_name) if own[exc.option_name] else rest[:at]
    fixed = [*ctx.command_path.split(), *before, *moved, *rest[at:]]
    return click.UsageError(f"{exc.option_name} goes before the command:\n  "
                            f"{shlex.join(fixed)}", exc.ctx)


def _without(words: list[str], option: str) -> list[str]:
    """*words* without *option* and its value: given again after the command, that one counts
    (``--config A fetch --config A`` is one --config, not two)."""
    kept, index = [], 0
    while index < len(words):
        if _names(words[index], option):
            index += 1 if "=" in words[index] else 2
        else:
            kept.append(words[index])
            index += 1
    return kept


def _command_at(argv: list[str], command: str, own: dict[str, bool]) -> int:
    """Where *command* stands in *argv* (the values of *own* options before it skipped)."""
    skip = False
    for index, word in enumerate(argv):
        if not skip and word == command:
            return index
        skip = not skip and own.get(word, False)
    return len(argv)


def _names(word: str, option: str) -> bool:
    """Whether *word* of a command line gives *option* (``-vv`` gives -v, ``--config=x``)."""
    if option.startswith("--"):
        return word == option or word.startswith(option + "=")
    return len(word) > 1 and word[0] == "-" and word[1] != "-" and set(word[1:]) == {option[1]}


def _fail(ctx: click.Context, exc: HelpdeskError) -> NoReturn:
    """The one line a failed command prints, and its exit code (spec §3)."""
    from helpdesk_fetch.cli.render import echo

    echo(f"helpdesk-fetch: error: {exc}", err=True)
    ctx.exit(exc.exit_code)


def _stdout_gone() -> bool:
    """Whether what reads stdout has stopped reading: a pipe whose reader has exited (Linux
    reports an error condition on its end), a socket whose peer has gone (hung up)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))
    except (OSError, ValueError):  # no file descriptor (a test's stdout)
        return False


def _reader_gone(ctx: click.Context) -> NoReturn:
    """``tickets list | head``: the reader has all it wanted; no traceback for that, and stdout
    pointed at /dev/null, so that flushing it at exit does not report the broken pipe again.
    Exit 1, as Python's documentation has it: the output was cut short."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    ctx.exit(1)


def _crash(ctx: click.Context) -> NoReturn:
    """A bug of ours: its traceback, through the filter every output goes through (a secret
    or a subject's escape sequence can be part of an exception's text), and exit 1."""
    log.critical("unexpected error (please report it)", exc_info=True)
    ctx.exit(1)


def excepthook(kind, value, traceback) -> None:
    """What escapes even that (an error while the command line is read) is printed the same
    way: ``sys.excepthook`` of the console script."""
    import traceback as tb

    from helpdesk_fetch.cli.render import scrub

    sys.stderr.write(scrub("".join(tb.format_exception(kind, value, traceback))))


def _database_error(exc: Exception) -> HelpdeskError | None:
    """A database driver's failure (locked, unreachable, a dropped connection) as the core's
    DatabaseError; None for anything else. peewee is not imported for it: a command that never
    opened the database cannot have failed in it."""
    peewee = sys.modules.get("peewee")
    if peewee is None or not isinstance(exc, peewee.PeeweeException):
        return None
    from helpdesk_fetch.store import db

    return db.as_database_error(exc)


class _ScrubbingFormatter(logging.Formatter):
    """A log line, with its traceback (-vv, ``deliver``'s unexpected errors), through the one
    output filter (``render.scrub``): no secret, no terminal escape sequence from a message.
    Lines for a *terminal* are folded between words there (``render.fold``)."""

    def __init__(self, fmt: str, *, terminal: TextIO | None = None) -> None:
        super().__init__(fmt)
        self.terminal = terminal

    def format(self, record: logging.LogRecord) -> str:
        from helpdesk_fetch.cli.render import fold, scrub

        record.message = _text(record)
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = scrub(self.formatMessage(record))
        if self.terminal is not None:  # the message only: a traceback's lines stay whole
            text = fold(text, self.terminal)
        if record.exc_info:
            text += "\n" + scrub(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n" + scrub(self.formatStack(record.stack_info))
        return text


class _QuietRepeats(logging.Filter):
    """An account failure that goes on from earlier runs is not news on a stderr that is not a
    terminal (a cron mail per run); the log file and syslog keep every one (spec §11.2)."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute  # set True on such records by the run

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, self.attribute, False)


class _ErrorsAndRecoveries(logging.Filter):
    """-q: records of *level* and above, and those marked *attribute* (spec §11.2: a failure
    reported when it starts is reported when it ends)."""

    def __init__(self, level: int, attribute: str) -> None:
        super().__init__()
        self.level, self.attribute = level, attribute

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or getattr(record, self.attribute, False)


def _text(record: logging.LogRecord) -> str:
    """The record's message; of peewee's query log (-vv) the SQL only, never its values: they
    hold the installation's tag secret (created by the first run, copied by `db copy`) and
    whole messages."""
    if record.name == "peewee" and isinstance(record.msg, tuple) and len(record.msg) == 2:
        return str(record.msg[0])
    return record.getMessage()


SYSLOG_ENV = "HELPDESK_FETCH_SYSLOG_SOCKET"


def setup_logging(verbosity: int, *, log_file: str | None = None, syslog: bool = False) -> None:
    """Warnings and errors to stderr (the cron mail); -v adds each message filed, -vv debugging,
    -vvv the IMAP and POP3 protocol, -q less. Under cron, a failing account is on stderr when it
    starts and when it ends, not in between.

    ``--log-file`` and ``--syslog`` (facility mail; socket ``$HELPDESK_FETCH_SYSLOG_SOCKET``,
    else /dev/log) keep a trail of every message filed, at -v detail or more."""
    from helpdesk_fetch.health import RECOVERED, REPEATED

    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    stderr = _CurrentStderr()
    fmt = "helpdesk-fetch: %(message)s" if verbosity < 2 else "%(asctime)s %(name)s: %(message)s"
    handlers = [_handler(stderr, min(level, logging.WARNING), fmt, terminal=sys.stderr)]
    if level > logging.WARNING:  # -q: errors, and the end of a failure whose start was one
        stderr.addFilter(_ErrorsAndRecoveries(level, RECOVERED))
    if verbosity <= 0 and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        stderr.addFilter(_QuietRepeats(REPEATED))  # under cron: spec §11.2
    trail = min(level, logging.INFO)
    if log_file:
        handlers.append(_handler(_file_handler(log_file), trail,
                                 "%(asctime)s %(levelname)s %(message)s"))
    if syslog:
        handler = _syslog_handler()
        if handler is not None:
            handlers.append(_handler(handler, trail, "helpdesk-fetch[%(process)d]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(min(h.level for h in handlers))
    # The IMAP and POP3 protocol traces only at -vvv; below it, imapclient's own lines
    # ("Connection closed", naming no account: a session opened ahead and dropped) neither.
    logging.getLogger("helpdesk_fetch.sources.pop3.protocol").setLevel(
        logging.NOTSET if verbosity >= 3 else max(level, logging.INFO))
    logging.getLogger("imapclient").setLevel(
        logging.NOTSET if verbosity >= 3 else max(level, logging.WARNING))


class _CurrentStderr(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when each record comes: while fetch's progress display
    runs, rich has put a proxy there that prints the line above the display (a handler that
    kept the stream it was made with would draw over it, and leave a stale bar behind)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # set by StreamHandler.__init__: sys.stderr
        pass


def _handler(handler: logging.Handler, level: int, fmt: str, *,
             terminal: TextIO | None = None) -> logging.Handler:
    handler.setLevel(level)
    handler.setFormatter(_ScrubbingFormatter(fmt, terminal=terminal))
    return handler


def _file_handler(path: str) -> logging.Handler:
    from logging.handlers import WatchedFileHandler  # reopens the file after logrotate

    try:
        return WatchedFileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot open {path}: {exc.strerror}",
                                 param_hint="'--log-file'") from None


def _syslog_handler() -> logging.Handler | None:
    import os
    import socket
    from logging.handlers import SysLogHandler

    address = os.environ.get(SYSLOG_ENV) or "/dev/log"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:  # SysLogHandler itself only complains later, once per line
        probe.connect(address)
    except OSError as exc:  # no syslog daemon: say so, but never stop filing mail for it
        from helpdesk_fetch.cli.render import echo

        echo(f"helpdesk-fetch: warning: --syslog: cannot reach {address}: "
             f"{exc.strerror or exc}", err=True)
        return None
    finally:
        probe.close()
    return SysLogHandler(address=address, facility=SysLogHandler.LOG_MAIL)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]},
             no_args_is_help=True)  # `helpdesk-fetch` alone: the help, not "Missing command"
@click.option("--config", "config_option", metavar="PATH", envvar=None,
              help="The accounts file (default: $HELPDESK_FETCH_CONFIG, else "
                   "~/.config/helpdesk-fetch/accounts.toml, or under $XDG_CONFIG_HOME "
                   "where that is set).")
@click.option("-v", "--verbose", count=True,
              help="Say more: -v each message filed, -vv debugging (with the SQL), -vvv also "
                   "the IMAP and POP3 protocol (passwords masked).")
@click.option("-q", "--quiet", is_flag=True,
              help="Only errors, and the recovery of a failed account.")
@click.option("--log-file", metavar="PATH",
              help="Also log every message filed and every problem to this file.")
@click.option("--syslog", is_flag=True, help="Also log to syslog (facility mail).")
@click.version_option(__version__, prog_name="helpdesk-fetch")
@click.pass_context
def cli(ctx: click.Context, config_option: str | None, verbose: int, quiet: bool,
        log_file: str | None, syslog: bool) -> None:
    """Turn mail from IMAP, POP3 and Maildir mailboxes into helpdesk tickets.

    Run `fetch` from cron; it prints nothing when all is well.

    \b
    Examples:
      helpdesk-fetch --config /etc/helpdesk-fetch/accounts.toml fetch
      helpdesk-fetch --syslog --log-file /var/log/helpdesk-fetch.log fetch
    """
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity, log_file=log_file, syslog=syslog)
    ctx.obj = App(config_option=config_option, verbosity=verbosity)
    if ctx.invoked_subcommand != "fetch":  # fetch resumes it once its run is imported
        from helpdesk_fetch.startup import resume_gc

        resume_gc()


def subcommands(group: click.Group) -> dict[str, click.Command]:
    """A group's commands by name, the lazily loaded ones included (for help, docs and tests)."""
    ctx = click.Context(group)
    return {name: command for name in group.list_commands(ctx)
            if (command := group.get_command(ctx, name)) is not None}


def main() -> None:
    sys.excepthook = excepthook
    try:
        cli(prog_name="helpdesk-fetch")
    finally:
        _before_exit()


def _before_exit() -> None:
    """Close the database, then keep the interpreter's exit from collecting every object the
    command made: its last collections go through all of them, for nothing in a process that
    ends (a fifth of a cron run that finds no mail, issue 18). Closing the database stays
    explicit: the collection would have closed it, and SQLite checkpoints its WAL then."""
    import gc

    models = sys.modules.get("helpdesk_fetch.store.models")
    database = models.database.obj if models is not None else None
    if database is not None:
        try:
            database.close()
        except Exception:  # a transaction left open by a failure: it is rolled back at exit
            log.debug("the database was not closed before exit", exc_info=True)
    gc.freeze()
