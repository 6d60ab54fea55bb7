"""sources/prefetch.py's bounds: how far the preparer works ahead of the writer (memory), and
that it hands out what it has when the mailbox keeps it waiting. The overlap itself, end to end
against the real servers, is in test_ingest_imap.py, test_ingest_pop3.py and test_group.py."""

from __future__ import annotations

import threading
import time

import pytest

from helpdesk_fetch.sources import prefetch
from helpdesk_fetch.sources.base import (
    FETCH_BATCH_BYTES,
    FETCH_BATCH_MESSAGES,
    FIRST_BATCH_BYTES,
    MessageRef,
    batches,
)
from helpdesk_fetch.store.group import IDLE_AFTER


class _Reader:
    """Stands in for prefetch.Reader: *messages* in order, never waiting unless told."""

    def __init__(self, messages: list[bytes], *, waiting: bool = False) -> None:
        self.messages = messages
        self.waiting_now = waiting
        self.read = 0

    def __iter__(self):
        for index, raw in enumerate(self.messages):
            self.read = index + 1
            yield MessageRef(f"k{index}", len(raw), index), raw

    def waiting(self) -> bool:
        return self.waiting_now


def _taken_ahead(reader: _Reader) -> list[int]:
    """For each message the writer takes: how many were read and given to the preparer
    beyond it."""
    prepared: list[int] = []
    lock = threading.Lock()

    def prepare(raw: bytes) -> int:
        with lock:
            prepared.append(len(raw))
        return len(raw)

    ahead = []
    with prefetch.prepared(reader, prepare) as items:  # type: ignore[arg-type]
        for taken, (_, raw, result) in enumerate(items, 1):
            assert result == len(raw)
            ahead.append(reader.read - taken)
    assert len(prepared) == len(reader.messages)
    return ahead


def test_small_messages_are_prepared_at_most_ahead_messages_ahead():
    ahead = _taken_ahead(_Reader([b"x" * 1000] * 100))
    assert max(ahead) == prefetch.AHEAD_MESSAGES


@pytest.mark.parametrize("size", [prefetch.AHEAD_BYTES // 4, prefetch.AHEAD_BYTES * 2])
def test_large_messages_are_prepared_less_than_ahead_bytes_ahead(size):
    ahead = _taken_ahead(_Reader([b"x" * size] * 12))
    assert max(ahead) * size < prefetch.AHEAD_BYTES
    assert max(ahead) == max(0, prefetch.AHEAD_BYTES // size - 1)


def test_while_the_mailbox_keeps_it_waiting_it_hands_out_what_it_has():
    assert set(_taken_ahead(_Reader([b"x" * 1000] * 20, waiting=True))) == {0}


class _SlowBox:
    """A mailbox whose second batch comes *delay* seconds after the first."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.batches = 0

    def fetch(self, batch: list[MessageRef]):
        self.batches += 1
        if self.batches == 2:
            time.sleep(self.delay)
        for ref in batch:
            yield ref, b"x" * ref.size

    def delete(self, refs: list[MessageRef]) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(("delay", "idle_after", "waited"), [(0.005, 1.0, False),
                                                             (1.0, IDLE_AFTER, True)])
def test_the_writer_commits_while_it_waits_only_when_the_wait_is_not_short(delay, idle_after,
                                                                          waited):
    """Its *idle* (a commit) is called once the mailbox has kept it waiting *idle_after* (the
    group's IDLE_AFTER): a wait of a few milliseconds between two batches is not worth an
    fsync, a long one is. (The short case with a generous *idle_after*, so that a busy machine
    cannot make it long.)"""
    called = []
    refs = [[MessageRef(f"k{i}", 10, i)] for i in range(2)]
    box = _SlowBox(delay)
    reader = prefetch.Reader(box, refs, remaining=lambda: 60.0,  # type: ignore[arg-type]
                             told=lambda ref, refused: None, idle=lambda: called.append(1),
                             idle_after=idle_after)
    with reader:
        taken = [ref.key for ref, _ in reader]
    assert taken == ["k0", "k1"]
    assert bool(called) is waited


def test_the_first_batch_is_small_and_the_next_ones_grow_to_the_bound():
    """The run starts on its first messages while the next batch is read."""
    refs = [MessageRef(f"k{n}", 20_000, n) for n in range(1000)]

    found = list(batches(refs))

    sizes = [sum(ref.size for ref in batch) for batch in found]
    assert [ref for batch in found for ref in batch] == refs
    assert sizes[0] <= FIRST_BATCH_BYTES < sizes[0] + 20_000
    assert all(size <= min(FIRST_BATCH_BYTES << n, FETCH_BATCH_BYTES)
               for n, size in enumerate(sizes))
    assert max(sizes) <= FETCH_BATCH_BYTES and max(map(len, found)) == FETCH_BATCH_MESSAGES
    assert [len(batch) for batch in found[:5]] == [6, 13, 26, 52, 100]  # 128 KiB, 256 KiB...


class _StuckBox:
    """A mailbox whose fetch waits for the server until its session is broken off."""

    dry_run = interrupted = close_when_interrupted = False

    def __init__(self) -> None:
        self.reading, self.cut, self.events = threading.Event(), threading.Event(), []

    def fetch(self, batch):
        self.reading.set()
        if self.cut.wait(10):
            raise OSError("the session was broken off")
        yield from ((ref, b"x") for ref in batch)

    def interrupt(self) -> None:
        self.interrupted = True
        self.cut.set()
        self.events.append("interrupt")

    def delete(self, refs) -> None:
        self.events.append("delete")

    def flush(self) -> None:
        pass


def test_a_second_ctrl_c_breaks_the_read_off_and_waits_for_the_reader():
    """Ctrl-C gives the reader time to finish its batch (to delete what was stored); a second
    one breaks the read off, and comes out only once the reader's thread has ended, so that
    the session is never closed under it."""
    box = _StuckBox()
    reader = prefetch.Reader(box, [[MessageRef("k", 1, 1)]], remaining=lambda: 99.0,
                             told=lambda ref, refused: None)

    def second_ctrl_c() -> None:  # what the signal handler raises, during the grace wait
        box.reading.wait()
        time.sleep(0.2)
        raise KeyboardInterrupt

    original = reader._ended.wait
    calls = []

    def wait(timeout=None):
        calls.append(timeout)
        if len(calls) == 1:  # the grace wait
            second_ctrl_c()
        return original(timeout)

    reader._ended.wait = wait  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        with reader:
            box.reading.wait()
            raise KeyboardInterrupt  # the first Ctrl-C, in the writer
    assert box.events == ["interrupt"] and not reader._thread.is_alive()
