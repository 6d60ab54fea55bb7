"""Parsing under ``parse_seconds`` (spec §4.4): no crafted mail can stall a mailbox.

Every step of parsing is meant to be linear in its input, but the parser is large, much of it is
the standard library's, and a budget only counts if it can really stop the work: a Python thread
cannot be stopped, and a signal is not handled while C code (a regex) runs. So messages are parsed
in a worker process (worker.py) that is killed when a message takes longer than the budget, and
replaced; the message is reported ``ParseTimeout`` and set aside like one that cannot be parsed.

The worker doubles as the second core's share of a fetch (issue 18): ``submit`` hands it messages
ahead of the writer, which collects the results in order with ``result`` while the worker parses
the next ones. It is started only when there is mail, dies with its parent (SIGKILL included),
and never holds an attachment of a message of 1 MiB or more (``WHOLE_BELOW``): the parent takes
the long body runs out of such a message (bodyruns.py) and sends the long base64 ones only if the
worker asks; an attachment made of one comes back as a run number, decoded here from the parent's
own copy. A smaller message is sent whole, and the worker does that work itself: Python work
that, done here, held this process's GIL, which the writer's thread waits for.

The worker is no sandbox: it runs as the same user. It bounds time, not privilege.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from helpdesk_fetch.errors import ParserUnavailable
from helpdesk_fetch.message import worker as wire
from helpdesk_fetch.message.bodyruns import Runs
from helpdesk_fetch.message.parse import ParsedMessage, ParseError

ELIDE_AT = 64 * 1024  # base64 runs at least this long are sent only when the worker asks
WHOLE_BELOW = 1024 * 1024  # a smaller message is sent whole: the worker takes its runs out
START_SECONDS = 30.0  # for the worker to load its modules, on a busy machine
# The collector off from the first line: loading the parser's modules triggers collections
# that find nothing (serve() freezes what was loaded; ~5 ms of the worker's start-up).
_BOOT = ("import gc; gc.disable(); import sys; sys.path.insert(0, sys.argv[1]); "
         "from helpdesk_fetch.message.worker import serve; serve(int(sys.argv[2]))")


class Unparseable(Exception):
    """The message cannot be parsed; ``str()`` is the reason it is set aside with."""


class ParseTimeout(Unparseable):
    """Parsing the message took longer than parse_seconds."""


@dataclass
class Request:
    """One message as the worker gets it, and what the parent keeps to finish its result."""

    header: wire.Header
    skeleton: bytes
    runs: Runs

    @classmethod
    def of(cls, raw: bytes, *, elide_at: int = ELIDE_AT, whole_below: int = WHOLE_BELOW) -> Request:
        """The request for *raw*. A message under *whole_below* bytes goes whole, and the worker
        takes its runs out and decodes its attachments (Python work, under this process's GIL
        when done here: a fifth of a fetch's); a larger one is taken apart here, and its base64
        runs of at least *elide_at* bytes are sent only if the worker asks."""
        if len(raw) < whole_below:
            return cls(wire.Header("", [], [], len(raw), whole=True), raw, Runs(raw, [], ""))
        skeleton, runs = Runs.take_out(raw)
        sent = [end - start < elide_at or not runs.is_base64(index)
                for index, (start, end) in enumerate(runs.spans)]
        header = wire.Header(runs.nonce, runs.spans, sent, len(skeleton))
        return cls(header, skeleton, runs)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The bytes on the wire: header, skeleton, the runs sent, then the others."""
        header = pickle.dumps(self.header, protocol=pickle.HIGHEST_PROTOCOL)
        yield wire.LENGTH.pack(len(header)) + header
        yield self.skeleton
        raw = memoryview(self.runs.raw)
        for wanted in (True, False):
            for (start, end), sent in zip(self.header.spans, self.header.sent, strict=True):
                if sent == wanted:
                    yield raw[start:end]


class Parser:
    """Parses messages in a worker process, each within *seconds*.

    ``submit`` may be called from any thread once ``start`` was called from the thread that
    outlives the parser (the main thread: Linux ties the worker's parent-death signal to the
    thread that started it); ``result``, ``parse``, ``discard`` and ``close`` from that thread.
    """

    def __init__(self, seconds: float, *, elide_at: int = ELIDE_AT,
                 whole_below: int = WHOLE_BELOW) -> None:
        self.seconds, self.elide_at, self.whole_below = seconds, elide_at, whole_below
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._requests: dict[int, Request] = {}  # submitted, result not yet taken
        self._next = 0  # the next ticket
        self._first = 0  # the oldest ticket whose result is still to be read

    def __enter__(self) -> Parser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker now, if it is not running (it loads while the mail is read). One
        that has ended with nothing asked of it (started ahead for an account whose mail was
        all stored already, and died during its start-up) is replaced: else the next account's
        first message would find it dead."""
        with self._lock:
            if self._worker is not None and not self._requests and self._worker.ended():
                self._worker.stop(kill=True)
                self._worker = None
            if self._worker is None:
                self._worker = _Worker()

    def submit(self, raw: bytes) -> int:
        """Have *raw* parsed in the background; the ticket for ``result``."""
        request = Request.of(raw, elide_at=self.elide_at,  # in the caller's thread
                             whole_below=self.whole_below)
        if self._worker is None and threading.current_thread() is threading.main_thread():
            self.start()
        with self._lock:
            if self._worker is None:
                raise RuntimeError("Parser.start() first, from the main thread")
            ticket, self._next = self._next, self._next + 1
            self._requests[ticket] = request
            self._worker.send(request)
        return ticket

    def parse(self, raw: bytes) -> ParsedMessage:
        """*raw* parsed within the budget; Unparseable (ParseTimeout) when it cannot be."""
        return self.result(self.submit(raw))

    def result(self, ticket: int, *, idle: Callable[[], None] | None = None,
               idle_after: float = 0.0) -> ParsedMessage:
        """The parse of the message *ticket*; results of older tickets not asked for are
        dropped. Unparseable (ParseTimeout) when it cannot be parsed (in time). *idle* is called
        whenever this has waited *idle_after* seconds for the worker."""
        if not self._first <= ticket < self._next:
            raise ValueError(f"ticket {ticket} was answered or discarded before")
        while True:
            current = self._first
            outcome = self._receive(current, idle, idle_after)
            request = self._requests.pop(current)
            self._first += 1
            if current == ticket:
                break
        if isinstance(outcome, Unparseable):
            raise outcome
        return _resolve(outcome, request.runs)

    def discard(self) -> None:
        """Forget every message submitted and not asked for (an account is done): a worker
        still busy with them is stopped rather than waited for."""
        with self._lock:
            if self._requests and self._worker is not None:
                self._worker.stop(kill=True)
                self._worker = None
            self._requests.clear()
            self._first = self._next

    def close(self) -> None:
        """Stop the worker: it ends when its input does; one that still has work, or never
        answered (started ahead and not needed), is killed rather than waited for."""
        with self._lock:
            if self._worker is not None:
                self._worker.stop(kill=bool(self._requests) or not self._worker.ready)
                self._worker = None
            self._requests.clear()
            self._first = self._next

    def _receive(self, ticket: int, idle: Callable[[], None] | None = None,
                 idle_after: float = 0.0) -> ParsedMessage | Unparseable:
        worker = self._worker
        assert worker is not None, "a ticket is only handed out while a worker runs"
        try:
            worker.wait_ready()
        except ParserUnavailable:
            with self._lock:
                self._worker = None
                self._requests.clear()
                self._first = self._next
            raise
        try:
            if idle is not None and not worker.answering(idle_after):
                idle()
            kind, _, _ = worker.frame(time.monotonic() + self.seconds)
            assert kind == wire.STARTED, kind
            if idle is not None and not worker.answering(idle_after):  # the parse takes its time
                try:
                    idle()
                except BaseException:  # its STARTED is read: a new worker parses it again
                    self._replace(after=ticket - 1)
                    raise
            kind, elapsed, payload = worker.frame(time.monotonic() + self.seconds)
        except _Late:
            self._replace(after=ticket)
            return ParseTimeout(f"parsing took longer than parse_seconds ({self.seconds:g} s)")
        except _Gone as exc:
            self._replace(after=ticket)
            return Unparseable(f"the parse worker ended while parsing it ({exc})")
        if elapsed > self.seconds:  # it finished, but while this process was busy elsewhere
            return ParseTimeout(f"parsing took longer than parse_seconds ({self.seconds:g} s)")
        if kind == wire.FAILED:
            return Unparseable(f"cannot be parsed: {payload.decode('utf-8', 'replace')}")
        parsed: ParsedMessage = pickle.loads(payload)  # what the worker pickled
        return parsed

    def _replace(self, *, after: int) -> None:
        """Kill the worker and start another, which gets the messages after *after* again."""
        with self._lock:
            if self._worker is not None:
                self._worker.stop(kill=True)
            self._worker = _Worker()
            for ticket, request in self._requests.items():
                if ticket > after:
                    self._worker.send(request)


def _resolve(parsed: ParsedMessage, runs: Runs) -> ParsedMessage:
    """Decode here the attachments the worker left in the message's runs."""
    for attachment in parsed.attachments:
        if attachment.run is not None:
            attachment.content, attachment.run = runs.decode(attachment.run), None
    return parsed


# -- the worker process, seen from here ----------------------------------------------------------

class _Late(Exception):
    """The worker did not answer in time."""


class _Gone(Exception):
    """The worker's output ended: it died."""


class _Worker:
    """One worker process, a thread that feeds it requests, and the reading of its answers."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent.parent)
        try:
            # -I: no PYTHON* variables, no user site; -S: no site at all, as the worker needs
            # the standard library and this package only (a virtual environment's .pth files
            # cost ~5 ms of its start-up)
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _BOOT, package_root, str(os.getpid())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                close_fds=True)
        except OSError as exc:
            raise ParserUnavailable(f"cannot start the parse worker: {exc.strerror}") from None
        assert self.proc.stdout is not None and self.proc.stdin is not None  # PIPEs, above
        self.stdout = self.proc.stdout
        self.fd = self.stdout.fileno()
        self.buffer = bytearray()
        self.ready = False
        self.started = 0.0  # when the worker began its current message, by its clock
        self.queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        feeder = threading.Thread(target=_feed, args=(self.queue, self.proc.stdin),
                                  name="parse-feeder", daemon=True)
        feeder.start()
        self._finalizer = weakref.finalize(self, _shut, self.proc, self.queue)

    def send(self, request: Request) -> None:
        self.queue.put(request)

    def ended(self) -> bool:
        """Whether the process has ended (it answers nothing more)."""
        return self.proc.poll() is not None

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            kind, why = self.read(1, time.monotonic() + START_SECONDS), ""
        except _Late:
            kind, why = b"", f"no answer within {START_SECONDS:g} s"
        except _Gone as exc:
            kind, why = b"", str(exc)
        if kind != wire.READY:
            self.stop(kill=True)
            raise ParserUnavailable(f"the parse worker ({sys.executable} -I -S) did not start: "
                                    f"{why or 'it answered nonsense'}; no message was parsed")
        self.ready = True

    def answering(self, within: float = 0.0) -> bool:
        """Whether some of the next answer is here, or comes *within* seconds (reading it
        would not wait long)."""
        return bool(self.buffer) or bool(select.select([self.fd], [], [], within)[0])

    def frame(self, deadline: float) -> tuple[bytes, float, bytes]:
        """The next answer: (kind, seconds the parse took by the worker's clock, payload)."""
        kind = self.read(1, deadline)
        rest = time.monotonic() + START_SECONDS  # written with its first byte, in one go
        stamp = wire.TIME.unpack(self.read(wire.TIME.size, rest))[0]
        if kind == wire.STARTED:
            self.started = stamp
            return kind, 0.0, b""
        size = wire.LENGTH.unpack(self.read(wire.LENGTH.size, rest))[0]
        return kind, stamp - self.started, self.read(size, time.monotonic() + START_SECONDS)

    def read(self, size: int, deadline: float) -> bytes:
        """Exactly *size* bytes of the worker's output; _Late at *deadline*, _Gone at its end."""
        while len(self.buffer) < size:
            left = deadline - time.monotonic()
            if not select.select([self.fd], [], [], max(left, 0))[0]:
                raise _Late()
            chunk = os.read(self.fd, max(size - len(self.buffer), 1 << 16))
            if not chunk:
                raise _Gone(self._how_it_ended())
            self.buffer += chunk
        with memoryview(self.buffer) as view:  # one copy (a slice of the bytearray is another)
            data = bytes(view[:size])
        del self.buffer[:size]
        return data

    def _how_it_ended(self) -> str:
        try:
            code = self.proc.wait(1)
        except subprocess.TimeoutExpired:
            return "its output ended"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def stop(self, *, kill: bool) -> None:
        """End the worker: at once (*kill*), or by ending its input."""
        self.queue.put(None)
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        self._finalizer.detach()


def _feed(requests: queue.SimpleQueue[Request | None], stdin: IO[bytes]) -> None:
    """The feeder thread: writes requests to the worker (a write blocks while it is busy, so not
    in the thread that reads its answers)."""
    fd = stdin.fileno()
    try:
        while (request := requests.get()) is not None:
            for chunk in request.chunks():
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    except OSError:  # the worker died or was killed: whoever reads its answers says why
        pass
    finally:
        stdin.close()


def _shut(proc: subprocess.Popen[bytes], requests: queue.SimpleQueue[Request | None]) -> None:
    """A worker whose Parser was dropped without close() (or at interpreter exit)."""
    requests.put(None)
    proc.kill()
    proc.wait()


__all__ = ["ParseError", "ParseTimeout", "Parser", "ParserUnavailable", "Unparseable"]
