"""The first account's IMAP mailbox, opened in a thread while the run starts (issue 18).

Connecting, TLS and logging in are mostly waiting for the server (Dovecot: 20 of a session's 30
ms); meanwhile the run imports its machinery and opens the database. The account's lock is still
taken before anything in the mailbox is read or deleted (spec §4.7): the thread logs in and
selects the folder, nothing more, and the run takes its mailbox under the lock (``take``), or logs
it out unused (``discard``: another run holds the account, the database failed, an interrupt).
What the opening raised is raised where the run would have opened the mailbox itself, so a
failing login is reported just the same.

IMAP only: a POP3 server locks the maildrop at login (RFC 1939), so a login ahead could make the
run that holds the account fail. Not with OAuth2, whose login may refresh or forget the token;
not at -vv or more either: the protocol trace and the SQL stay in the order they happened.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from helpdesk_fetch.config import Account, Config, Settings
from helpdesk_fetch.errors import ConfigError
from helpdesk_fetch.sources.base import Cutoff, Mailbox
from helpdesk_fetch.sources.open import open_mailbox
from helpdesk_fetch.startup import resume_gc
from helpdesk_fetch.store.peewee_adapter import import_peewee

if TYPE_CHECKING:
    from helpdesk_fetch.ingest.run import ProgressEvents, RunReport

log = logging.getLogger(__name__)
GONE_SECONDS = 1.0  # how long discard() waits for an opening it cut to end (see there)


def fetch(config: Config, *, names: list[str] | None = None, dry_run: bool = False,
          progress: ProgressEvents | None = None) -> RunReport:
    """``run.fetch``, with the first account's mailbox opening ahead while the run's machinery
    is imported (most of a run that finds no mail): peewee first, for SQLite without psycopg2
    (store/peewee_adapter.py)."""
    ahead = start(config, names=names, dry_run=dry_run)
    try:
        import_peewee(config.settings.database)
        from helpdesk_fetch.ingest import run
    except BaseException:
        if ahead is not None:
            ahead.discard()
        raise
    resume_gc()  # start-up is over (startup.py)
    return run.fetch(config, names=names, dry_run=dry_run, progress=progress, ahead=ahead)


def start(config: Config, *, names: list[str] | None, dry_run: bool) -> Ahead | None:
    """The first selected account's mailbox, opening in a thread; None where it is not opened
    ahead (no account, not IMAP, OAuth2, debugging output)."""
    try:
        accounts = config.selected_accounts(names)
    except ConfigError:  # the run says so
        return None
    first = accounts[0] if accounts else None
    # OAuth2: its token file is refreshed, or a refused token forgotten, at login; a run that
    # finds the account busy keeps its hands off that, as it always did.
    if first is None or first.protocol != "imap" or first.auth == "oauth2" \
            or log.isEnabledFor(logging.DEBUG):
        return None
    # Imported here, not in the thread: one import at a time (nothing is gained by two under
    # the GIL), so the thread only waits for the server while this one imports the run's.
    import helpdesk_fetch.sources.imap  # noqa: F401
    ahead = Ahead(first, config, dry_run=dry_run)
    ahead.thread.start()
    return ahead


def limits(config: Config, account: Account, remaining: float) -> tuple[float, float, str]:
    """The timeout of *account*'s session, the seconds after which it is cut (opening
    included), and why, when the run has *remaining* seconds of its budget: no new work starts
    after the budget; what is in flight gets one timeout more, then the line is cut (a server
    trickling bytes defeats every per-read timeout)."""
    timeout = max(1.0, min(config.timeout_for(account), remaining))
    budget = config.settings.run_budget_seconds
    return (timeout, remaining + timeout,
            f"run_budget_seconds ({budget} s) and one timeout_seconds more ran out")


class Ahead:
    """One account's mailbox, being opened in a thread; the run takes it or discards it."""

    def __init__(self, account: Account, config: Config, *, dry_run: bool) -> None:
        self.account = account
        self.cutoff = Cutoff()  # discard() cuts an opening still in progress
        self._stack = contextlib.ExitStack()
        self._box: Mailbox | None = None
        self._error: BaseException | None = None
        self._used = False
        self._lock = threading.Lock()
        self._discarded = False
        timeout, deadline, why = limits(config, account, config.settings.run_budget_seconds)
        self.thread = threading.Thread(
            target=self._open, name="open-ahead", daemon=True,
            args=(config.settings, timeout, deadline, why, dry_run))

    def _open(self, settings: Settings, timeout: float, deadline: float, why: str,
              dry_run: bool) -> None:
        try:
            box = self._stack.enter_context(open_mailbox(
                self.account, settings=settings, timeout=timeout, dry_run=dry_run,
                deadline=deadline, why=why, cutoff=self.cutoff))
        except BaseException as exc:  # raised in the run, where it would have opened it
            self._error = exc
            return
        with self._lock:
            self._box, late = box, self._discarded
        if late:  # discarded while it was being opened: nobody will take it
            self._close()

    def is_for(self, account: Account) -> bool:
        return not self._used and account is self.account

    @contextlib.contextmanager
    def take(self) -> Iterator[Mailbox]:
        """The open mailbox for the run's ``with`` block, closed after it (aborted on an
        error); what opening it raised, raised here."""
        self.thread.join()
        self._used = True
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        assert self._box is not None, "opened, or its error is raised"
        with self._stack:
            yield self._box

    def discard(self) -> None:
        """The run ends without having taken the mailbox: log out; or, while it is still being
        opened, cut the connection: the thread then fails at its next step, and leaves no
        session open. It is given up to GONE_SECONDS to get there, not more (an interrupt must
        not wait for a slow server, nor for a connect or DNS lookup, which nothing interrupts):
        a process that exits while the thread is inside OpenSSL (loading the CAs takes tens of
        milliseconds) crashes in OpenSSL's clean-up at exit (SIGSEGV instead of its exit code)."""
        if self._used:
            return
        self._used = True
        with self._lock:
            self._discarded = True
            opened = self._box is not None
        if opened:
            self._close()
        else:
            self.cutoff.cut("the run ended before it needed this mailbox")
            self.thread.join(GONE_SECONDS)

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
