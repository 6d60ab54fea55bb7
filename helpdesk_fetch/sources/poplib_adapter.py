"""Everything that reaches into poplib's private parts, in one place (bounds in setup.cfg;
tests/test_adapters.py notices when one changes).

poplib has no public way to read a response line by line, to send a command without its
response being parsed, or to watch its socket while its constructor connects; POP3 needs all
three: ``RETR`` without a list of every line, SASL exchanges (``AUTH XOAUTH2``), a protocol
trace that never shows a password, and the run's cutoff on the socket from its first byte.
"""

from __future__ import annotations

import logging
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from helpdesk_fetch.sources.base import Cutoff
from helpdesk_fetch.sources.net import BadGreeting

# poplib refuses lines over 2048 bytes, which real mail has (RFC 5322 asks for 998, not everybody
# listens); allow long lines while still bounding a runaway server.
MAX_LINE = 4 * 1024 * 1024


# Commands written at once to a server that offers PIPELINING: their answers, a line each, fit
# any socket buffer, so neither side can block the other while both write.
PIPELINE_COMMANDS = 100

# the -vvv protocol trace, like imaplib's (the name the CLI's logging setup knows)
TRACE = logging.getLogger("helpdesk_fetch.sources.pop3.protocol")


class Session(poplib.POP3):
    """poplib with long lines allowed, a greeting that is not POP3's told from other errors
    (BadGreeting), a protocol trace in which no secret appears (poplib's own debug output
    prints PASS in the clear, so it is never turned on), and its raw socket shown to the cutoff
    as soon as it is connected (poplib does TLS and reads the greeting inside its
    constructor)."""

    _secret_next = False

    def __init__(self, cutoff: Cutoff, *args: Any, **kwargs: Any) -> None:
        self._cutoff = cutoff
        try:
            super().__init__(*args, **kwargs)
        except poplib.error_proto as exc:  # the greeting is all that is read in here
            raise BadGreeting(error_text(exc)) from None
        except TimeoutError:
            if getattr(self, "file", None) is None:  # connecting (or TLS) timed out
                raise
            raise BadGreeting(None) from None  # connected, then nothing: a TLS port?

    def _create_socket(self, timeout: float | None) -> socket.socket:
        context = self.context if isinstance(self, _POP3_SSL) else None
        return self._cutoff.connect(self.host, self.port, timeout, context)

    # poplib's private methods are not in the stdlib's stubs: the overrides below declare them
    # (their types), and their calls into poplib's own are marked.

    def _putcmd(self, line: str) -> None:
        upper = line.upper()
        if upper.startswith(("PASS ", "APOP ")):
            shown = line.split(" ", 1)[0] + " ***"
        elif upper.startswith("AUTH ") and len(line.split()) > 2:  # an initial response
            shown = " ".join(line.split()[:2]) + " ***"
        elif self._secret_next and line:
            shown = "***"  # a SASL response: the password or token, base64-encoded
        else:
            shown = line
        self._secret_next = upper.startswith("AUTH ") or (self._secret_next and not line)
        TRACE.debug("> %s", shown)
        super()._putcmd(line)  # type: ignore[misc]

    def _getresp(self) -> bytes:
        try:
            resp: bytes = super()._getresp()  # type: ignore[misc]
        except poplib.error_proto as exc:
            TRACE.debug("< %s", error_text(exc))
            raise
        TRACE.debug("< %s", resp.decode("utf-8", "replace"))
        return resp

    def _getline(self) -> tuple[bytes, int]:
        return _line(self.file.readline(MAX_LINE + 1))


class LineTooLong(poplib.error_proto):
    """The server sent a line longer than allowed: whatever followed it is unread, so the
    session cannot go on (no answer after it would be the one it seems)."""


def _line(line: bytes, max_line: int = MAX_LINE) -> tuple[bytes, int]:
    """A line as read (``readline(max_line + 1)``) without its line end, and its length."""
    if len(line) > max_line:
        raise LineTooLong(f"-ERR line longer than {max_line} bytes")
    if not line:  # not poplib's error_proto("-ERR EOF"), which reads as the server's "no"
        raise EOFError("the server closed the connection")
    octets = len(line)
    if line[-2:] == b"\r\n":
        return line[:-2], octets
    if line[:1] == b"\r":
        return line[1:-1], octets
    return line[:-1], octets


class _POP3(Session, poplib.POP3):
    pass


class _POP3_SSL(Session, poplib.POP3_SSL):
    context: ssl.SSLContext  # set by POP3_SSL (not in the stdlib's stubs)


def connect(cutoff: Cutoff, host: str, port: int, *, timeout: float,
            context: ssl.SSLContext | None) -> Session:
    """A POP3 session, in TLS from the start when *context* is given (POP3S)."""
    if context is not None:
        return _POP3_SSL(cutoff, host, port, timeout=timeout, context=context)
    return _POP3(cutoff, host, port, timeout=timeout)


def command(conn: Session, line: str) -> bytes:
    """Send *line* and return the server's one-line answer (``+OK``, or a SASL ``+``
    challenge, which poplib's public commands cannot take); ``poplib.error_proto`` on -ERR."""
    answer: bytes = conn._shortcmd(line)  # type: ignore[attr-defined]  # private, as above
    return answer


def pipelined(conn: Session, lines: list[str]) -> None:
    """Send *lines*, commands with a one-line answer, PIPELINE_COMMANDS at a time, each group
    in one write and its answers read after it (RFC 2449 PIPELINING): ``poplib.error_proto`` for
    the first -ERR, raised once every answer of its group has been read, as ``command`` would
    for each. What follows an -ERR in its group was sent all the same: for DELE, whose effect
    waits for QUIT, that changes nothing, as the session that failed ends without one."""
    for start in range(0, len(lines), PIPELINE_COMMANDS):
        group = lines[start:start + PIPELINE_COMMANDS]
        for line in group:
            TRACE.debug("> %s", line)
        conn.sock.sendall("".join(f"{line}\r\n" for line in group).encode(conn.encoding))
        refused: list[poplib.error_proto] = []
        for _ in group:
            try:
                conn._getresp()
            except LineTooLong:  # the rest of that line is unread: no answer after it counts
                raise
            except poplib.error_proto as exc:
                refused.append(exc)
        if refused:
            raise refused[0]


def error_text(exc: Exception) -> str:
    """The server's words in a poplib error (poplib keeps them as bytes)."""
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def command_only(conn: Session, line: str) -> None:
    """Send *line* without reading its answer (a pipelined RETR: ``retr_answer`` reads it)."""
    conn._putcmd(line)


def retr_answer(conn: Session, *, max_line: int = MAX_LINE) -> bytes:
    """The answer to a RETR: the message with CRLF line ends, as ``b"\\r\\n".join(retr()[1])
    + CRLF`` would be, without poplib's list of lines (for a 25 MB attachment 440,000 bytes
    objects, 50 MB, before the join). A line may be up to *max_line* bytes long (the caller
    allows the message's listed size: a mail of one long line is mail); a longer one is
    LineTooLong.

    Read in the blocks the connection has buffered, not line by line (a line was a few Python
    calls: a fifth of a POP3 run's CPU outside parsing, in the reader thread, holding the GIL
    the writer waits for): up to the end line ``.``, with every line ending in CRLF and none
    longer than max_line, the message is those bytes with the dot-stuffing undone. Anything else
    (a bare LF, a long line, the connection ending first) is read on line by line from where
    the blocks stopped, exactly as before."""
    conn._getresp()
    file: Any = conn.file  # a BufferedReader (socket.makefile("rb")): peek is not in BinaryIO
    data = bytearray()
    partial = 0  # the length of the line begun at the end of *data*
    while block := file.peek(1)[:max_line]:  # what is buffered; one read from the socket if none
        start = len(data)
        data += block
        if data.startswith(b".\r\n"):
            end = 0  # where the end line begins; -1: not in *data*
        else:
            at = data.find(b"\n.\r\n", max(start - 4, 0))
            end = at + 1 if at >= 0 else -1
        upto = end + 3 if end >= 0 else len(data)  # what is taken of *data* now
        first = data.find(b"\n", start, upto)
        last = data.rfind(b"\n", start, upto)
        clean = (data.count(b"\n", start, upto) == data.count(b"\r\n", max(start - 1, 0), upto)
                 and (partial + first - start + 1 if first >= 0 else partial + upto - start)
                 <= max_line)
        if not clean:  # a bare LF or a long line: this block is read on line by line
            del data[start:]
            break
        partial = upto - last - 1 if last >= 0 else partial + upto - start
        file.read(upto - start)
        if end >= 0:  # the end line
            del data[end:]
            if data.startswith(b".."):
                del data[0]
            raw = bytes(data)
            data = bytearray()
            return raw.replace(b"\r\n..", b"\r\n.") if b"\r\n.." in raw else raw
    return _by_lines(conn, bytes(data), max_line)


_END_LINE = re.compile(rb"\n\.\r?\n")  # the "." that ends a multi-line answer, on its own line


def bounded_answer(conn: Session, limit: int) -> bytes:
    """The first *limit* bytes of a multi-line answer (TOP's), dot-stuffing undone; the rest is
    read and dropped, in the blocks the connection buffers, so that memory stays bounded and
    the session in step whatever the server sends (a header of 100 MB on one line)."""
    conn._getresp()
    file: Any = conn.file  # as in retr_answer
    kept = bytearray()
    read = 0  # bytes of the answer read before *block*
    tail = b"\n"  # the end of what was read: the answer begins a line
    while block := file.peek(1):
        seen = tail + block
        end = _END_LINE.search(seen)
        size = end.end() - len(tail) if end else len(block)  # of *block*, taken now
        if len(kept) < limit:
            kept += block[:min(size, limit - len(kept))]
        file.read(size)
        if end is not None:
            del kept[read + end.start() + 1 - len(tail):]  # the end line is not the answer's
            data = bytes(kept[1:] if kept.startswith(b"..") else kept)
            return data.replace(b"\n..", b"\n.") if b"\n.." in data else data
        read += size
        tail = seen[-3:]
    raise EOFError("the server closed the connection")


def _by_lines(conn: Session, read: bytes, max_line: int = MAX_LINE) -> bytes:
    """The rest of ``retr`` line by line, *read* (from the connection) first."""
    message = bytearray()
    lines = _lines(conn, read, max_line)
    line, _ = _line(next(lines), max_line)
    while line != b".":
        message += line[1:] if line.startswith(b"..") else line
        message += b"\r\n"
        line, _ = _line(next(lines), max_line)
    return bytes(message)


def _lines(conn: Session, read: bytes, max_line: int) -> Iterator[bytes]:
    """The lines of the response as ``readline(max_line + 1)`` gives them, *read* first."""
    start = 0
    while (newline := read.find(b"\n", start)) >= 0:
        yield read[start:newline + 1]
        start = newline + 1
    tail = read[start:]  # at most max_line bytes (retr)
    if tail:  # a line begun in *read*: its rest comes from the connection
        yield tail + conn.file.readline(max_line + 1 - len(tail))
    while True:
        yield conn.file.readline(max_line + 1)
