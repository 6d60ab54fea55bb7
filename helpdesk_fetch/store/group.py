"""Group commit (spec §4.2): the messages of a fetch run stored in one transaction, each in a
savepoint of its own, and committed together.

A commit is on disk before it returns (``synchronous=full``, PostgreSQL's defaults): one per
message cost a run of 1,000 messages a thousand syncs and transaction set-ups. In a group, a
message is still stored atomically — its savepoint is released whole or rolled back whole, so one
message's failure never undoes another's — and whatever must wait for its commit (deleting it from
the mailbox, counting it, the line that says it was stored) waits in the group's ``after_commit``
actions, which run once the group's commit has returned. A crash before that commit loses the
group's rows, never a message: none of them was deleted.

A group is committed when it is ``due``: half a second old, 1,000 messages, or 16 MB of mail;
before a message of 1 MiB or more is stored (storing it takes a while); and by the caller whenever
it has waited ``IDLE_AFTER`` (for the mailbox, for the parse worker) with a group open, so that
no group stays open a second and a slow mailbox never holds the database's write lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from peewee import Database, PeeweeException

from helpdesk_fetch import interrupts
from helpdesk_fetch.errors import DatabaseError
from helpdesk_fetch.faults import crashpoint
from helpdesk_fetch.store import db

log = logging.getLogger(__name__)

MAX_SECONDS = 0.5
MAX_MESSAGES = 1000
MAX_BYTES = 16 * 1024 * 1024
ALONE_BYTES = 1024 * 1024  # a message this large is stored after the open group's commit
# The caller commits while it waits (for the mailbox, the parse worker) only once it has waited
# this long: most answers come within a few milliseconds, and a commit (an fsync) for each of
# them costs more than the wait it would fill.
IDLE_AFTER = 0.05

Action = Callable[[], None]


def atomic(database: Database) -> AbstractContextManager[object]:
    """``database.atomic()``, but inside a transaction (a group) a savepoint of one fixed name.

    peewee names every savepoint anew (``uuid4``: a read of ``/dev/urandom``), so each
    ``SAVEPOINT`` and ``RELEASE`` is a statement SQLite has never seen, compiled again: ~10 µs
    of the writer's time per message. Savepoints of one name nest in SQLite and PostgreSQL
    alike: ``RELEASE`` and ``ROLLBACK TO`` act on the innermost of that name."""
    if database.transaction_depth():
        return _Savepoint(database)
    return database.atomic()


class _Savepoint:
    """What peewee's savepoint does, under one name, and released after a rollback too."""

    SAVEPOINT, RELEASE = 'SAVEPOINT "hd_message"', 'RELEASE SAVEPOINT "hd_message"'
    ROLLBACK = 'ROLLBACK TO SAVEPOINT "hd_message"'

    def __init__(self, database: Database) -> None:
        self.database = database

    def __enter__(self) -> _Savepoint:
        self.database.execute_sql(self.SAVEPOINT)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self.database.execute_sql(self.RELEASE)
                return
            except Exception:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        self.database.execute_sql(self.ROLLBACK)
        self.database.execute_sql(self.RELEASE)


class CommitGroup:
    """An open group, begun at its first message. Use as a context manager around a run over
    one mailbox: at its end the group is committed (also when the block ends with an interrupt
    or a mailbox failure: what is stored stays stored); a database failure rolls it back, and
    none of its actions run."""

    def __init__(self, database: Database, *, max_seconds: float = MAX_SECONDS,
                 max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES) -> None:
        self.database = database
        self.max_seconds, self.max_messages, self.max_bytes = max_seconds, max_messages, max_bytes
        self._transaction: object | None = None  # peewee's, while the group is open
        self._actions: list[Action | None] = []  # None: the end of a message's
        self._began = 0.0
        self._messages = 0
        self._bytes = 0

    def __enter__(self) -> CommitGroup:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            return self.commit()
        if isinstance(exc, DatabaseError | PeeweeException):
            return self.rollback()
        messages = self._messages
        try:  # an interrupt, a mailbox that failed: keep what was stored
            self.commit()
        except DatabaseError as failure:
            log.warning("the last %d messages stored could not be committed (%s); they stay "
                        "in the mailbox for the next run", messages, failure)

    @property
    def open(self) -> bool:
        return self._transaction is not None

    def begin(self, size: int = 0) -> None:
        """Open the group, unless it is open: the message of *size* bytes about to be stored
        goes in it. A large one first has the open group committed: storing it alone takes
        time, which the messages before it need not wait."""
        if self._transaction is not None and size >= ALONE_BYTES and self._messages:
            self.commit()
        if self._transaction is None:
            assert not self.database.transaction_depth(), "a group is the outermost transaction"
            transaction = self.database.atomic()
            with db.errors("cannot store messages"):
                transaction.__enter__()
            self._transaction, self._began = transaction, time.monotonic()

    def after_commit(self, action: Action) -> None:
        """Run *action* once what was stored so far is committed: at the group's commit, or at
        once when no group is open (it was committed on its own)."""
        if self._transaction is None:
            return action()
        self._actions.append(action)

    def stored(self, size: int) -> None:
        """A message of *size* bytes was stored in the open group (none open: committed)."""
        if self._transaction is not None:
            self._messages += 1
            self._bytes += size
            self._actions.append(None)
            crashpoint("in_group")

    def due(self) -> bool:
        """Whether the open group should be committed now."""
        return self._transaction is not None and (
            self._messages >= self.max_messages or self._bytes >= self.max_bytes
            or time.monotonic() - self._began >= self.max_seconds)

    def commit(self) -> None:
        """Commit the open group, then run its actions (DatabaseError: rolled back, none run).
        An interrupt waits until both are done: what is committed is also counted and said."""
        transaction = self._transaction
        if transaction is None:
            return
        with interrupts.held():
            try:
                transaction.__exit__(None, None, None)  # type: ignore[attr-defined]
            except PeeweeException as exc:  # peewee has rolled back
                self._reset()
                raise db.as_database_error(exc, "cannot store messages") from None
            actions = self._actions
            self._reset()
            for action in actions:
                if action is None:  # the Nth message committed, its later actions not yet run
                    crashpoint("after_commit")
                else:
                    action()

    def _reset(self) -> None:
        self._transaction, self._actions, self._messages, self._bytes = None, [], 0, 0

    def rollback(self) -> None:
        """Undo the open group; its actions are dropped."""
        transaction = self._transaction
        self._reset()
        if transaction is not None:
            try:
                transaction.__exit__(RuntimeError, RuntimeError(), None)  # type: ignore[attr-defined]
            except PeeweeException:
                log.debug("rolling back a commit group failed", exc_info=True)
