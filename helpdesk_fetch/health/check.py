"""``check``: a monitoring plugin by the Nagios/Icinga conventions (spec §11.1).

One line, ``HELPDESK-FETCH STATE - summary | perfdata``, and the exit status 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN. Performance data follow the Monitoring Plugins guidelines:
``label=value[UOM];[warn];[crit];[min];[max]``, separated by spaces; ``U`` where a value cannot
be known. The guidelines know no unit for minutes, so the ages carry none and their labels say
what they count.

What is judged:

- CRITICAL: an enabled account has had no successful run for ``max_age`` minutes (or none at
  all), or failed its last 3 finished runs (alerts.failing: a run still going, killed or
  skipped neither breaks nor makes a streak); a canary is overdue; the ingest switch cannot be
  read (every ``fetch`` exits 2 then); the accounts file defines no account although ``fetch``
  ran on this machine in the last 24 hours, or neither an account nor a resource (spec §2).
- WARNING: ingest is disabled on this machine (then no run is expected, and account ages and
  canaries are not judged); messages wait in error folders or quarantine; auto-mails (with
  ``[smtp]``) or hook events (with ``[hooks]``) have been queued for more than 30 minutes;
  hook events were given up after ``max_attempts`` in the last 24 hours.
- UNKNOWN: made by the caller, when the database (or the accounts file) cannot be read.

Without any enabled account (an installation fed by ``deliver`` alone, or every account
disabled) the summary says so, and what was judged, rather than a bare "0 accounts".
"""

from __future__ import annotations

import datetime as dt
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from peewee import ModelSelect, fn

from helpdesk_fetch import state
from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import Account, Config
from helpdesk_fetch.enums import Direction, FailureState, RunOutcome
from helpdesk_fetch.errors import account_named
from helpdesk_fetch.health import alerts, canary, status
from helpdesk_fetch.store.failures import DELIVER_PREFIX
from helpdesk_fetch.store.models import AccountRun, FailedMessage, HookEvent, Message, Outbox
from helpdesk_fetch.store.peewee_adapter import tuples

PREFIX = "HELPDESK-FETCH"
QUEUED_TOO_LONG = dt.timedelta(minutes=30)
RECENT = dt.timedelta(hours=24)  # given-up hook events, and runs of a file now without accounts
FAILED_RUNS = 3  # this many failed runs in a row are CRITICAL at once
ERROR_CHARS = 120  # of an account's last error, in the summary


class State(IntEnum):
    """A plugin's states; the value is its exit status."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Problem:
    state: State
    text: str
    account: str | None = None


@dataclass(frozen=True)
class Metric:
    """One performance datum; *value* None is written ``U`` (cannot be known). Its label is
    *name*, with the account's name after it for a datum of one account ("age_helpdesk")."""

    name: str
    value: float | None
    uom: str = ""
    warn: str = ""
    crit: str = ""
    min: str = "0"
    account: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}_{self.account}" if self.account else self.name

    def text(self) -> str:
        value = "U" if self.value is None else _number(self.value) + self.uom  # "Us": no
        return f"{self.label}={value};{self.warn};{self.crit};{self.min}".rstrip(";")


@dataclass
class Result:
    problems: list[Problem] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    summary_when_ok: str = ""

    @property
    def state(self) -> State:
        return max((p.state for p in self.problems), default=State.OK)

    def summary(self) -> str:
        worst_first = sorted(self.problems, key=lambda p: -p.state)
        text = "; ".join(p.text for p in worst_first) or self.summary_when_ok
        return " ".join(text.replace("|", "/").split())  # "|" would start the perfdata

    def line(self) -> str:
        """The plugin's output: ``HELPDESK-FETCH STATE - summary | perfdata``."""
        perfdata = " ".join(m.text() for m in self.metrics)
        return f"{PREFIX} {self.state.name} - {self.summary()}" + (
            f" | {perfdata}" if perfdata else "")

    def as_dict(self) -> dict[str, Any]:
        """The same as ``line()``, for ``check --json``."""
        return {"state": self.state.name, "exit_code": int(self.state),
                "summary": self.summary(),
                "problems": [{"state": p.state.name, "account": p.account, "text": p.text}
                             for p in self.problems],
                "perfdata": [{"label": m.label, "metric": m.name, "value": m.value,
                              "uom": m.uom,
                              "warn": m.warn or None, "crit": m.crit or None,
                              "min": m.min or None, "account": m.account}
                             for m in self.metrics]}


def unknown(reason: str) -> Result:
    """The result when the check itself cannot look (no database, no accounts file)."""
    return Result([Problem(State.UNKNOWN, reason)])


def critical(reason: str) -> Result:
    """The result when what the check sees stops every run (a broken accounts file)."""
    return Result([Problem(State.CRITICAL, reason)])


def check(config: Config, *, max_age: int, now: dt.datetime | None = None) -> Result:
    """Judge the installation as it is *now* (database opened by the caller)."""
    now = now or utcnow()
    result = Result()
    accounts = [a for a in config.accounts if a.enabled]
    reading = _ingest(config, result)  # no run is expected while ingest is off
    ages = {a.name: _age(_last_success(a.name), now) for a in accounts}
    result.metrics += [Metric("age", age, crit=str(max_age), account=name)
                       for name, age in ages.items()]
    if reading:
        _accounts(ages, result, max_age=max_age)
    _no_accounts(config, result, now=now)
    _canaries(accounts, result, max_minutes=config.settings.canary_max_minutes, now=now,
              judge=reading)
    hour_ago = now - dt.timedelta(hours=1)
    fetched = (AccountRun.select(fn.COALESCE(fn.SUM(AccountRun.fetched), 0))
               .where(AccountRun.started_at > hour_ago).scalar())
    delivered = (Message.select().where((Message.direction == Direction.IN)
                                        & Message.account.startswith(DELIVER_PREFIX)
                                        & (Message.received_at > hour_ago)).count())
    result.metrics += [Metric("fetched_1h", fetched), Metric("delivered_1h", delivered)]
    _waiting(config, result, now=now)
    _deliver_failing(config, result, max_age=max_age, now=now)
    result.summary_when_ok = _summary(config, accounts, max_age=max_age, fetched=fetched,
                                      delivered=delivered)
    return result


def _summary(config: Config, accounts: list[Account], *, max_age: int, fetched: int,
             delivered: int) -> str:
    """What an OK judged: the accounts, or that there are none to judge and why."""
    piped = f", {delivered} piped in by deliver" if delivered else ""
    if accounts:
        return (f"{len(accounts)} enabled account{'' if len(accounts) == 1 else 's'} fetched "
                f"within {max_age} min, {fetched} message{'' if fetched == 1 else 's'} in the "
                f"last hour{piped}")
    disabled = len(config.accounts)
    what = (f"no enabled account ({disabled} disabled): no mailbox is read" if disabled
            else "no [[accounts]]: mail comes by deliver only")
    return (f"{what}; {delivered} message{'' if delivered == 1 else 's'} delivered in the "
            "last hour, error folders, quarantine and queues checked")


def _no_accounts(config: Config, result: Result, *, now: dt.datetime) -> None:
    problem = no_accounts_problem(config, now=now)
    if problem is not None:
        result.problems.append(Problem(State.CRITICAL, problem))


def no_accounts_problem(config: Config, *, now: dt.datetime) -> str | None:
    """Spec §2: a file without any account stops every fetch (exit 2). That is news when fetch
    ran on this machine lately (the file was cut short, or --config names the wrong one; a
    machine that only pipes mail into a PostgreSQL database other machines fetch into is
    fine), and when nothing could come in at all: no account, and no resource for deliver
    either. None when the file defines an account, or that is no news."""
    if config.accounts:
        return None
    ran = [name for name, in tuples(AccountRun.select(AccountRun.account).distinct()
                                     .where((AccountRun.started_at > now - RECENT)
                                            & (AccountRun.host == socket.gethostname()))
                                     .order_by(AccountRun.account))]
    if ran:
        return (f"the accounts file defines no [[accounts]] table, yet fetch read "
                f"{', '.join(ran)} here in the last 24 h: every fetch now fails (exit 2); is "
                "the file cut short, or the wrong one?")
    if not config.resources:
        return ("the accounts file defines no [[accounts]] and no [[resources]]: no mail can "
                "be fetched or delivered; is it empty, cut short, or the wrong file?")
    return None


def _deliver_failing(config: Config, result: Result, *, max_age: int,
                     now: dt.datetime) -> None:
    """``deliver`` failing for a target since its last success there: the MTA keeps the mail
    and bounces it after its queue lifetime (days), so it is CRITICAL once it has lasted
    --max-age minutes (an MTA retries a deferred message within minutes: a passing failure
    clears itself); a record that cannot be read is CRITICAL too."""
    for failing in state.deliver_failing(config.settings.state_dir,
                                         status.deliver_targets(config)):
        critical = True
        if since := failing.get("since"):
            began = dt.datetime.fromisoformat(since).astimezone(dt.UTC).replace(tzinfo=None)
            critical = (now - began).total_seconds() / 60 >= max_age
        result.problems.append(Problem(
            State.CRITICAL if critical else State.WARNING,
            f"{state.deliver_failing_text(failing)}, the MTA keeps the mail: "
            f"{_shorter(str(failing.get('reason')))}"))


def _ingest(config: Config, result: Result) -> bool:
    """Judge the ingest switch; whether mailboxes are read on this machine."""
    switch = state.switch_report(config.settings.state_dir)
    if switch["ingest_switch_error"]:
        result.problems.append(Problem(State.CRITICAL, f"{switch['ingest_switch_error']}; "
                                                       "fetch reads no mailbox"))
        return False
    if switch["ingest_disabled"]:
        info: Mapping[str, object] = switch["ingest_switch"] or {}
        why = f": {info['reason']}" if info.get("reason") else ""
        result.problems.append(Problem(State.WARNING, f"ingest disabled on this machine since "
                                                      f"{info.get('disabled_at') or '?'} by "
                                                      f"{info.get('by') or '?'}{why}"))
        return False
    return True


def _accounts(ages: dict[str, float | None], result: Result, *, max_age: int) -> None:
    """Each account's age since its last success, and its failures in a row."""
    for name, age in ages.items():
        wrong = []
        if age is None:
            wrong.append("no successful run recorded")
        elif age > max_age:  # as the perfdata threshold reads: 15 is OK, 15.1 not
            wrong.append(f"no successful run for {math.floor(age)} min")
        streak = alerts.failing(name)  # finished runs only
        if streak is not None and streak.runs >= FAILED_RUNS:
            wrong.append(f"failed its last {streak.runs} runs")
        if wrong:
            error = _last_error(name) if streak is not None else None
            if error and error.startswith(prefix := f"{account_named(name)}: "):
                error = error.removeprefix(prefix)  # the summary names it already
            said = f": {_shorter(error)}" if error else ""
            result.problems.append(Problem(State.CRITICAL, f"{name}: {', '.join(wrong)}{said}",
                                           name))


def _last_error(account: str) -> str | None:
    """What the account's latest failed run said."""
    error: str | None = (AccountRun.select(AccountRun.error)
                         .where((AccountRun.account == account)
                                & (AccountRun.outcome == RunOutcome.FAILED))
                         .order_by(AccountRun.id.desc()).limit(1).scalar())
    return error


def _last_success(account: str) -> dt.datetime | None:
    last: dt.datetime | None = (
        AccountRun.select(fn.MAX(AccountRun.finished_at))
        .where((AccountRun.account == account) & (AccountRun.outcome == RunOutcome.OK))
        .scalar())
    return last


def _age(when: dt.datetime | None, now: dt.datetime) -> float | None:
    """Minutes from *when* to *now*, to a tenth."""
    return None if when is None else round(max(0.0, (now - when).total_seconds()) / 60, 1)


def _canaries(accounts: list[Account], result: Result, *, max_minutes: int,
              now: dt.datetime, judge: bool) -> None:
    """Each account's last canary travel time; with *judge*, the overdue canaries."""
    late = canary.overdue(now, max_minutes) if judge else {}
    last = canary.last_by_account()
    for account in accounts:
        if account.name in late:
            sent, error = late[account.name].sent_at, late[account.name].error
            minutes = math.floor(_age(sent, now) or 0)  # a time: never None
            what = (f"could not be sent: {_shorter(error)}" if error else
                    f"has not arrived (canary_max_minutes {max_minutes})")
            verb = "tried" if error else "sent"
            result.problems.append(Problem(
                State.CRITICAL, f"{account.name}: the canary {verb} {minutes} min ago "
                                f"({isoformat(sent)}) {what}", account.name))
        if account.name in last:  # once canaries are sent, always in the label set:
            # U while the latest is on its way or lost, so that a graph shows the gap
            result.metrics.append(Metric("canary", last[account.name]["travel_seconds"],
                                         uom="s", account=account.name))


def _waiting(config: Config, result: Result, *, now: dt.datetime) -> None:
    """Failed messages waiting; auto-mails and hook events queued for too long; hook events
    given up lately."""
    failed = FailedMessage.select().where(FailedMessage.state == FailureState.PENDING).count()
    if failed:
        result.problems.append(Problem(State.WARNING, f"{failed} message"
                                       f"{' waits' if failed == 1 else 's wait'} in error "
                                       "folders or quarantine (errors list)"))
    result.metrics.append(Metric("failed_messages", failed, warn="0"))
    unsent = Outbox.select().where(Outbox.sent_at.is_null() & Outbox.failed_at.is_null())
    result.metrics.append(Metric("outbox", unsent.count()))
    if config.smtp is not None:
        _queued_too_long(result, unsent.where(Outbox.created_at < now - QUEUED_TOO_LONG),
                         "auto-mail")
    events = HookEvent.select().where(HookEvent.delivered_at.is_null()
                                      & HookEvent.failed_at.is_null())
    result.metrics.append(Metric("hook_events", events.count()))
    if config.hooks is not None:
        _queued_too_long(result, events.where(HookEvent.created_at < now - QUEUED_TOO_LONG),
                         "hook event")
        _given_up(result, config.hooks.command[0], since=now - RECENT)


def _given_up(result: Result, command: str, *, since: dt.datetime) -> None:
    """Hook events dropped after max_attempts since *since*: lost to *command* for good."""
    rows = tuples(HookEvent.select(HookEvent.event, fn.COUNT(HookEvent.id))
                  .where(HookEvent.failed_at > since)
                  .group_by(HookEvent.event).order_by(HookEvent.event))
    counts = dict(rows)
    total = sum(counts.values())
    if total:
        kinds = ", ".join(f"{count} {event}" for event, count in counts.items())
        result.problems.append(Problem(
            State.WARNING, f"{total} hook event{' was' if total == 1 else 's were'} given up "
                           f"after max_attempts in the last 24 h, never delivered to the hook "
                           f"{command} ({kinds}; hooks list shows why, hooks retry --all runs them "
                           f"again)"))


def _queued_too_long(result: Result, query: ModelSelect[Any], what: str) -> None:
    count = query.count()
    if count:
        result.problems.append(Problem(State.WARNING, f"{count} {what}{'' if count == 1 else 's'}"
                                       f" queued for more than 30 min"))


def _shorter(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 3] + "..."


def _number(value: float) -> str:
    """A number as the guidelines want it: digits, a point, no exponent."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
