"""One run: accounts -> messages -> parse -> thread -> rules -> store -> delete (spec §4).

Store first, delete second: a message is deleted from its mailbox only after the transaction that
stored it has committed (a group of messages, each in a savepoint: store/group.py). A message
that cannot be ingested is recorded, then set aside, and never blocks the others; an account that
cannot be processed is reported and skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from helpdesk_fetch import interrupts, state
from helpdesk_fetch.clock import from_timestamp
from helpdesk_fetch.config import Account, Config
from helpdesk_fetch.enums import Action, RunOutcome
from helpdesk_fetch.errors import (
    AccountBusy,
    ConfigError,
    DatabaseError,
    IngestSwitchedOff,
    MailboxError,
    ParserUnavailable,
    SetAsideRefused,
    account_named,
)
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.health import alerts
from helpdesk_fetch.ingest.ahead import limits
from helpdesk_fetch.ingest.pipeline import (
    CANARY,
    DUPLICATE,
    FAILED,
    Outcome,
    Pipeline,
    Prepared,
    Source,
)
from helpdesk_fetch.secrets.redact import redact
from helpdesk_fetch.sources.base import Mailbox, MessageActions, MessageRef, batches, set_aside
from helpdesk_fetch.sources.open import open_mailbox
from helpdesk_fetch.store import db, failures, write

if TYPE_CHECKING:
    from helpdesk_fetch.automail.outbox import SendReport
    from helpdesk_fetch.hooks.runner import HookReport
    from helpdesk_fetch.ingest.ahead import Ahead
    from helpdesk_fetch.ingest.report import Plan
    from helpdesk_fetch.message.parse import ParsedMessage
    from helpdesk_fetch.state import IngestSwitch
    from helpdesk_fetch.store.group import CommitGroup

log = logging.getLogger(__name__)


@dataclass
class AccountReport:
    """What one account's part of a run did."""

    account: str
    outcome: RunOutcome = RunOutcome.OK
    # Every message the run took on, downloaded or not (canaries aside): it adds up to
    # new_tickets + threaded + rejected + duplicates + ignored + errors.
    fetched: int = 0
    new_tickets: int = 0
    threaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    ignored: int = 0  # opened no ticket (spec §9.4)
    rule_counts: dict[str, int] = field(default_factory=dict)  # [[rules]] name -> messages
    errors: int = 0
    error: str | None = None
    failing: alerts.Streak | None = None  # the account's failures before this run (spec §11.2)
    config_error: bool = False  # the account failed because of its configuration (exit 2)
    failures: list[str] = field(default_factory=list)  # one line per message set aside
    actions: list[Plan] = field(default_factory=list)  # what --dry-run would have done
    started_at: float = field(default_factory=time.time)
    seconds: float = 0.0
    run_id: int | None = None  # its AccountRun row, written when the run took the account

    @property
    def stored(self) -> int:
        """Messages this run stored (on new or existing tickets, or as ignored mail: deleted
        from the server too)."""
        return self.new_tickets + self.threaded + self.rejected + self.ignored


@dataclass
class RunReport:
    accounts: list[AccountReport] = field(default_factory=list)
    ingest_disabled: IngestSwitch | None = None
    database_error: str | None = None
    automail: object = None  # outbox.SendReport of this run
    interrupted: bool = False  # Ctrl-C or SIGTERM: the run stopped where it was
    hooks: object = None  # hooks.runner.HookReport of this run

    @property
    def exit_code(self) -> int:
        """Spec §3: 0 processed, 1 an account failed, 2 an account's configuration is wrong
        (e.g. a password file others can read), 75 every selected account was busy."""
        if self.ingest_disabled is not None:
            return 0
        if any(a.config_error for a in self.accounts):
            return 2
        if self.database_error or any(a.outcome == RunOutcome.FAILED for a in self.accounts):
            return 1
        if self.accounts and all(a.outcome == RunOutcome.BUSY for a in self.accounts):
            return 75
        return 0


class ProgressEvents(Protocol):
    """What receives the events of a run: ``Progress``, or the CLI's display at a terminal."""

    def account_started(self, account: str, count: int, size: int, aside: int) -> None:
        """*count* messages of *size* bytes to fetch; *aside* set aside unread before."""

    def message_done(self, account: str, size: int) -> None: ...

    def account_finished(self, report: AccountReport) -> None: ...


class Progress:
    """Receives events during a run; the CLI shows them on a terminal. This one shows nothing."""

    def account_started(self, account: str, count: int, size: int, aside: int) -> None:
        pass

    def message_done(self, account: str, size: int) -> None:
        pass

    def account_finished(self, report: AccountReport) -> None:
        pass


def fetch(config: Config, *, names: list[str] | None = None, dry_run: bool = False,
          progress: ProgressEvents | None = None, ahead: Ahead | None = None) -> RunReport:
    """One pass over the selected accounts. *ahead*: the first one's mailbox, being opened
    (ingest/ahead.py); logged out unused when the run does not get to take it."""
    try:
        return _fetch(config, names=names, dry_run=dry_run, progress=progress, ahead=ahead)
    finally:
        if ahead is not None:
            ahead.discard()


def _fetch(config: Config, *, names: list[str] | None, dry_run: bool,
           progress: ProgressEvents | None, ahead: Ahead | None) -> RunReport:
    accounts = config.selected_accounts(names)
    switch = state.ingest_switch(config.settings.state_dir)
    if switch is not None:
        log.info("ingest is disabled (%s); no mailbox is read", switch.get("reason") or "no reason")
        return RunReport(ingest_disabled=switch)
    run = Run(config, dry_run=dry_run, progress=progress or Progress(), ahead=ahead)
    report = RunReport()
    try:
        run.open()
        for account in accounts:
            report.accounts.append(run.account(account))
            if report.accounts[-1].outcome == RunOutcome.INTERRUPTED:
                report.interrupted = True
                return report  # nothing more: whoever interrupted wants it to end
        run.prune()
        if not dry_run:
            report.automail = send_automails(config, deadline=run.deadline)
            alerts.mail(config, run.news)
            report.hooks = run_hooks(config, deadline=run.deadline)
    except DatabaseError as exc:
        log.error("%s; the run stopped, and messages not stored stay on their server for the "
                  "next run", exc)
        report.database_error = str(exc)
    except KeyboardInterrupt:  # between accounts: what was stored is committed
        report.interrupted = True
    finally:
        run.close()
    return report


def send_automails(config: Config, *, deadline: float | None = None,
                   news: bool = True) -> SendReport | None:
    """Send the queued auto-mails that are due (after the ticket changes have committed);
    None without an [smtp] section. *news*: see ``outbox.send_due``."""
    if config.smtp is None:  # nothing is ever queued: not even smtplib is imported
        return None
    from helpdesk_fetch.automail import outbox

    with db.errors("cannot send auto-mails"):
        return outbox.send_due(config, deadline=deadline, news=news)


def run_hooks(config: Config, *, deadline: float | None = None) -> HookReport | None:
    """Run the queued hook events that are due (after the ticket changes have committed);
    None without a [hooks] section."""
    if config.hooks is None:  # then nothing is queued
        return None
    from helpdesk_fetch.hooks import runner

    with db.errors("cannot run hooks"):
        return runner.run_due(config, deadline=deadline)


class Run:
    """The state one run shares across its accounts."""

    def __init__(self, config: Config, *, dry_run: bool, progress: ProgressEvents,
                 ahead: Ahead | None = None) -> None:
        self.config = config
        self.ahead = ahead
        self.settings = config.settings
        self.dry_run = dry_run
        self.progress = progress
        self.deadline = time.monotonic() + self.settings.run_budget_seconds
        self.host = socket.gethostname()
        self.news: list[alerts.News] = []  # accounts that started failing or recovered

    def open(self) -> None:
        self.pipeline = Pipeline(self.config, dry_run=self.dry_run)

    def close(self) -> None:
        if hasattr(self, "pipeline"):
            self.pipeline.close()

    def prune(self) -> None:
        """Keep the run history to ``history_days``, ignored mail to ``ignored_days``."""
        if not self.dry_run:
            self.pipeline.call_db(write.prune_history, self.settings.history_days)
            self.pipeline.call_db(write.prune_ignored, self.settings.ignored_days)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def account(self, account: Account) -> AccountReport:
        report = AccountReport(account.name,
                               outcome=RunOutcome.DRY_RUN if self.dry_run else RunOutcome.OK)
        if self.remaining() <= 0:
            self._skip(account, report)
            return report
        try:
            with self._lock(account):
                if not self.dry_run:  # read under the lock: no other run records meanwhile
                    report.failing = self.pipeline.call_db(alerts.failing, account.name)
                self._begin(report)
                self._account(account, report)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI turns it into this)
            report.outcome = RunOutcome.INTERRUPTED
            report.error = (f"interrupted after storing {report.stored} messages; the rest "
                            "stays on the server for the next run")
        except AccountBusy as exc:
            _busy(report, exc)
        except (MailboxError, ParserUnavailable) as exc:
            _failed(report, exc)
        except ConfigError as exc:  # e.g. a password source: name the accounts file too
            _failed(report, exc.in_file(self.config.path))
        if self.ahead is not None and self.ahead.is_for(account):  # busy, switched off: unused
            self.ahead.discard()
        report.seconds = time.time() - report.started_at
        self.progress.account_finished(report)
        if not self.dry_run and report.outcome != RunOutcome.BUSY:  # a dry run writes nothing
            self._record(report)
            self._news(report)
        return report

    def _lock(self, account: Account) -> contextlib.AbstractContextManager[None]:
        """The account's lock (AccountBusy when another run holds it); none for a dry run."""
        if self.dry_run:
            return contextlib.nullcontext()
        return state.account_lock(account.name, state_dir=self.settings.state_dir,
                                  database=self.pipeline.database)

    def _skip(self, account: Account, report: AccountReport) -> None:
        """The budget is used up before *account*: it is skipped, and its history says so
        (``status``), unless another run holds it: then it is that run's account, not
        skipped, and that run records it."""
        try:
            with self._lock(account):
                report.outcome, report.error = (RunOutcome.SKIPPED,
                                                "the run's time budget was used up")
                log.warning("%s: skipped, run_budget_seconds used up", account_named(account.name))
                if not self.dry_run:  # recorded under the lock, as a run of its own would be
                    self._record(report)
        except AccountBusy as exc:
            _busy(report, exc)

    def _news(self, report: AccountReport) -> None:
        """Spec §11.2: a failure is news when it starts (logged by _failed) and when it ends."""
        if report.outcome == RunOutcome.FAILED and report.failing is None:
            self.news.append(alerts.News(report.account, error=report.error))
        elif report.outcome == RunOutcome.OK and report.failing is not None:
            news = alerts.News(report.account, streak=report.failing)
            log.warning("%s", alerts.recovered_text(news), extra={alerts.RECOVERED: True})
            self.news.append(news)

    def _account(self, account: Account, report: AccountReport) -> None:
        if not self.dry_run and state.ingest_switch(self.settings.state_dir) is not None:
            raise IngestSwitchedOff("ingest was disabled during this run")  # e.g. for db copy
        if self.ahead is not None and self.ahead.is_for(account):  # opened while we started
            opened = self.ahead.take()
        else:
            timeout, deadline, why = limits(self.config, account, self.remaining())
            opened = open_mailbox(account, settings=self.settings, timeout=timeout,
                                  dry_run=self.dry_run, deadline=deadline, why=why)
        with opened as box:
            if box.announced:
                self._start_parser()
            MailboxRun(self, account, box, report).process()

    def _start_parser(self) -> None:
        """Start the parse worker now, so that its start-up (~0.1 s) overlaps the listing of
        the mail the server announced. Ahead of need: if it cannot start, it is started again
        where a message needs it, and that reports why (the mail may all be stored already)."""
        try:
            self.pipeline.parser.start()
        except ParserUnavailable:
            log.debug("the parse worker could not start ahead", exc_info=True)

    def _begin(self, report: AccountReport) -> None:
        """The run's row, written as it takes the account: a run that dies is seen as such."""
        if not self.dry_run:
            report.run_id = self.pipeline.call_db(
                write.begin_run, report.account, host=self.host,
                started_at=from_timestamp(report.started_at))

    def _record(self, report: AccountReport) -> None:
        with db.errors("cannot record the run"):
            write.finish_run(
                report.run_id, account=report.account,
                started_at=from_timestamp(report.started_at), outcome=report.outcome,
                fetched=report.fetched, new_tickets=report.new_tickets,
                threaded=report.threaded, rejected=report.rejected,
                duplicates=report.duplicates, ignored=report.ignored,
                rule_counts=json.dumps(report.rule_counts), errors=report.errors,
                error=report.error, host=self.host)


def _busy(report: AccountReport, exc: AccountBusy) -> None:
    report.outcome = RunOutcome.BUSY
    log.info("%s: skipped, %s", account_named(report.account), exc if isinstance(
        exc, IngestSwitchedOff) else "another run is processing it")


def _failed(report: AccountReport,
            exc: MailboxError | ConfigError | ParserUnavailable) -> None:
    report.outcome, report.error = RunOutcome.FAILED, redact(str(exc))  # it is stored and shown
    report.config_error = isinstance(exc, ConfigError)
    log.error("%s", exc, extra={alerts.REPEATED: alerts.repeated(report.failing, report.error)})


class MailboxRun:
    """The messages of one account in one run: the pipeline's outcomes, acted on in the mailbox."""

    def __init__(self, run: Run, account: Account, box: Mailbox, report: AccountReport) -> None:
        self.run, self.account, self.box, self.report = run, account, box, report
        self.actions: MessageActions = box  # the prefetch reader while it owns the connection
        self.pipeline = run.pipeline
        self.source = Source(account.name, account.resource, account.automail, waited=True)
        self._asides: dict[str, str] = {}  # key -> "label: reason" until the mailbox answers
        self._refused: list[tuple[str, str]] = []  # (key, where it stays): set aside refused
        self._waiting: set[str] = set()  # keys of this account's failures that wait

    def process(self) -> None:
        refs = self.box.list()
        if refs:  # a mailbox without mail (most cron runs) needs no query for it
            self._waiting = self.pipeline.call_db(failures.pending_failure_keys,
                                                  self.account.name)
        if self.account.protocol == "pop3":  # left on the server: skipped (spec §4.4)
            refs = [r for r in refs if r.key not in self._waiting]
        refs = self._delete_already_stored(refs)
        limit = self.run.settings.max_message_bytes
        aside = {ref.key: why for ref in refs if (why := self.box.unreadable(ref))}
        aside.update({ref.key: f"{ref.size} bytes is over max_message_bytes ({limit}); not "
                               "downloaded" for ref in refs if ref.size > limit
                      and ref.key not in aside})
        todo = [r for r in refs if r.key not in aside]
        try:
            for ref in (r for r in refs if r.key in aside):
                self._set_aside(ref, Outcome(FAILED, ref.key, reason=aside[ref.key],
                                             parsed=self._headers(ref)), raw=None)
            self.run.progress.account_started(self.account.name, len(todo),
                                              sum(r.size for r in todo), len(aside))
            if todo:
                self._overlapped(todo)
        except BaseException:
            with contextlib.suppress(Exception):  # what stopped the run is what it reports
                self._relocate_refused()
            raise
        self._relocate_refused()

    def _relocate_refused(self) -> None:
        """The failures whose messages the mailbox refused to set aside say where they stay
        (recorded before the attempt, as moved). Here, in the writer's thread: the reader's
        told it."""
        refused, self._refused = self._refused, []
        for key, where in refused if not self.run.dry_run else ():
            self.pipeline.call_db(failures.relocate, self.account.name, key, where)

    def _headers(self, ref: MessageRef) -> ParsedMessage | None:
        """The sender, subject and Message-ID of a message set aside unread, from its header
        alone (``errors list`` names who sent the mail that was too large)."""
        if self.box.unreadable(ref):
            return None
        try:
            header = self.box.headers(ref)
        except MailboxError as exc:  # the record comes first: the session's next step says it
            log.debug("%s: no header of %s: %s", account_named(self.account.name), ref.key, exc)
            return None
        if header is None:
            return None
        from helpdesk_fetch.message.parse import parse_headers

        return parse_headers(header)

    def _overlapped(self, todo: list[MessageRef]) -> None:
        """Read and hash/compress ahead in two threads, parse and write here (prefetch.py);
        while the reader owns the connection, it stands in for the mailbox here."""
        from helpdesk_fetch.sources import prefetch
        from helpdesk_fetch.store.group import IDLE_AFTER

        reader = prefetch.Reader(self.box, list(batches(todo)), remaining=self.run.remaining,
                                 told=self.aside_done, idle=self.pipeline.commit_group,
                                 idle_after=IDLE_AFTER)
        self.pipeline.parser.start()  # here, in the thread that outlives it (budget.py)
        done = 0
        try:
            with reader, prefetch.prepared(reader, self.pipeline.prepare) as messages, \
                    self._grouped() as group:
                self.actions = reader
                for ref, raw, prepared in messages:
                    if self.run.remaining() <= 0:  # read ahead, but no new work after the budget
                        reader.stopped_early = True
                        break
                    crashpoint("after_fetch")
                    with interrupts.held():  # stored and counted whole, or not at all
                        self._one(ref, raw, prepared)
                        if group is not None and group.due():
                            group.commit()
                    done += 1
                    self.run.progress.message_done(self.account.name, ref.size)
        finally:
            self.actions = self.box
            self.pipeline.parser.discard()  # what was parsed ahead and not stored
        for held in self.box.withheld():  # handed over as something else: it stays there
            self._set_aside(held.ref, Outcome(FAILED, held.ref.key, reason=held.reason),
                            raw=None)  # what was handed over is no copy of the message
        if reader.stopped_early:
            log.warning("%s: run_budget_seconds used up; %d messages wait for the next run",
                        account_named(self.account.name), len(todo) - done)

    @contextlib.contextmanager
    def _grouped(self) -> Iterator[CommitGroup | None]:
        """The messages stored in commit groups (spec §4.2; none in a dry run): the group is
        committed as the block ends, and rolled back when the database fails."""
        if self.run.dry_run:
            yield None
            return
        from helpdesk_fetch.store.group import CommitGroup  # with mail only (the no-op run)

        group = self.pipeline.group = CommitGroup(self.pipeline.database)
        try:
            with group:  # its commit is not cut short by an interrupt (CommitGroup.commit)
                yield group
        finally:
            self.pipeline.group = None

    def _delete_already_stored(self, refs: list[MessageRef]) -> list[MessageRef]:
        """Delete what an earlier run stored but died before deleting (spec §4.1); the rest."""
        stored = self.pipeline.call_db(write.stored_keys, self.account.name, [r.key for r in refs])
        again = [r for r in refs if r.key in stored]
        for ref in (r for r in again if r.key in self._waiting and not self.run.dry_run):
            # stored by errors retry from its copy, or by an older version that kept no record
            self.pipeline.call_db(failures.resolve_stored, self.account.name, ref.key)
        if again:
            log.info("%s: %d messages were stored by an earlier run; deleting them",
                     account_named(self.account.name), len(again))
            self.report.duplicates += len(again)
            self.report.fetched += len(again)
            self.box.delete(again)
            self.box.flush()
        return [r for r in refs if r.key not in stored]

    def _one(self, ref: MessageRef, raw: bytes, prepared: Prepared | None = None) -> None:
        outcome = self.pipeline.ingest(self.source, raw, ref.key, prepared=prepared)
        if outcome.kind == FAILED:
            self.report.fetched += 1
            return self._set_aside(ref, outcome, raw=raw)
        if ref.key in self._waiting:  # it failed before and was left here: it is stored now
            self.pipeline.resolve_failure(self.source, ref.key)
        group, line = self.pipeline.group, None
        if group is not None and group.open:  # what the group holds until its commit: no parse
            group.stored(len(raw))
            line = outcome.describe() if outcome.kind == DUPLICATE else None
            outcome = dataclasses.replace(outcome, parsed=None)
        self.pipeline.after_commit(functools.partial(self._stored, ref, outcome, line))

    def _stored(self, ref: MessageRef, outcome: Outcome, line: str | None = None) -> None:
        """*outcome*'s message is committed: count it, say so, and have it deleted."""
        if outcome.kind != CANARY:  # a test message of ours, not mail to the helpdesk
            self.report.fetched += 1
        if outcome.kind == DUPLICATE:
            self.report.duplicates += 1
            log.info("%s: %s", account_named(self.account.name), line or outcome.describe())
        elif outcome.kind == CANARY:
            log.info("%s: %s; deleting it", account_named(self.account.name), outcome.reason)
        if self.run.dry_run:
            from helpdesk_fetch.ingest.report import Plan  # a dry run's only (not the no-op run)

            self.report.actions.append(Plan.of(outcome))
        self._count(outcome)
        self.actions.delete([ref])

    def _count(self, outcome: Outcome) -> None:
        action = outcome.decision.action if outcome.decision else None
        rule = outcome.verdict.rule if outcome.verdict else None
        if rule is not None:
            self.report.rule_counts[rule] = self.report.rule_counts.get(rule, 0) + 1
        if outcome.ignored:
            self.report.ignored += 1
        elif action == Action.NEW:
            self.report.new_tickets += 1
        elif action == Action.REJECT:
            self.report.rejected += 1
        elif action is not None:
            self.report.threaded += 1

    def _set_aside(self, ref: MessageRef, outcome: Outcome, *, raw: bytes | None) -> None:
        """Record the message as failed, then have it set aside; the others go on. Its one
        line comes once the mailbox has said how that went (``aside_done``)."""
        self.report.errors += 1
        if raw is None:  # set aside without being downloaded (_one counts the others)
            self.report.fetched += 1
        again = self.pipeline.record_failure(self.source, outcome, raw=raw,
                                             size=ref.size if raw is None else len(raw),
                                             location=self.actions.aside_location())
        self._asides[ref.key] = f"{outcome.label}: {outcome.reason}"
        if self.actions is self.box:  # at once; the prefetch reader does it between reads
            set_aside(self.box, ref, again=again, told=self.aside_done)
        else:
            self.actions.set_aside(ref, again=again)

    def aside_done(self, ref: MessageRef, refused: SetAsideRefused | None) -> None:
        """The one line about a message set aside, said once the mailbox has it aside, or has
        refused to take it: then it stays in the mailbox (the next run tries again), and the
        account is reported failed so that someone fixes it."""
        what = self._asides.pop(ref.key, ref.key)
        if refused is None:
            where = self.box.aside_location()
            line = f"{what}; {'would be ' + where if self.run.dry_run else where}"
            self.report.failures.append(line)
            # A dry run's plan says it on stdout ("would set aside"): on stderr too only at -v
            level = logging.INFO if self.run.dry_run else logging.WARNING
            return log.log(level, "%s: %s", account_named(self.account.name), line)
        line = f"{what}; {refused.detail}; it stays in the mailbox, and the next run tries again"
        self._refused.append((ref.key, f"{failures.LEFT}{refused.detail}"))
        self.report.failures.append(line)
        error = redact(str(refused))
        log.error("%s: %s", account_named(self.account.name), line,
                  extra={alerts.REPEATED: alerts.repeated(self.report.failing, error)})
        self.report.outcome, self.report.error = RunOutcome.FAILED, error
