"""Long runs of body lines, set aside before the stdlib parser reads a message, put back as parts
are read. It makes parsing several times cheaper and keeps a large attachment from being copied
into a list of lines, a joined string and a decoded string.

The stdlib's feedparser handles a message one line at a time in Python, testing each line for a
boundary; a 200 KB base64 attachment is 3,600 lines, and a 25 MB one holds the message several
times over in memory. Yet most lines can never matter to the structure it finds. A line matters
only if it is empty (ends a header block), starts with "-" (a boundary), with white space (a
header continuation) or with "From ", or holds a ":" (a header). Runs of at least ``MIN_LINES``
other lines are replaced, each by one placeholder line that is itself such a line, so the parser
finds exactly the same parts, headers and defects. A run is what ``_run_pattern`` matches; it is
found by searching for the few lines that break runs instead (``_runs``), which is faster. Before
a part's content is read, its placeholders are replaced by the original text (``restore``),
giving the very string the parser would have built; a base64 body that is one run is decoded
straight from the raw bytes instead (``base64_body``), which gives the same bytes, since such a
run is valid base64 from end to end.

For a message of 1 MiB or more, the parse worker (budget.py) takes the runs out in the parent and
sends the skeleton and the runs; a long base64 run is sent only if the worker asks for it
(``Received``). An attachment made of one such run comes back as ``Deferred``, and the parent
decodes it from its own copy of the message, so the worker never holds a large attachment. A
smaller message goes to the worker whole, which takes its runs out itself (``parse``).
"""

from __future__ import annotations

import binascii
import email.message
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

MIN_LINES = 8
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n"
_PIECE = 1024 * 1024
_BLANK = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"HDRUN([0-9a-f]{16})\.(\d+)\.")
_TOKEN_BYTES = re.compile(rb"HDRUN([0-9a-f]{16})\.(\d+)\.")


@dataclass(frozen=True)
class Deferred:
    """The body of an attachment that is run *run*, valid base64: decoded by whoever holds the
    message's bytes (``Runs.decode``)."""

    run: int


def _run_pattern(min_lines: int) -> re.Pattern[bytes]:
    # What a run is. A line ends in CRLF, LF or a bare CR; after a bare CR, ^ does not match.
    # Possessive: a greedy repeat would keep a backtracking point per line (70 MB for the lines
    # of a 25 MB attachment); a run is taken whole anyway.
    return re.compile(rb"(?:^(?!From |[-\s])[^\r\n:]++(?:\r\n|\r|\n)){%d,}+" % min_lines,
                      re.M)


_RUN = _run_pattern(MIN_LINES)


class Runs:
    """The runs taken out of one message: where each was in the raw bytes."""

    def __init__(self, raw: bytes, spans: list[tuple[int, int]], nonce: str) -> None:
        self.raw = raw
        self.spans = spans  # (start, end) in raw of each run, without its last line break
        self.nonce = nonce
        self._checked: set[int] = set()  # runs is_base64 found to be base64

    @classmethod
    def take_out(cls, raw: bytes, *, min_lines: int = MIN_LINES) -> tuple[bytes, Runs]:
        """*raw* with its long runs replaced by placeholder lines, and the runs."""
        nonce = secrets.token_hex(8)
        while nonce.encode() in raw:  # a placeholder must never be found in the message itself
            nonce = secrets.token_hex(8)
        pieces: list[bytes] = []
        spans: list[tuple[int, int]] = []
        last = 0
        for start, end in _runs(raw, _body_start(raw), min_lines):
            end -= 2 if raw[end - 2:end] == b"\r\n" else 1  # its last line break stays
            pieces += [raw[last:start], b"HDRUN%s.%d." % (nonce.encode(), len(spans))]
            spans.append((start, end))
            last = end
        if not spans:
            return raw, cls(raw, spans, nonce)
        pieces.append(raw[last:])
        return b"".join(pieces), cls(raw, spans, nonce)

    def piece(self, index: int) -> tuple[bytes, int, int]:
        """Where the bytes of run *index* are: (buffer, start, end)."""
        start, end = self.spans[index]
        return self.raw, start, end

    def restore_text(self, text: str) -> str:
        """*text* with every placeholder replaced by the original lines."""
        if not self.spans or "HDRUN" not in text:
            return text
        return _TOKEN.sub(self._text, text)

    def _text(self, token: re.Match[str]) -> str:
        if token.group(1) != self.nonce:
            return token.group()
        buffer, start, end = self.piece(int(token.group(2)))
        return buffer[start:end].decode("ascii", "surrogateescape")

    def restore_bytes(self, skeleton: bytes) -> bytes:
        """The message itself again, from its *skeleton*."""
        if not self.spans:
            return skeleton
        return _TOKEN_BYTES.sub(self._bytes, skeleton)

    def _bytes(self, token: re.Match[bytes]) -> bytes:
        if token.group(1) != self.nonce.encode():
            return token.group()
        buffer, start, end = self.piece(int(token.group(2)))
        return buffer[start:end]

    def is_base64(self, index: int) -> bool:
        """Whether run *index* is base64 that ``base64_body`` would decode straight."""
        buffer, start, end = self.piece(index)
        valid = _strict_base64(buffer, start, end, check_only=True) is not None
        if valid:
            self._checked.add(index)
        return valid

    def decode(self, index: int) -> bytes:
        """The decoded bytes of run *index*, known to be base64 (a Deferred body): checked by
        ``is_base64`` before it was left out, so not checked again (in the writer's thread)."""
        assert index in self._checked, "only a run checked by is_base64 is deferred"
        buffer, start, end = self.piece(index)
        return binascii.a2b_base64(memoryview(buffer)[start:end])

    def restore(self, part: email.message.Message) -> None:
        """Put the original text back into *part* and every part inside it."""
        if not self.spans:
            return
        for inner in part.walk():
            # The payload as the parser left it, private (and not in the stdlib's stubs): the
            # public get_payload() would decode it, and set_payload() reset the charset.
            payload = inner._payload  # type: ignore[attr-defined]
            if isinstance(payload, str):
                inner._payload = self.restore_text(payload)  # type: ignore[attr-defined]
            for name in ("preamble", "epilogue"):
                value = getattr(inner, name, None)
                if isinstance(value, str):
                    setattr(inner, name, self.restore_text(value))

    def base64_body(self, part: email.message.Message, *,
                    defer: bool = False) -> bytes | Deferred | None:
        """The decoded body of a base64 *part* whose payload is one run, read straight from the
        raw bytes; None when it is anything else (then ``restore`` and decode as usual).
        *defer*: Deferred instead, where the run was not sent (``Received``)."""
        payload = part._payload  # type: ignore[attr-defined]  # as in restore()
        if not (self.spans and isinstance(payload, str) and len(payload) < 100):
            return None
        if str(part.get("content-transfer-encoding", "")).lower() != "base64":
            return None
        found = _TOKEN.fullmatch(payload.strip("\r\n"))
        if found is None or found.group(1) != self.nonce:
            return None
        index = int(found.group(2))
        if defer and self.deferred(index):
            return Deferred(index)
        buffer, start, end = self.piece(index)
        return _strict_base64(buffer, start, end)

    def deferred(self, index: int) -> bool:
        """Whether run *index* was left with the message's holder (``Received``)."""
        return False


class Received(Runs):
    """The runs as the parse worker receives them: the bytes of each run, or None for a base64
    run that was left out; *load* fetches such a run when it is needed after all (it is then
    a body part's text, or inside an attached message)."""

    def __init__(self, spans: list[tuple[int, int]], nonce: str, pieces: list[bytes | None],
                 load: Callable[[int], bytes]) -> None:
        super().__init__(b"", spans, nonce)
        self.pieces, self.load = pieces, load

    def piece(self, index: int) -> tuple[bytes, int, int]:
        data = self.pieces[index]
        if data is None:
            data = self.pieces[index] = self.load(index)
        return data, 0, len(data)

    def deferred(self, index: int) -> bool:
        return self.pieces[index] is None


def _strict_base64(raw: bytes, start: int, end: int, *,
                   check_only: bool = False) -> bytes | None:
    """``raw[start:end]`` decoded, when it is base64 the stdlib decodes without a defect (valid
    but for line breaks, padding only at the end, a whole number of quads); else None.
    *check_only*: b"" instead of the decoded bytes."""
    for at in range(start, end, _PIECE):  # translate: 4x the regex's speed; a piece at a time
        if raw[at:min(end, at + _PIECE)].translate(None, _BASE64_ALPHABET):
            return None  # something else is left
    breaks = raw.count(b"\n", start, end) + raw.count(b"\r", start, end)
    pads = raw.count(b"=", start, end)
    tail = raw[max(start, end - 8):end].replace(b"\r", b"").replace(b"\n", b"")
    if (end - start - breaks) % 4 or pads > 2 or not tail.endswith(b"=" * pads):
        return None
    return b"" if check_only else binascii.a2b_base64(memoryview(raw)[start:end])


def _body_start(raw: bytes) -> int:
    """Where the body of the message begins (after the first empty line); runs are only taken
    from there on, so the top-level header block reaches the parser untouched."""
    found = _BLANK.search(raw)
    return found.end() if found else len(raw)


# -- finding the runs ---------------------------------------------------------------------------
# The regex above steps through every character of every line in Python's regex engine: a third
# of the parse of a typical message. Most lines break no run, and the few that do can be found
# faster: a line that starts with "-", white space or "From " (found by a regex that skips from
# LF to LF in a tight loop), a line with a ":" before its end (bytes.find: memchr), and the last
# line of a message if no line break ends it. A bare CR (not before an LF) ends a line for the
# regex, and what follows is not at a line start: a run ends after it. Past MAX_BREAKS of these
# lines, the regex finds the runs instead.
MAX_BREAKS = 4096
_BREAKING_START = re.compile(rb"\n(?=[-\s]|From )")
_BARE_CR = re.compile(rb"\r(?!\n)")


def _runs(raw: bytes, start: int, min_lines: int) -> list[tuple[int, int]]:
    """(start, end) of each run from *start* on: exactly the regex's matches (_run_pattern)."""
    found = _searched(raw, start, min_lines)
    if found is not None:
        return found
    pattern = _RUN if min_lines == MIN_LINES else _run_pattern(min_lines)
    return [match.span() for match in pattern.finditer(raw, start)]


def _searched(raw: bytes, start: int, min_lines: int) -> list[tuple[int, int]] | None:
    """The runs, from the lines that break them (``_breaks``); None: too many of those."""
    breaks = _breaks(raw, start) if start == 0 or raw[start - 1] == 0x0A else None
    if breaks is None:
        return None
    spans = []
    first = start  # the first of the lines that may make a run
    for line in sorted(breaks):
        bare_cr = breaks[line]  # None: the line is in no run; else a run's last line ends there
        lines, end = raw.count(b"\n", first, line), line
        if bare_cr is not None:
            lines, end = lines + 1, bare_cr + 1
        if lines >= min_lines:
            spans.append((first, end))
        newline = raw.find(b"\n", line if bare_cr is None else bare_cr)
        if newline < 0:
            return spans
        first = newline + 1
    if raw.count(b"\n", first) >= min_lines:  # up to the end: each of these lines ends in LF
        spans.append((first, len(raw)))
    return spans


def _breaks(raw: bytes, start: int) -> dict[int, int | None] | None:
    """Where each line that breaks a run starts: None for a line in no run, the place of its
    bare CR for a line that ends one. None past MAX_BREAKS lines looked at: each search below
    looks at a line once, from its start to what it finds, so this is linear in the message."""
    breaks: dict[int, int | None] = {}
    looked = 0
    if _BREAKING_START.match(b"\n" + raw[start:start + 5]):
        breaks[start] = None
    for found in _BREAKING_START.finditer(raw, start):
        breaks[found.start() + 1] = None
        looked += 1
        if looked > MAX_BREAKS:
            return None
    for bare_cr in (False, True):  # the lines with a colon, then those with a bare CR
        at = _next(raw, start, bare_cr=bare_cr)
        while at >= 0:
            looked += 1
            if looked > MAX_BREAKS:
                return None
            line = _line_of(raw, start, at)
            if bare_cr:
                breaks.setdefault(line, at)  # a line that starts with it is in no run
            elif raw.find(b"\r", line, at) < 0:  # else a bare CR ends the line before it
                breaks[line] = None
            end = raw.find(b"\n", at)
            at = _next(raw, end, bare_cr=bare_cr) if end >= 0 else -1
    last = _line_of(raw, start, len(raw))
    if last < len(raw) and raw.find(b"\r", last) < 0:
        breaks[last] = None  # the message's last line, without a line break
    return breaks


def _next(raw: bytes, start: int, *, bare_cr: bool) -> int:
    """Where the next colon (*bare_cr*: the next bare CR) is from *start* on; -1 if none."""
    if not bare_cr:
        return raw.find(b":", start)
    found = _BARE_CR.search(raw, start)
    return found.start() if found else -1


def _line_of(raw: bytes, start: int, at: int) -> int:
    """Where the line that holds *at* begins (*start* begins one)."""
    return raw.rfind(b"\n", start, at) + 1 or start
