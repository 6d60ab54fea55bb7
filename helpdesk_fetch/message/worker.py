"""The parse worker: a process of its own that parses the messages its parent sends, one after the
other, and dies with its parent. ``budget.py`` is the parent's side; this is the worker's, and the
wire format both speak over the worker's stdin and stdout.

Parent to worker, per message: an 8-byte length and a pickled ``Header``, the skeleton (the message
with its long body runs taken out, bodyruns.py), the runs that are sent, then the runs that are not
(long base64 bodies): those the worker reads only if it needs them, and otherwise skips, so that
it never holds a large attachment. A message under ``budget.WHOLE_BELOW`` comes whole instead
(``Header.whole``): the worker takes its runs out itself, and decodes its attachments.

Worker to parent: ``READY`` once its modules are loaded; per message ``STARTED`` with the time it
began (CLOCK_MONOTONIC, the same clock in every process), then ``DONE`` with the time it ended and
a pickled ParsedMessage, or ``FAILED`` with the time and the reason.
"""

from __future__ import annotations

import gc
import os
import pickle
import struct
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from helpdesk_fetch.message.parse import ParsedMessage

READY, STARTED, DONE, FAILED = b"H", b"S", b"R", b"E"
TIME = struct.Struct("<d")
LENGTH = struct.Struct("<Q")
_SKIP_CHUNK = 1 << 20


class Reader(Protocol):
    """An unbuffered binary stream to read (a pipe's FileIO)."""

    def read(self, size: int = -1, /) -> bytes | None: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Writer(Protocol):
    def write(self, data: memoryview, /) -> int | None: ...


@dataclass(frozen=True)
class Header:
    """What precedes a message's bytes on the wire."""

    nonce: str
    spans: list[tuple[int, int]]  # each run's place in the raw message
    sent: list[bool]  # which runs follow the skeleton; the others come after those
    skeleton: int  # its length
    whole: bool = False  # the "skeleton" is the message itself, its runs still in it


def serve(parent: int) -> None:
    """The worker's main loop, until its stdin ends (or its parent dies: it dies with it)."""
    _die_with_parent(parent)
    from helpdesk_fetch.errors import unexpected
    from helpdesk_fetch.message import parse  # loaded before READY: part of the start-up

    inp, out = os.fdopen(0, "rb", buffering=0), os.fdopen(1, "wb", buffering=0)
    # The cyclic garbage collector, left on, walks every object the parser holds again and again
    # while it builds them (a message of 200,000 headers took twice as long): it runs between
    # messages instead, where it is cheap (the modules' objects are frozen, never walked).
    gc.freeze()
    gc.disable()
    _write(out, READY)
    while (header := _read_header(inp)) is not None:
        stream = _Stream(inp, header)
        _write(out, STARTED + TIME.pack(time.monotonic()))
        try:
            result = DONE, pickle.dumps(stream.parse(), protocol=pickle.HIGHEST_PROTOCOL)
        except parse.ParseError as exc:
            result = FAILED, str(exc).encode("utf-8", "replace")
        except Exception as exc:  # the parser is defensive; this is the last line of defence
            result = FAILED, unexpected(exc).encode("utf-8", "replace")
        finished = time.monotonic()
        stream.skip_rest()
        _write(out, result[0] + TIME.pack(finished) + LENGTH.pack(len(result[1])), result[1])
        del result
        gc.collect()


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies, however it dies (Linux: PR_SET_PDEATHSIG); a parent that
    died before this took effect is noticed at once."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the end of stdin still ends the loop
        pass
    if os.getppid() != parent:
        os._exit(0)


class _Stream:
    """One message as it arrives: the skeleton and sent runs read at once, the others when
    needed (in their order on the wire) or skipped at the end."""

    def __init__(self, inp: Reader, header: Header) -> None:
        from helpdesk_fetch.message.bodyruns import Received

        self.inp = inp
        self.skeleton = read_exact(inp, header.skeleton)
        pieces: list[bytes | None] = [read_exact(inp, end - start) if sent else None
                                      for (start, end), sent in zip(header.spans, header.sent,
                                                                    strict=True)]
        self.waiting = [i for i, sent in enumerate(header.sent) if not sent]  # still on the wire
        self.spans = header.spans
        self.whole = header.whole
        self.runs = Received(header.spans, header.nonce, pieces, self._load)

    def parse(self) -> ParsedMessage:
        """The message parsed: a whole one as ``parse.parse`` does (its runs taken out here, every
        attachment decoded); else an attachment that is a run left with the parent ``Deferred``."""
        from helpdesk_fetch.message import parse

        if self.whole:
            return parse.parse(self.skeleton)
        return parse.parse_runs(self.skeleton, self.runs, defer=True)

    def _load(self, index: int) -> bytes:
        while self.waiting:
            next_index = self.waiting.pop(0)
            start, end = self.spans[next_index]
            data = read_exact(self.inp, end - start)
            if next_index == index:
                return data
            self.runs.pieces[next_index] = data
        raise AssertionError(f"run {index} was read before")

    def skip_rest(self) -> None:
        for index in self.waiting:
            start, end = self.spans[index]
            left = end - start
            while left:
                left -= len(read_exact(self.inp, min(left, _SKIP_CHUNK)))
        self.waiting = []


def _read_header(inp: Reader) -> Header | None:
    size = inp.read(LENGTH.size)
    if not size:
        return None
    header: Header = pickle.loads(read_exact(inp, LENGTH.unpack(size + read_exact(
        inp, LENGTH.size - len(size)))[0]))  # what budget.Request pickled
    return header


def read_exact(stream: Reader, size: int) -> bytes:
    """*size* bytes from the unbuffered *stream*; EOFError when it ends first."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        count = stream.readinto(view[got:])
        if not count:
            raise EOFError("the stream ended")
        got += count
    return bytes(buffer)


def _write(out: Writer, *chunks: bytes) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[out.write(view):]


if __name__ == "__main__":  # pragma: no cover - started by budget.py as `python -c`
    serve(int(sys.argv[1]))
