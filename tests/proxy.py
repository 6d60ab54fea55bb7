"""A TCP proxy on loopback that records what passes in each direction: proof of what the client
sent (e.g. that no password left before TLS). Real sockets, real server behind it."""

from __future__ import annotations

import contextlib
import socket
import threading


class CapturingProxy:
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
