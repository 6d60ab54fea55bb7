"""Running queued hook events after commit (spec §12).

One process per event: the ``[hooks]`` command as an argv (no shell), the event as JSON on its
standard input, in the accounts file's directory. Exit 0 delivers the event. Anything else, and a
command that is still running after ``timeout_seconds`` (its whole process group is killed), is a
failed attempt: later runs try again after 2, 4, 8 ... minutes, until ``max_attempts``.

In order per ticket: an event runs only when no earlier event of its ticket is still waiting, so
a command never hears "replied" before "created". At least once: an event is claimed for one
process with a lease (two runs never run it at the same time); a process that dies after the
command exited 0 but before recording it leaves the claim to expire, and a later run runs the
event again. Commands should therefore be idempotent; the event's ``id`` helps.

The command's environment is this process's, without any secret the tool knows of (see
``environment``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import IO

from peewee import ModelSelect

from helpdesk_fetch.clock import retry_delay, utcnow
from helpdesk_fetch.config import Config, Hooks
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.secrets.redact import is_secret
from helpdesk_fetch.store.models import HookEvent
from helpdesk_fetch.store.peewee_adapter import tuples

log = logging.getLogger(__name__)

LEASE_MARGIN = dt.timedelta(minutes=1)  # beyond timeout_seconds: start-up, recording
ERROR_TAIL = 500  # characters of the command's stderr kept as the reason of a failure
SECRET_PREFIXES = ("HELPDESK_",)  # our variables; the sample's password variables are named so
LIBPQ_SECRETS = ("PGPASSWORD",)  # read by the database driver when no password source is set


@dataclass
class HookReport:
    """What one pass over the hook queue did."""

    delivered: int = 0
    failed: int = 0  # attempts that failed (retried later, unless given up)
    given_up: int = 0  # of those, events that reached max_attempts
    waiting: int = 0  # not run now: not due yet, or behind an earlier event of their ticket


def ticket_number(row: HookEvent) -> str | None:
    """The number of the event's ticket, as its payload gives it to the command."""
    number: str | None = (json.loads(row.payload).get("ticket") or {}).get("number")
    return number


def pending() -> ModelSelect[HookEvent]:
    """Events neither delivered nor given up."""
    return HookEvent.select().where(HookEvent.delivered_at.is_null()
                                    & HookEvent.failed_at.is_null())


def run_due(config: Config, *, deadline: float | None = None, asked: bool = False) -> HookReport:
    """Run every due event whose ticket has no earlier event waiting, oldest first; stop
    starting new ones after *deadline* (``time.monotonic()``). Never raises for the command.
    *asked*: by ``hooks retry``, which says itself what became of each event (an event given
    up is then logged at info, not as the error that points to ``hooks retry``)."""
    report = HookReport()
    hooks = config.hooks
    if hooks is None:
        return report
    blocked: set[int] = set()  # tickets with an earlier event still waiting
    rows = list(tuples(pending().select(HookEvent.id, HookEvent.ticket, HookEvent.next_attempt_at)
                       .order_by(HookEvent.id)))
    for event_id, ticket_id, due_at in rows:
        if deadline is not None and time.monotonic() > deadline:
            break
        if ticket_id in blocked or due_at > utcnow() or not _claim(event_id, due_at, hooks):
            report.waiting += 1
        elif _attempt(config, hooks, event_id, report, asked=asked):
            continue
        if ticket_id is not None:  # an event of no ticket holds nothing up
            blocked.add(ticket_id)
    return report


def _claim(event_id: int, due_at: dt.datetime, hooks: Hooks) -> bool:
    """Take the event for this process (a lease: should it die, the event is due again when
    the lease ends); False when another process took it or finished it first."""
    lease = dt.timedelta(seconds=hooks.timeout_seconds) + LEASE_MARGIN
    taken: int = (HookEvent.update(next_attempt_at=utcnow() + lease)
             .where((HookEvent.id == event_id) & (HookEvent.next_attempt_at == due_at)
                    & HookEvent.delivered_at.is_null() & HookEvent.failed_at.is_null())
             .execute())
    return taken == 1


def _attempt(config: Config, hooks: Hooks, event_id: int, report: HookReport, *,
             asked: bool = False) -> bool:
    """Run the claimed event once and record the result; True when it was delivered."""
    row = HookEvent.get_by_id(event_id)
    stdin = json.dumps({"event": row.event, "id": row.id, **json.loads(row.payload)},
                       ensure_ascii=False).encode("utf-8") + b"\n"
    env = environment(config, {"HELPDESK_FETCH_EVENT": row.event,
                               "HELPDESK_FETCH_EVENT_ID": str(row.id)})
    error = execute(hooks, stdin, env=env, cwd=str(config.directory.resolve()))
    if error is None:
        crashpoint("after_hook_run")
        row.attempts += 1
        row.delivered_at, row.last_error = utcnow(), None
        row.save()
        report.delivered += 1
        log.info("hook: event %d (%s) delivered", row.id, row.event)
        return True
    _failed(row, error, hooks, report, asked=asked)
    return False


def _failed(row: HookEvent, error: str, hooks: Hooks, report: HookReport, *,
            asked: bool = False) -> None:
    row.attempts += 1
    row.last_error = error
    report.failed += 1
    if row.attempts >= hooks.max_attempts:
        row.failed_at = utcnow()
        report.given_up += 1
        # An error: the event is lost to the command for good; every failed attempt before
        # was logged at info only (the trail), so that a command that is down for an hour does
        # not fill the cron mail. `hooks retry` says it itself.
        number = ticket_number(row) or "?"
        log.log(logging.INFO if asked else logging.ERROR,
                "hook: event %d (%s of ticket %s) given up after %d attempt%s: %s; once the "
                "command works, run it again: helpdesk-fetch hooks retry %d", row.id, row.event,
                number, row.attempts, "" if row.attempts == 1 else "s", error, row.id)
    else:
        row.next_attempt_at = utcnow() + retry_delay(row.attempts)
        log.info("hook: event %d (%s) failed (attempt %d of %d), retried from %s: %s", row.id,
                 row.event, row.attempts, hooks.max_attempts,
                 row.next_attempt_at.isoformat(timespec="seconds"), error)
    row.save()


def execute(hooks: Hooks, stdin: bytes, *, env: dict[str, str], cwd: str) -> str | None:
    """Run the command with *stdin*; None when it exited 0, else what went wrong.

    Its output is never read into memory whole: stdout goes nowhere, stderr into a temporary
    file whose end becomes the reason of a failure. The command leads a process group of its
    own, so that a timeout kills whatever it started too."""
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(list(hooks.command), stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=errors, env=env,
                                       cwd=cwd, start_new_session=True)
        except OSError as exc:
            return f"cannot run {hooks.command[0]}: {exc.strerror or exc}"
        try:
            process.communicate(stdin, timeout=hooks.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return (f"still running after timeout_seconds ({hooks.timeout_seconds} s); its "
                    "process group was killed")
        if process.returncode == 0:
            return None
        status = (f"killed by signal {-process.returncode}" if process.returncode < 0
                  else f"exited with status {process.returncode}")
        said = _tail(errors)
        return f"{status}: {said}" if said else status


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended in the meantime
        pass
    process.wait()


def _tail(file: IO[bytes]) -> str:
    """The last ERROR_TAIL characters of what the command wrote to stderr, on one line."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - ERROR_TAIL * 4))
    text = file.read().decode("utf-8", "replace")
    return " ".join(text.split())[-ERROR_TAIL:]


def environment(config: Config, extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any secret the tool knows of, plus *extra*.

    Removed: every variable the accounts file names (``password_env``, ``database_password_env``
    and any other ``*_env`` key, of any table), every ``HELPDESK_*`` variable, ``PGPASSWORD``,
    and any variable whose value is a secret this process has read. Added:
    ``HELPDESK_FETCH_CONFIG`` (the accounts file, so that the command can ask ``helpdesk-fetch``
    about the ticket) and *extra*."""
    named = set(named_variables(config))
    kept = {name: value for name, value in os.environ.items()
            if name not in named and name not in LIBPQ_SECRETS
            and not name.startswith(SECRET_PREFIXES) and not is_secret(value)}
    return {**kept, "HELPDESK_FETCH_CONFIG": str(config.path.resolve()), **extra}


def named_variables(config: Config) -> list[str]:
    """The environment variables the accounts file names (the values of its ``*_env`` keys)."""
    tables = [config.settings, config.smtp, *config.accounts]
    return [value for table in tables if table is not None
            for field in dataclasses.fields(table) if field.name.endswith("_env")
            if (value := getattr(table, field.name))]
