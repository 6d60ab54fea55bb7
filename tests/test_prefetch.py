"""sources/prefetch.py's bounds: how far the preparer works ahead of the writer (memory), and
that it hands out what it has when the mailbox keeps it waiting. The overlap itself, end to end
against the real servers, is in test_ingest_imap.py, test_ingest_pop3.py and test_group.py."""

from __future__ import annotations

import threading

import pytest

from helpdesk_fetch.sources import prefetch
from helpdesk_fetch.sources.base import MessageRef


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
