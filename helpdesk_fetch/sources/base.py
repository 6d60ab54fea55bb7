"""The one interface every mail source implements.

A source knows nothing about tickets. It lists messages with their sizes and stable source keys,
hands out raw bytes in bounded batches, deletes what the caller has stored, and moves aside what the
caller could not ingest. Deletion is only ever requested after the database commit (spec §4.1); the
source may buffer deletions and make them final in ``flush()`` or ``close()``.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import socket
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar

from helpdesk_fetch.config import Account
from helpdesk_fetch.errors import ConfigError, SetAsideRefused

T = TypeVar("T")
log = logging.getLogger(__name__)

FETCH_BATCH_MESSAGES = 100
FETCH_BATCH_BYTES = 2 * 1024 * 1024
# The first batch is small, and each next one twice as large up to FETCH_BATCH_BYTES: the run
# starts on its first messages while the next batch is read (a whole first batch of 2 MiB kept
# it waiting 25-30 ms over IMAPS), and reading stays ahead of storing from then on.
FIRST_BATCH_BYTES = 128 * 1024
# What is read of the header of a message set aside without being downloaded (too large), for its
# record: who sent it, its subject (``errors list``). Real headers with a long Received chain and
# DKIM signatures are some 10-20 KB.
HEADER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message in a mailbox: its source key (unique per account), size and handle."""

    key: str  # "imap:<uidvalidity>:<uid>", "pop3:<uidl>:<size>", "maildir:<name>"
    size: int
    handle: object  # the source's own address for it: a UID, a message number, a path


@dataclass(frozen=True, slots=True)
class Withheld:
    """A message the server handed over as something other than what it listed (POP3: a size
    that is not LIST's), so it is not taken: why, and what was handed over instead."""

    ref: MessageRef
    reason: str
    handed_over: bytes


class MessageActions(Protocol):
    """What the writer does with a message once its fate is known: a ``Mailbox``, or the
    prefetch ``Reader`` that stands in for it while it owns the connection (and carries these
    out between its reads)."""

    def delete(self, refs: list[MessageRef]) -> None: ...

    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None: ...

    def aside_location(self) -> str: ...


class Mailbox(ABC):
    """A connected mail source. Use as a context manager: ``with get_mailbox(...) as box:``."""

    def __init__(self, account: Account, *, password: str | None, timeout: float,
                 error_folder: str, dry_run: bool = False, cutoff: Cutoff | None = None) -> None:
        self.account = account
        self.password = password
        self.timeout = timeout
        self.error_folder = error_folder
        self.dry_run = dry_run
        self.cutoff = cutoff or Cutoff()  # the caller's: it can cut the opening too
        # How many messages the server said the folder holds as it was opened (IMAP's EXISTS);
        # None where it says nothing before it is asked for the list.
        self.announced: int | None = None
        self.interrupted = False  # interrupt() has broken the session off
        # Ctrl-C came, and what was stored is deleted: the session ends as it normally does
        self.close_when_interrupted = False

    def __enter__(self) -> Mailbox:
        try:
            self.open()
        except BaseException:  # __exit__ is not called when __enter__ fails
            with contextlib.suppress(Exception):
                self.abort()
            self.cutoff.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.close()
            elif self.close_when_interrupted and issubclass(exc_type, KeyboardInterrupt):
                self._close_quietly()
            else:
                self.abort()
        finally:
            self.cutoff.release()

    def _close_quietly(self) -> None:
        """close(), while an interrupt is on its way out: a failure only drops the session."""
        try:
            self.close()
        except Exception:
            log.debug("closing %s after the interrupt failed", self.account.name, exc_info=True)
            with contextlib.suppress(Exception):
                self.abort()

    @abstractmethod
    def open(self) -> None:
        """Connect, secure the connection, log in, select the folder."""

    @abstractmethod
    def list(self) -> list[MessageRef]:
        """Every message waiting, oldest first."""

    @abstractmethod
    def fetch(self, refs: builtins.list[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        """The raw bytes of *refs* (which fit one batch), without marking anything as read."""

    @abstractmethod
    def delete(self, refs: builtins.list[MessageRef]) -> None:
        """Remove *refs*, which the caller has durably stored; may be buffered until flush()."""

    @abstractmethod
    def aside_location(self) -> str:
        """Where set_aside() puts messages, for the record and the log."""

    @abstractmethod
    def set_aside(self, ref: MessageRef, *, again: bool = False) -> None:
        """Move a message that could not be ingested out of the way (to aside_location()).

        *again*: an earlier run already began to set this very message aside, and may have died
        half-way; the move must not leave it there twice."""

    def withheld(self) -> builtins.list[Withheld]:
        """Messages fetch() skipped since the last call because the server handed over
        something other than what it listed (POP3, ``as_listed``); the caller records them as
        failed. They stay on the server."""
        return []

    def aside_folder_name(self) -> str | None:
        """The full name of the folder set_aside() moves messages into; None where it moves
        nothing (POP3)."""
        return None

    def namespace(self) -> dict[str, str] | None:
        """The personal namespace the server announced (IMAP, RFC 2342: ``prefix`` and
        ``separator``); None without one."""
        return None

    def flush(self) -> None:  # noqa: B027 - most sources delete at once; IMAP buffers
        """Make buffered deletions final (after each batch)."""

    def headers(self, ref: MessageRef) -> bytes | None:
        """The start of *ref*'s header block, at most HEADER_BYTES of it, without downloading
        the message; None where the source cannot tell (the server refused, or has no way)."""
        return None

    def unreadable(self, ref: MessageRef) -> str | None:
        """Why the listed *ref* must not even be read (it is set aside unread), or None."""
        return None

    def count(self) -> int:
        """How many messages wait (for ``accounts test``)."""
        return len(self.list())

    @abstractmethod
    def close(self) -> None:
        """Finish the session, making deletions final."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the session after an error; nothing more is sent to the server."""

    def interrupt(self) -> None:
        """Make a read or write in progress in another thread fail at once, without closing
        anything: a closed descriptor's number could be handed to a new connection while that
        thread (OpenSSL inside it) still uses it. ``abort`` follows once the thread is done."""
        self.interrupted = True
        self.cutoff.interrupt()

    def description(self) -> str:
        return f"{self.account.protocol} {self.account.server}"

    def given(self, value: T | None, key: str) -> T:
        """*value*, the account's *key*, which loading the accounts file made sure of for this
        protocol (a server's host, port and username; a Maildir's path), or the password (or
        token) the caller got for a server."""
        if value is None:
            raise ConfigError("missing: this account needs it", account=self.account.name,
                              key=key)
        return value

    @contextlib.contextmanager
    def deadline(self, seconds: float, *, why: str) -> Iterator[None]:
        """Cut the connection if the session (opening included) lasts longer than *seconds*;
        *why* tells the user which limit that was."""
        timer = threading.Timer(max(seconds, 0.0), self.cutoff.cut, args=(why,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()


class Cutoff:
    """Lets another thread cut a session's connection at once: the run's time budget is over.

    A per-read socket timeout cannot stop a server that trickles a byte every few seconds (each
    read succeeds), nor a slow TLS handshake or greeting. Shutting the socket down makes every
    blocked or later read and write fail at once, whatever the protocol library is doing; the
    session then fails like a lost line, and nothing is deleted that was not stored. Sources
    hand over their raw socket as soon as it is connected (``watch``)."""

    def __init__(self) -> None:
        self.fired = False
        self.why = ""
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def watch(self, sock: socket.socket) -> None:
        # A duplicate of the descriptor: it stays valid whatever TLS wrapping does to *sock*.
        dup = socket.socket(fileno=os.dup(sock.fileno()))
        with self._lock:
            self._sockets.append(dup)
            if self.fired:
                _shut(dup)

    def cut(self, why: str) -> None:
        """The time budget is over: shut the connections down, and say so in their errors."""
        with self._lock:
            self.fired, self.why = True, why
        self.interrupt()

    def connect(self, host: str, port: int, timeout: float | None,
                context: ssl.SSLContext | None = None) -> socket.socket:
        """A connection to *host* that this cutoff watches from its first byte, in TLS when a
        *context* is given (for protocol libraries that connect inside their constructor).
        Once cut, none is made: a mailbox opened ahead for a run that has ended (ingest/ahead.py)
        does not reach the server, nor OpenSSL's handshake, after the run let it go."""
        self._refuse_when_cut()
        sock = socket.create_connection((host, port), timeout)
        self.watch(sock)
        self._refuse_when_cut(sock)  # a lookup or connect that outlasted the run
        return sock if context is None else context.wrap_socket(sock, server_hostname=host)

    def _refuse_when_cut(self, sock: socket.socket | None = None) -> None:
        if self.fired:
            if sock is not None:
                sock.close()
            raise ConnectionAbortedError(f"not connected: {self.why}")

    def interrupt(self) -> None:
        """Shut the connections down: every blocked or later read and write fails at once."""
        with self._lock:
            for sock in self._sockets:
                _shut(sock)

    def release(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


Told = Callable[[MessageRef, SetAsideRefused | None], None]


def set_aside(box: Mailbox, ref: MessageRef, *, again: bool, told: Told) -> None:
    """Set *ref* aside in *box*, then tell *told* how that went: None once the mailbox has it
    aside, else the refusal (the message stays where it was; the session goes on). So a
    message is reported as moved only after the server said so."""
    try:
        box.set_aside(ref, again=again)
    except SetAsideRefused as exc:
        return told(ref, exc)
    told(ref, None)


def handle(ref: MessageRef, kind: type[T]) -> T:
    """*ref*'s handle, of the *kind* its mailbox made it (a UID, a message number, a path)."""
    if not isinstance(ref.handle, kind):
        raise TypeError(f"{ref.key} is not a message of this mailbox")
    return ref.handle


def batches(refs: list[MessageRef]) -> Iterator[list[MessageRef]]:
    """*refs* in groups bounded by count and total size, so memory stays flat; the first ones
    smaller (FIRST_BATCH_BYTES)."""
    batch: list[MessageRef] = []
    size, limit = 0, FIRST_BATCH_BYTES
    for ref in refs:
        if batch and (len(batch) >= FETCH_BATCH_MESSAGES or size + ref.size > limit):
            yield batch
            batch, size, limit = [], 0, min(2 * limit, FETCH_BATCH_BYTES)
        batch.append(ref)
        size += ref.size
    if batch:
        yield batch


