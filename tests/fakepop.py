"""A deliberately broken POP3 server, for what Dovecot will not do: give two messages one UIDL,
give a UIDL again to a new message, refuse to hand over or delete one message, know no UIDL at
all, count sizes with LF line ends or understate them.

Plain text on loopback (accounts with ``security = "none"``); every command is logged.
"""

from __future__ import annotations

import select
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Mailbox:
    messages: list[tuple[str, bytes]]  # (UIDL, message with CRLF line ends)
    no_uidl: bool = False
    refuse_retr: set[int] = field(default_factory=set)  # message numbers RETR answers -ERR for
    lf_sizes: set[int] = field(default_factory=set)  # message numbers LIST counts with LF ends
    refuse_dele: set[int] = field(default_factory=set)  # message numbers DELE answers -ERR for
    listed: dict[int, int] = field(default_factory=dict)  # message number -> the size LIST says
    pipelining: bool = False  # CAPA offers PIPELINING (else CAPA is unknown, as RFC 1939's)
    top: bool = False  # TOP n 0 answered (it is optional in RFC 1939)
    top_breaks: bool = False  # ... with the connection dropped half-way
    note_sent_ahead: bool = False  # for each RETR, note whether the next command came before
    sent_ahead: list[bool] = field(default_factory=list)  # its answer went out
    log: list[str] = field(default_factory=list)


class FakePop3:
    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(box))
        self.server.daemon_threads = True
        self.server.socket.setblocking(False)  # see tests/oauth_server.py
        self.port = self.server.server_address[1]

    def __enter__(self) -> FakePop3:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def account(self, name: str = "pop") -> dict:
        return {"name": name, "protocol": "pop3", "host": "127.0.0.1", "port": self.port,
                "security": "none", "username": "u", "password": "p"}


def _handler(box: Mailbox):
    class Session(socketserver.StreamRequestHandler):
        def send(self, text: str | bytes) -> None:
            self.wfile.write(text if isinstance(text, bytes) else text.encode())
            self.wfile.flush()

        def handle(self) -> None:
            deleted: set[int] = set()
            self.send("+OK fake POP3\r\n")
            self.pending = b""  # read from the client, not yet taken as a command
            while (line := self.line()) is not None:
                command = line.decode().strip()
                box.log.append(command)
                verb, _, arg = command.partition(" ")
                if verb.upper() == "RETR" and box.note_sent_ahead:
                    # the client's next command: sent before this answer? (a pipelining client's
                    # is on its way at once; waited for a moment, then taken as not sent)
                    if b"\n" not in self.pending:
                        self.receive(timeout=0.5)
                    box.sent_ahead.append(b"\n" in self.pending)
                if self.answer(verb.upper(), arg, deleted):
                    return

        def line(self) -> bytes | None:
            while b"\n" not in self.pending:
                if not self.receive(timeout=None):
                    return None
            line, self.pending = self.pending.split(b"\n", 1)
            return line

        def receive(self, timeout: float | None) -> bool:
            if timeout is not None and not select.select([self.request], [], [], timeout)[0]:
                return True
            chunk = self.request.recv(65536)
            self.pending += chunk
            return bool(chunk)

        def size(self, number: int, raw: bytes) -> int:
            if number in box.listed:
                return box.listed[number]
            return len(raw) - (raw.count(b"\r\n") if number in box.lf_sizes else 0)

        def send_lines(self, raw: bytes) -> None:
            lines = raw.split(b"\r\n")[:-1]
            stuffed = b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines)
            self.send(b"+OK\r\n" + stuffed + b".\r\n")

        def answer(self, verb: str, arg: str, deleted: set[int]) -> bool:
            live = [(n, m) for n, m in enumerate(box.messages, 1) if n not in deleted]
            if verb in ("USER", "PASS", "NOOP"):
                self.send("+OK\r\n")
            elif verb == "UIDL" and not box.no_uidl:
                self.send("+OK\r\n" + "".join(f"{n} {m[0]}\r\n" for n, m in live) + ".\r\n")
            elif verb == "LIST":
                self.send("+OK\r\n" + "".join(f"{n} {self.size(n, m[1])}\r\n" for n, m in live)
                          + ".\r\n")
            elif verb == "STAT":
                self.send(f"+OK {len(live)} {sum(len(m[1]) for _, m in live)}\r\n")
            elif verb == "RETR" and int(arg) not in box.refuse_retr:
                self.send_lines(box.messages[int(arg) - 1][1])
            elif verb == "TOP" and box.top_breaks:
                self.send(b"+OK\r\nFrom: somebody")
                return True
            elif verb == "TOP" and box.top and arg.endswith(" 0"):
                raw = box.messages[int(arg.split()[0]) - 1][1]
                self.send_lines(raw[:raw.find(b"\r\n\r\n") + 4])  # the header and its end
            elif verb == "CAPA" and box.pipelining:
                self.send("+OK\r\nUIDL\r\nPIPELINING\r\n.\r\n")
            elif verb == "DELE" and int(arg) not in box.refuse_dele:
                deleted.add(int(arg))
                self.send("+OK\r\n")
            elif verb == "QUIT":
                box.messages = [m for n, m in enumerate(box.messages, 1) if n not in deleted]
                self.send("+OK bye\r\n")
                return True
            else:
                self.send("-ERR no\r\n")
            return False

    return Session
