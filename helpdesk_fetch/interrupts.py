"""Ctrl-C and SIGTERM: a run stops where it is, except in the middle of one message.

A message being stored is finished first (milliseconds): so the run can say exactly how many it
stored, and none is stored without being counted. Store-first-delete-second makes an interrupt
safe anywhere else; a message stored but not yet deleted is deleted by the next run. The CLI
installs ``handle`` for both signals while ``fetch`` runs; without it (tests, other commands)
Python's own KeyboardInterrupt applies and ``held`` changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

_depth = 0
_pending: int | None = None
received: int | None = None  # the signal that interrupted, for the message that says so


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM, raised where the main thread is."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def handle(signum: int, frame: FrameType | None) -> None:
    """The signal handler: interrupt now, or when the message being stored is done."""
    global _pending, received
    received = signum
    if _depth:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Inside the block an interrupt waits; it is raised as the block ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if not _depth and _pending is not None:
        signum, _pending = _pending, None
        raise Interrupted(signum)
