"""A fetch run's work overlapped: mailbox round trips, hashing and compressing each message, and
parsing and writing it to the database (issue 7).

Done one after the other, a run waits for the server, then for the disk (every commit is synced
before anything is deleted, spec §4.1), and computes in between. Here the waits overlap with
work: Python lets other threads run while a socket is read, while SQLite syncs, and while zlib
and hashlib work.

- The reader owns the mailbox connection. It fetches batch after batch ahead of the writer and,
  before each batch, carries out the deletes and set-asides the writer has asked for. The writer
  asks only after its commit, so a message is still deleted only once it is stored.
- The preparer hashes and compresses the next few messages (C code, outside the GIL); the
  *prepare* function it is given also hands each message to the parse worker, a process of its
  own (message/budget.py), so that parsing uses the second core.
- The caller's thread collects the parses and writes the messages in mailbox order, each in a
  savepoint of a group that is committed before the writer waits for the mailbox
  (store/group.py).

Parsing is pure Python, so not in a thread: in a thread of its own it held the GIL each time the
writer's statements gave it up for a moment, and a statement that takes SQLite 20 µs took 500 µs
(profile of ``make bench``); the run was no faster than without the thread.

Memory stays bounded: the reader fetches the next batch only while less than ``AHEAD_BYTES`` wait
to be written, and the preparer works at most ``AHEAD_MESSAGES`` messages ahead of the writer,
and takes no further message once ``AHEAD_BYTES`` of mail are ahead (so it holds at most that
and one message more, besides the reader's own).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from helpdesk_fetch.errors import MailboxError, account_named
from helpdesk_fetch.sources.base import FETCH_BATCH_BYTES, Mailbox, MessageRef, Told, set_aside

AHEAD_BYTES = FETCH_BATCH_BYTES
AHEAD_MESSAGES = 16  # prepared ahead of the writer, while they hold less than AHEAD_BYTES
P = TypeVar("P")
# After Ctrl-C or SIGTERM, how long the reader may take to finish the batch it reads, so that what
# was stored can still be deleted in its session; then the session is broken off.
INTERRUPT_GRACE = 3.0

log = logging.getLogger(__name__)


class Reader:
    """Reads *batches* from *box* in a thread; iterate for (ref, raw) in mailbox order.

    While it runs it stands in for the mailbox on the writer's side (``MessageActions``:
    ``delete``, ``set_aside``, ``aside_location``):
    those are queued and carried out by the reader between batches, and at the end, after the
    reader has stopped, in the writer's thread. Use as a context manager."""

    def __init__(self, box: Mailbox, batches: list[list[MessageRef]], *,
                 remaining: Callable[[], float],
                 told: Told, idle: Callable[[], None] | None = None,
                 idle_after: float = 0.0) -> None:
        self.box = box
        self.batches = batches
        self.remaining = remaining
        self.told = told  # told how each set-aside went, once the mailbox has answered
        self.idle = idle  # called in the writer's thread once it has waited for the mailbox
        self.idle_after = idle_after  # seconds
        self.stopped_early = False  # the run's time budget ran out before every batch was read
        self._cond = threading.Condition()
        self._fetched: collections.deque[tuple[MessageRef, bytes] | None] = collections.deque()
        self._bytes = 0
        self._deletes: list[MessageRef] = []
        self._asides: list[tuple[MessageRef, bool]] = []
        self._error: BaseException | None = None
        self._stop = False
        self._ended = threading.Event()  # the reader's thread has returned
        self._thread = threading.Thread(target=self._run, name="mailbox-reader", daemon=True)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        graceful = interrupted and not self.box.dry_run  # a dry run has nothing to delete
        if exc_type is not None and not (graceful and self._await_end(INTERRUPT_GRACE)):
            self.box.interrupt()  # the session has failed: break off a read in progress
        self._await_end()  # (closing here could hand its descriptor to a new socket)
        if exc_type is None:
            self._raise()
            self._act()  # what the writer asked for after the reader's last batch
            self.box.flush()
        elif interrupted and self._error is None and not self.box.interrupted:
            self._delete_stored()

    def _await_end(self, within: float | None = None) -> bool:
        """Wait until the reader's thread has ended, or *within* seconds (the batch it reads
        finished); whether it has. Whatever interrupts the wait: the session must not be closed
        under the thread. (Not ``join()`` alone: on Python 3.11 an interrupted join marks a
        thread ended that still runs.) A Ctrl-C meanwhile breaks the read off and is raised
        once the thread is done."""
        pending: KeyboardInterrupt | None = None
        while True:
            try:
                ended = self._ended.wait(within)
                break
            except KeyboardInterrupt as exc:
                pending = pending or exc
                self.box.interrupt()
                within = None  # broken off: it ends now
        if ended:
            self._thread.join()
        if pending is not None:
            raise pending
        return ended

    def _delete_stored(self) -> None:
        """Ctrl-C or SIGTERM, with the session intact: delete what was stored and committed, and
        have the session closed normally (POP3's QUIT makes the DELEs final), so that the next
        run does not find those messages again. Best effort: what fails stays for the next run,
        which deletes it without storing it twice; a second Ctrl-C ends this at once."""
        try:
            self._act()
            self.box.flush()
        except MailboxError as exc:
            log.info("%s: the messages stored before the interrupt stay on the server for the "
                     "next run to delete: %s", account_named(self.box.account.name), exc)
            return
        self.box.close_when_interrupted = True

    # -- the writer's side -------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[MessageRef, bytes]]:
        while True:
            if self.idle is not None and self.waiting(self.idle_after):
                self.idle()  # e.g. commit: a slow mailbox holds no transaction open
            with self._cond:
                while not self._fetched and self._error is None:
                    self._cond.wait()
                self._raise()
                item = self._fetched.popleft()
                if item is None:
                    return
                self._bytes -= len(item[1])
                if self._bytes < AHEAD_BYTES <= self._bytes + len(item[1]):
                    self._cond.notify_all()  # room for the reader's next batch: only now
            yield item

    def waiting(self, within: float = 0.0) -> bool:
        """Whether the next message is not read yet, nor within *within* seconds (taking it
        would wait for the mailbox)."""
        with self._cond:
            if within:
                self._cond.wait_for(lambda: self._fetched or self._error is not None,
                                    timeout=within)
            return not self._fetched and self._error is None

    def delete(self, refs: list[MessageRef]) -> None:
        """Delete *refs* (stored and committed by the writer) at the reader's next chance."""
        with self._cond:
            self._deletes += refs

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        with self._cond:
            self._asides.append((ref, again))

    def aside_location(self) -> str:
        return self.box.aside_location()

    # -- the reader's thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._read()
        finally:
            self._ended.set()

    def _read(self) -> None:
        try:
            for batch in self.batches:
                if not self._wait_for_room():
                    return
                self._act()
                self.box.flush()
                if self.remaining() <= 0:
                    self.stopped_early = True
                    break
                for item in self.box.fetch(batch):
                    self._put(item)
        except BaseException as exc:  # handed to the writer, which raises it
            with self._cond:
                self._error = exc
                self._cond.notify_all()
            return
        self._put(None)

    def _wait_for_room(self) -> bool:
        with self._cond:
            while self._bytes >= AHEAD_BYTES and not self._stop:
                self._cond.wait()
            return not self._stop

    def _put(self, item: tuple[MessageRef, bytes] | None) -> None:
        with self._cond:
            if not self._fetched:  # the writer waits only for the first: each wake-up costs
                self._cond.notify_all()  # a round of the interpreter lock between threads
            self._fetched.append(item)
            self._bytes += len(item[1]) if item else 0

    def _act(self) -> None:
        with self._cond:
            deletes, self._deletes = self._deletes, []
            asides, self._asides = self._asides, []
        if deletes:
            self.box.delete(deletes)
        for ref, again in asides:  # a refused one stays in the mailbox; the others go on
            set_aside(self.box, ref, again=again, told=self.told)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


@contextlib.contextmanager
def prepared(reader: Reader,
             prepare: Callable[[bytes], P]) -> Iterator[Iterator[tuple[MessageRef, bytes, P]]]:
    """What *reader* reads as (ref, raw, prepare(raw)), each prepared in a thread up to
    AHEAD_MESSAGES ahead of the caller. A context manager, so that the thread is done with when
    the caller is."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare")
    try:
        yield _ahead(reader, prepare, pool)
    finally:
        pool.shutdown(cancel_futures=True)


def _ahead(reader: Reader, prepare: Callable[[bytes], P],
           pool: ThreadPoolExecutor) -> Iterator[tuple[MessageRef, bytes, P]]:
    """Prepare ahead while the reader has messages; while it has none, hand out the messages
    prepared so far instead of waiting with them for the mailbox."""
    pending: collections.deque[tuple[MessageRef, bytes, Future[P]]] = collections.deque()
    size = 0  # of the messages in pending
    items = iter(reader)
    while True:
        if pending and (len(pending) > AHEAD_MESSAGES or size >= AHEAD_BYTES
                        or reader.waiting()):
            ref, raw, future = pending.popleft()
            size -= len(raw)
            yield ref, raw, future.result()
            continue
        item = next(items, None)
        if item is None:
            break
        pending.append((*item, pool.submit(prepare, item[1])))
        size += len(item[1])
    while pending:
        ref, raw, future = pending.popleft()
        yield ref, raw, future.result()
