"""TCP proxies of the tests' own on loopback, between helpdesk-fetch and a real server.

``CapturingProxy`` records what passes in each direction: proof of what the client sent (e.g.
that no password left before TLS). ``FaultProxy`` breaks the line on purpose: drop it after N
bytes, right after a command is sent, stall (after N bytes, or once a command is sent), or trickle.

Faults are for plain-text sessions (``security = "none"``), so that the proxy can see commands.
Each connection takes the fault set when it was accepted; ``fired`` counts the faults that
actually happened, so that a test can show its fault was not a no-op.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """What to do to a connection. Counted bytes are those from the server to the client."""

    drop_after_bytes: int | None = None  # forward this many, then close both sides
    drop_after_sent: bytes | None = None  # the client's chunk holding this reaches the server,
    #                                       no answer reaches the client, the line is closed
    stall_after_bytes: int | None = None  # forward this many, then nothing (the line stays open)
    stall_after_sent: bytes | None = None  # the client's chunk holding this reaches the server,
    #                                        then nothing reaches the client until release()
    trickle_after_bytes: int | None = None  # forward this many, then one byte per trickle_delay
    trickle_delay: float = 0.2


class FaultProxy:
    """Listens on 127.0.0.1:``port`` and forwards to 127.0.0.1:*target*."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.fault: Fault | None = None
        self.fired = 0
        self.connections = 0
        self._closing = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def release(self) -> None:
        """End a stall_after_sent: what the server said meanwhile reaches the client."""
        self._released.set()

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            line = _Line(self, client, server, self.fault)
            threading.Thread(target=line.up, daemon=True).start()
            threading.Thread(target=line.down, daemon=True).start()


class _Line:
    """One proxied connection: ``up`` pumps client -> server, ``down`` server -> client."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket,
                 fault: Fault | None) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.fault = fault or Fault()
        self.down_bytes = 0
        self.seen = b""
        self.severed = False  # nothing more goes to the client
        self.stalled = False  # nothing more goes to the client, and the line stays open

    def drop(self) -> None:
        self.proxy.fired += 1
        self.severed = True
        _close(self.client)
        _close(self.server)

    def up(self) -> None:
        pattern = self.fault.drop_after_sent
        while chunk := _recv(self.client):
            self.seen = (self.seen + chunk)[-4096:]
            if pattern is not None and pattern in self.seen:
                return self._sever_after(chunk)
            if self.fault.stall_after_sent is not None and self.fault.stall_after_sent in \
                    self.seen and not self.stalled:
                self.stalled = True
                self.proxy.fired += 1
            if not _send(self.server, chunk):
                break
        _close(self.server)

    def _sever_after(self, chunk: bytes) -> None:
        """The command reaches the server, which gets time to carry it out; its answer never
        reaches the client, whose line is closed at once."""
        self.severed = True
        self.proxy.fired += 1
        _close(self.client)
        _send(self.server, chunk)
        self.proxy._closing.wait(0.5)
        _close(self.server)

    def down(self) -> None:
        while chunk := _recv(self.server):
            chunk = self._forward_until_fault(chunk)
            if chunk is None:
                return
        _close(self.client)

    def _forward_until_fault(self, chunk: bytes) -> bytes | None:
        """Forward *chunk* as far as the fault allows; None when this line is finished."""
        f = self.fault
        while self.stalled and not self.proxy._released.wait(0.05):  # open and silent
            if self.proxy._closing.is_set():
                return None
        limits = [n for n in (f.drop_after_bytes, f.stall_after_bytes, f.trickle_after_bytes)
                  if n is not None]
        room = min(limits) - self.down_bytes if limits else len(chunk)
        head, rest = chunk[:max(room, 0)], chunk[max(room, 0):]
        if self.severed or (head and not _send(self.client, head)):
            return None
        self.down_bytes += len(head)
        if not rest:
            return chunk
        if f.drop_after_bytes is not None:
            self.drop()
            return None
        if f.stall_after_bytes is not None:
            self.proxy.fired += 1
            self.proxy._closing.wait()  # hold the line open and silent until the test ends
            return None
        return self._trickle(rest)

    def _trickle(self, rest: bytes) -> bytes | None:
        if self.down_bytes == self.fault.trickle_after_bytes:
            self.proxy.fired += 1
        for index in range(len(rest)):
            if self.proxy._closing.wait(self.fault.trickle_delay):
                return None
            if not _send(self.client, rest[index:index + 1]):
                return None
            self.down_bytes += 1
        return rest


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class CapturingProxy:
    """Listens on 127.0.0.1:``port``, forwards to *target_port*, keeps a copy of the traffic."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()  # client -> server
        self.received = bytearray()  # server -> client
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> CapturingProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for source, target, record in ((client, server, self.sent),
                                           (server, client, self.received)):
                thread = threading.Thread(target=_pump, args=(source, target, record),
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def wait(self, timeout: float = 10.0) -> None:
        """Until both directions of every connection have closed."""
        for thread in self._threads:
            thread.join(timeout)


def _pump(source: socket.socket, target: socket.socket, record: bytearray) -> None:
    try:
        while data := source.recv(65536):
            record.extend(data)
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
