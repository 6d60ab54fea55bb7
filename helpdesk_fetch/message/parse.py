"""Raw bytes -> ParsedMessage, defensively (spec §4.3).

The stdlib parser runs with the lenient ``compat32`` policy (it never raises on header access and is
several times faster than ``policy.default``); headers are decoded here: RFC 2047 encoded words
(also split across folds), RFC 2231 parameters, RFC 6532 raw UTF-8 and stray 8-bit bytes.
Broken input degrades to what can be recovered; the raw message is always kept by the caller, so
nothing the sender wrote is lost. Only input that cannot even be split into header and body raises.
"""

from __future__ import annotations

import datetime as dt
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.errors import MissingHeaderBodySeparatorDefect
from typing import Any, TypeVar, overload

from helpdesk_fetch.message import boundaries
from helpdesk_fetch.message.bodyruns import MIN_LINES, Deferred, Runs
from helpdesk_fetch.message.charsets import decode_bytes, html_charset
from helpdesk_fetch.message.htmltext import html_to_text

boundaries.install()  # no regex compiled per multipart boundary (boundaries.py)

MAX_PARTS = 1000  # leaves walked per message; the rest of a pathological message stays in the raw
MAX_SUBJECT = 998
MAX_ID = 500
# What is read of one header (its folds joined) before it is decoded: a crafted 768 KB Subject is
# cut here, not after decoding it. Generous for real mail: a subject of 998 characters in RFC 2047
# words is some 6 KB, an Authentication-Results header with ARC a few KB.
MAX_HEADER = 16 * 1024
MAX_LIST_HEADER = 256 * 1024  # To, Cc, References: some thousand addresses or Message-IDs
MAX_KEPT = 50  # values kept of one header name (Delivered-To, Authentication-Results...)
MAX_HEADER_BLOCK = 256 * 1024  # what parse_headers() reads of a message set aside or seen again
MAX_OTHER_HEADERS = 200  # header fields kept beyond those read here, for [[rules]]
MAX_OTHER_VALUE = 4096  # characters of each
_ID_RE = re.compile(r"<([^<>\s]+)>")
_FOLD_RE = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")
_SPACES_RE = re.compile(r"[ \t\r\n]+")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class AttachmentData:
    filename: str
    content_type: str
    content: bytes
    run: int | None = None  # from the parse worker: a base64 run the parent decodes (Deferred)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class ParsedMessage:
    """What the rest of the program needs from a message, as clean text."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    from_addr: str = ""
    from_name: str = ""
    reply_to: str | None = None
    to_addrs: list[str] = field(default_factory=list)
    cc_addrs: list[str] = field(default_factory=list)
    date: dt.datetime | None = None  # naive UTC
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: list[AttachmentData] = field(default_factory=list)
    headers: dict[str, list[str]] = field(default_factory=dict)  # lower-case name -> values
    defects: list[str] = field(default_factory=list)
    # The other header fields, undecoded and bounded (MAX_OTHER_HEADERS, MAX_OTHER_VALUE): what
    # a [[rules]] headers condition may name (spec §10), decoded only when one asks.
    other_headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-case name, raw)
    # What a reader of the ticket must be told: something the sender wrote is shown only in
    # the raw message (stored with it), e.g. the parts past MAX_PARTS.
    notices: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of the header *name*, decoded, whether or not it is one of those kept."""
        name = name.lower()
        if name in self.headers:
            return self.headers[name]
        return [decode_header(value) for other, value in self.other_headers if other == name]


class ParseError(Exception):
    """The bytes are not a message at all."""


def parse(raw: bytes, *, min_run: int = MIN_LINES) -> ParsedMessage:
    """Parse *raw*; broken structure degrades to the headers and the body as text.

    Runs of at least *min_run* body lines bypass the line-by-line parser (bodyruns.py)."""
    return parse_runs(*Runs.take_out(raw, min_lines=min_run))


def parse_runs(skeleton: bytes, runs: Runs, *, defer: bool = False) -> ParsedMessage:
    """Parse a message whose body runs were taken out (``Runs.take_out``). *defer*: a base64
    attachment whose run was not sent comes back as ``AttachmentData.run`` (the parse worker)."""
    if not skeleton or skeleton.isspace():  # not .strip(): that would copy a large message
        raise ParseError("the message is empty")
    try:
        msg = _parse_bytes(skeleton)
        if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in msg.defects):
            # The runs are all in the body, which the repair keeps as it is.
            msg = _parse_bytes(_repair_header_block(skeleton))
        parsed = _headers(msg)
        _body(msg, parsed, runs, defer)
    except RecursionError:
        parsed = _degraded(runs.restore_bytes(skeleton),
                           "MIME structure nested too deeply; body kept as plain text")
    return parsed


def parse_headers(raw: bytes) -> ParsedMessage:
    """Only the headers of *raw* (sender, subject, Message-ID...), for messages set aside or
    seen again; never raises."""
    try:
        return _headers(_parse_bytes(raw[:_header_end(raw)], headersonly=True))
    except Exception:  # the record of a failure must not fail
        return ParsedMessage()


def _header_end(raw: bytes) -> int:
    """Where the header block ends at the latest: the stdlib reads the whole body even when
    asked for the headers only. It runs outside the parse budget (for a message that exceeded
    it), so it reads at most MAX_HEADER_BLOCK bytes."""
    found = _BLANK_LINE.search(raw, 0, MAX_HEADER_BLOCK)
    return found.end() if found else min(len(raw), MAX_HEADER_BLOCK)


def _parse_bytes(raw: bytes, *, headersonly: bool = False) -> email.message.Message:
    msg = email.parser.BytesParser(_Message, policy=email.policy.compat32).parsebytes(
        raw, headersonly=headersonly)
    _normalize_headers(msg)
    return msg


_T = TypeVar("_T")


class _Message(email.message.Message):
    """compat32's message, with two changes.

    Its boundary unfolded: a boundary folded inside its quotes (``boundary="foo`` / `` bar"``) is
    ``foo bar``, since unfolding removes only the line break (RFC 5322 §2.2.3); compat32 keeps
    the break, and no delimiter line would ever match.

    Its MIME parameters (charset, boundary, file name) split in one pass, of at most MAX_HEADER
    characters (they are split anew on every question): the stdlib's ``_parseparam`` copies the
    rest of the value once per parameter and recounts the quotes from its start at every ";",
    minutes for a crafted Content-Disposition, and the parser itself asks for the boundary of
    every multipart part."""

    @overload
    def get_boundary(self, failobj: None = None) -> str | None: ...
    @overload
    def get_boundary(self, failobj: _T) -> str | _T: ...
    def get_boundary(self, failobj: object = None) -> object:
        boundary = super().get_boundary(failobj)
        return _FOLD_RE.sub("", boundary) if isinstance(boundary, str) else boundary

    # overrides the stdlib's private method
    def _get_params_preserve(self, failobj: _T, header: str) -> list[tuple[str, Any]] | _T:
        value = self.get(header, None)
        if value is None:
            return failobj
        return list(_params(str(value)[:MAX_HEADER]))

    def get_content_type(self) -> str:
        """The stdlib's, but the type is worked out once per header value (it is asked for
        a dozen times per part, by the parser and by us)."""
        value = self.get("content-type", None)
        if not isinstance(value, str):  # absent (or a Header object, as compat32 may give)
            return super().get_content_type()
        if len(value) > MAX_HEADER:  # not kept: a crafted value may be megabytes long
            return _content_type.__wrapped__(value)
        return _content_type(value)


# The same few Content-Type values come in message after message: each is split once. Each
# cache holds at most 256 values of at most MAX_HEADER characters (4 MiB).
@functools.lru_cache(maxsize=256)
def _params(value: str) -> tuple[tuple[str, Any], ...]:
    params = []
    for param in split_params(value):
        name, equals, val = param.partition("=")
        params.append((name.strip(), val.strip()) if equals else (param.strip(), ""))
    return tuple(email.utils.decode_params(params))


@functools.lru_cache(maxsize=256)
def _content_type(value: str) -> str:
    ctype = value.split(";", 1)[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"  # RFC 2045 §5.2, as the stdlib


_PARAM_MARKS = re.compile(r'\\"|"|;')


def split_params(value: str) -> list[str]:
    """*value* split at the semicolons outside double quotes, each piece stripped and its name
    lower-cased: what the stdlib's ``email.message._parseparam`` returns, in linear time."""
    pieces, start, quoted = [], 0, False
    for mark in _PARAM_MARKS.finditer(value):
        if mark.group() == '"':
            quoted = not quoted
        elif mark.group() == ";" and not quoted:
            pieces.append(_param(value[start:mark.start()]))
            start = mark.end()
    pieces.append(_param(value[start:]))
    return pieces


def _param(piece: str) -> str:
    name, equals, val = piece.partition("=")
    return f"{name.strip().lower()}={val.strip()}" if equals else piece.strip()


def _normalize_headers(part: email.message.Message) -> None:
    """Replace raw 8-bit header values by text, so that the stdlib's parameter parsing
    (file names, charsets) sees characters instead of undecodable bytes.

    In one pass over the header list: deleting and re-adding the headers through the public
    interface costs a pass per name (10,000 crafted 8-bit headers took 11 s)."""
    # compat32's list of (name, value), in order: private, and not in the stdlib's stubs
    items: list[tuple[str, object]] = part._headers  # type: ignore[attr-defined]
    if not any(_has_surrogates(value) for _, value in items):
        return
    charset = _charset(part)  # 8-bit headers that are not UTF-8 are often in the body's charset
    part._headers = [  # type: ignore[attr-defined]
        (name, clean(value, charset) if isinstance(value, str) else value) for name, value in items]


def _has_surrogates(value: object) -> bool:
    return isinstance(value, str) and _SURROGATE.search(value) is not None


_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
_OBSOLETE_COLON = re.compile(rb"^([!-9;-~]+)[ \t]+:")


def _repair_header_block(raw: bytes) -> bytes:
    """The header block without the stray lines that made the stdlib end it early.

    ``From  : x`` (space before the colon, obsolete RFC 2822 syntax) is repaired; a line that is
    neither a header nor a continuation is dropped here (the raw message keeps it) when header
    lines follow it and an empty line ends them, else it is the first line of the body (the
    sender wrote no empty line)."""
    lines = raw.splitlines(keepends=True)
    end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    block = [_OBSOLETE_COLON.sub(rb"\1:", line) for line in lines[:end]]
    last = max((i for i, line in enumerate(block) if _in_header_block(line)),
               default=-1) if end < len(lines) else -1
    out = []
    for index, line in enumerate(block):
        if _in_header_block(line):
            out.append(line)
        elif index > last:  # no header follows: the body starts here
            return b"".join([*out, line[len(line.rstrip(b"\r\n")):] or b"\r\n", *lines[index:]])
    return b"".join(out + lines[end:])


def _in_header_block(line: bytes) -> bool:
    return bool(_HEADER_LINE.match(line)) or line[:1] in (b" ", b"\t") or line.startswith(b"From ")


def _degraded(raw: bytes, defect: str) -> ParsedMessage:
    msg = _parse_bytes(raw, headersonly=True)
    parsed = _headers(msg)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    parsed.text = clean(decode_bytes(body, None)).replace("\r\n", "\n")
    parsed.defects.append(defect)
    parsed.notices.append("the MIME structure is nested too deeply to be read: the body is "
                          "shown as plain text, attachments only in the raw message")
    return parsed


# -- headers ----------------------------------------------------------------------------------

_KEPT_HEADERS = {
    "auto-submitted", "precedence", "list-id", "list-unsubscribe", "list-post", "list-help",
    "list-subscribe", "list-owner", "list-archive", "return-path",
    "x-auto-response-suppress", "authentication-results", "x-helpdesk-fetch", "sender",
    "x-loop", "delivered-to", "content-type",
    # what message/classify.py reads to tell auto-replies and bounces from a person's mail
    "x-autoreply", "x-autorespond", "x-autoresponder", "x-autogenerated", "x-precedence",
    "x-ms-exchange-inbox-rules-loop", "x-failed-recipients",
    "x-original-to",  # a [[rules]] to condition reads it with To, Cc and Delivered-To
}


def _headers(msg: email.message.Message) -> ParsedMessage:
    p = ParsedMessage()
    read: dict[str, list[str]] = {}  # the values of the headers read here, in one pass
    for name, value in msg.raw_items():
        lname = name.lower()
        if lname in _READ_HEADERS:
            read.setdefault(lname, []).append(str(value))
        if lname in _KEPT_HEADERS:
            kept = p.headers.setdefault(lname, [])
            if len(kept) < MAX_KEPT:
                kept.append(decode_header(str(value)))
        elif len(p.other_headers) < MAX_OTHER_HEADERS:
            p.other_headers.append((lname, str(value)[:MAX_OTHER_VALUE]))
    p.message_id = _first_id(_raw_header(read, "message-id"))
    p.in_reply_to = _first_id(_raw_header(read, "in-reply-to"))
    p.references = [i[:MAX_ID] for i in _ID_RE.findall(_raw_header(read, "references") or "")]
    sender = _raw_header(read, "from")
    senders = addresses(sender) or _local_sender(sender)
    if senders:
        p.from_name, p.from_addr = senders[0]
    reply_to = addresses(_raw_header(read, "reply-to"))
    p.reply_to = reply_to[0][1] if reply_to else None
    p.to_addrs = [a for _, a in addresses(_raw_header(read, "to", all_values=True))]
    p.cc_addrs = [a for _, a in addresses(_raw_header(read, "cc", all_values=True))]
    p.date = parse_date(_raw_header(read, "date"))
    p.subject = _SPACES_RE.sub(" ", decode_header(_raw_header(read, "subject") or "")).strip()
    p.subject = p.subject[:MAX_SUBJECT]
    p.defects.extend(type(d).__name__ for d in msg.defects)
    return p


_LIST_HEADERS = {"to", "cc", "references"}
_READ_HEADERS = {"message-id", "in-reply-to", "references", "from", "reply-to", "to", "cc", "date",
                 "subject"}


def _raw_header(read: dict[str, list[str]], name: str, *,
                all_values: bool = False) -> str | None:
    """The value of header *name* (all of its values joined by commas with *all_values*), cut
    to MAX_HEADER characters (MAX_LIST_HEADER for To, Cc and References; of References the
    end, where the newest Message-IDs are). *read*: the message's values of _READ_HEADERS."""
    values = read.get(name)
    if not values:
        return None
    value = ", ".join(values) if all_values else values[0]
    limit = MAX_LIST_HEADER if name in _LIST_HEADERS else MAX_HEADER
    value = value[-limit:] if name == "references" else value[:limit]
    return _FOLD_RE.sub("", value)


def _first_id(value: str | None) -> str | None:
    if not value:
        return None
    found = _ID_RE.search(value)
    token = found.group(1) if found else value.strip().split(" ")[0]
    token = clean(token)
    return token[:MAX_ID] or None


def decode_header(value: str) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8 or cp1252.
    At most MAX_HEADER characters of it are read."""
    value = _FOLD_RE.sub("", value[:MAX_HEADER])
    if "=?" not in value:
        return clean(value)
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # the stdlib raises a variety of errors on broken encoded words
        return clean(value)
    text = "".join(chunk if isinstance(chunk, str) else decode_bytes(chunk, charset)
                   for chunk, charset in chunks)
    return clean(text)


def addresses(value: str | None) -> list[tuple[str, str]]:
    """(display name, bare lower-case address) pairs of an address header; junk is skipped.

    A field the stdlib cannot read, as some mailers write it (``a@example.org b@example.org``
    without the comma, ``Alice a@example.org`` without the brackets), gives the addresses that
    stand in it whole, in order; never a piece of one (``@example.org``, ``alice a@...``)."""
    if not value:
        return []
    value = value[:MAX_LIST_HEADER]
    try:
        pairs, junk = email.utils.getaddresses([value]), False
    except Exception:
        pairs, junk = [], True
    result = []
    for name, addr in pairs:
        addr = clean(addr).strip().strip("<>").lower()
        if "@" not in addr and "=?" in addr:
            addr = decode_header(addr).lower()
        if not _whole(addr) or len(addr) > 320:
            junk = True
            continue
        result.append((decode_header(name).strip(), addr))
    if junk and "@" in value:
        # Something the stdlib could not read: what stands in it, after what it did read (an
        # address in a display name is no sender: "Boss boss@example.org <mallory@...>").
        read = {addr for _, addr in result}
        result += [pair for pair in _standing(clean(value)) if pair[1] not in read]
    return result


def _whole(addr: str) -> bool:
    """Whether *addr* is a whole address: something before its last @, a domain after it (a
    name, or a literal such as [192.0.2.1]), no white space but inside a quoted local part, no
    encoded word (RFC 2047 allows none in an address)."""
    local, _, domain = addr.rpartition("@")
    if not local or "=?" in addr or not _DOMAIN.fullmatch(domain):
        return False
    if len(local) > 1 and local[0] == local[-1] == '"':
        return True
    return not any(c.isspace() or c in '@"' for c in local)


# An address as it stands in a field that is not read as one: no white space, no quotes or
# brackets, something before its @ and after it. Its local part bounded, and found only where a
# word begins (not in the middle of a longer one), so that a search is linear in the field.
_ADDRESS_CHARS = r'[^\s<>@,;:"()\[\]\\]'
_DOMAIN = re.compile(rf"{_ADDRESS_CHARS}+|\[[^\s\[\]\\]*\]")  # a name, or a literal: [192.0.2.1]
_STANDING_ADDRESS = re.compile(r'(?<![^\s<>,;:"()\[\]\\])' + rf"{_ADDRESS_CHARS}{{1,64}}"
                               rf"@{_ADDRESS_CHARS}{{1,255}}(?!{_ADDRESS_CHARS}|@)")
_SPECIALS = re.compile(r'\\.|["()]', re.DOTALL)


def _standing(value: str) -> list[tuple[str, str]]:
    """The addresses standing in *value*, outside quotes and comments (``"boss@example.com"
    <x>`` is no address of the boss) and encoded words; a lone one keeps the words before it
    as its name."""
    found = [m for m in _STANDING_ADDRESS.finditer(_masked(value)) if "=?" not in m.group()]
    before = value[:found[0].start()] if found else ""
    if len(found) == 1 and "@" not in before and not value[found[0].end():].strip():
        name = decode_header(before).strip().strip('"<,;').strip()
        return [(name, found[0].group().lower())]
    return [("", match.group().lower()) for match in found]


def _masked(value: str) -> str:
    """*value* with its quoted strings and comments (nested, escapes and all) blanked, a space
    for each character; one left open runs to the end, as the stdlib reads it. One pass over
    the few characters that open, close or escape."""
    blanked: list[tuple[int, int]] = []
    opened, quoted, depth = 0, False, 0
    for special in _SPECIALS.finditer(value):
        token = special.group()
        if quoted or depth:
            if quoted and token == '"':
                quoted = False
            elif depth and token in "()":
                depth += 1 if token == "(" else -1
            if not quoted and not depth:
                blanked.append((opened, special.end()))
        elif token in '"(':
            opened, quoted, depth = special.start(), token == '"', int(token == "(")
    if quoted or depth:
        blanked.append((opened, len(value)))
    if not blanked:
        return value
    pieces, at = [], 0
    for begin, end in blanked:
        pieces += [value[at:begin], " " * (end - begin)]
        at = end
    return "".join([*pieces, value[at:]])


# A sender without a domain, as list software and local daemons write it: ``Name <local>`` or
# ``local (Name)``; nothing else in the field. Possessive, and the name takes its white space
# along (stripped later): two \s* in a row tried every split of a long run of spaces (16 KB: 2 s).
_LOCAL = r'[^\s<>@,;:"()\[\]\\]{1,64}'
_LOCAL_SENDER = re.compile(rf"(?P<name>[^<>]*+)<(?P<local>{_LOCAL})>\s*+"
                           rf"|\s*+(?P<bare>{_LOCAL})(?:\s*+\((?P<comment>[^()]*+)\))?\s*+")


def _local_sender(value: str | None) -> list[tuple[str, str]]:
    """The (display name, lower-case local part) of a From field that names one mailbox
    without a domain; empty for anything else. No auto-mail ever goes to such an address."""
    found = _LOCAL_SENDER.fullmatch(clean(value or ""))
    local = (found["local"] or found["bare"]) if found else None
    if found is None or not local or "=?" in local:
        return []
    name = decode_header(found["name"] or found["comment"] or "")
    return [(name.strip().strip('"').strip(), local.lower())]


def stamped_at(parsed: ParsedMessage) -> dt.datetime | None:
    """When the last mail server on its way stamped the message (the date of its topmost
    Received field, after the last ";"), naive UTC; None when it has none that reads."""
    received = parsed.header_values("received")
    return parse_date(received[0].rpartition(";")[2]) if received else None


def parse_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(clean(value[:200]))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is not None:
        try:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        except (OverflowError, ValueError):
            return None
    return when


# -- bodies -----------------------------------------------------------------------------------

def _body(msg: email.message.Message, p: ParsedMessage, runs: Runs, defer: bool) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    for part in _leaves(msg, p):
        try:
            _take_part(part, p, texts, htmls, runs, defer)
        except Exception as exc:  # one broken part must not lose the others
            p.defects.append(f"part skipped: {type(exc).__name__}: {exc}")
            p.notices.append("a part that could not be read is kept only in the raw message")
    p.text = clean("\n".join(t for t in texts if t.strip()))
    p.html = clean("\n".join(htmls)) if htmls else None
    if not p.text.strip() and p.html:
        p.text = html_to_text(p.html)


def _leaves(msg: email.message.Message, p: ParsedMessage) -> Iterator[email.message.Message]:
    """The leaf parts in document order; message/rfc822 parts count as leaves."""
    stack = [msg]
    seen = 0
    while stack:
        part = stack.pop()
        if part is not msg:
            _normalize_headers(part)
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if isinstance(children, list):  # of Message: is_multipart() said so
                stack.extend(c for c in reversed(children) if isinstance(c, email.message.Message))
            continue
        seen += 1
        if seen > MAX_PARTS:
            p.defects.append(f"more than {MAX_PARTS} parts; the rest is kept only in the raw")
            p.notices.append(f"the message has more than {MAX_PARTS} parts; only the first "
                             f"{MAX_PARTS} are shown, the rest is kept only in the raw message")
            return
        yield part


def _take_part(part: email.message.Message, p: ParsedMessage, texts: list[str], htmls: list[str],
               runs: Runs, defer: bool) -> None:
    ctype = clean(part.get_content_type())
    disposition = str(part.get("content-disposition") or "").split(";")[0].strip().lower()
    filename = _filename(part)
    if ctype == "message/rfc822" or part.is_multipart():
        runs.restore(part)
    if ctype == "message/rfc822":
        p.attachments.append(_attached_message(part, filename))
        return
    if part.is_multipart():  # message/delivery-status and the like: blocks of headers
        content = _header_blocks(part).encode("utf-8", "replace")
        p.attachments.append(AttachmentData(filename or "details.txt", "text/plain", content))
        return
    if ctype.startswith("multipart/"):  # its boundary never appeared: the body is just text
        ctype, disposition, filename = "text/plain", "", None
    is_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and (
        not filename or disposition == "inline")
    payload = _payload(part, runs, defer=defer and not is_body)
    if isinstance(payload, Deferred):
        p.attachments.append(AttachmentData(filename or _default_name(ctype), ctype, b"",
                                            run=payload.run))
        return
    if not is_body:
        p.attachments.append(AttachmentData(filename or _default_name(ctype), ctype, payload))
        return
    charset = _charset(part)
    if charset is None and ctype == "text/html":
        charset = html_charset(payload)
    text = decode_bytes(payload, charset).replace("\r\n", "\n")  # as the rendered HTML has it
    (texts if ctype == "text/plain" else htmls).append(text)


def _header_blocks(part: email.message.Message) -> str:
    """The blocks of fields of a message/delivery-status part as text, as they came (the
    stdlib's generator would fold every long field again); with what in a block is no field
    (a report that is prose under that label: "This Message was undeliverable ...")."""
    blocks = part.get_payload()
    return "".join("".join(f"{name}: {value}\n" for name, value in block.raw_items())
                   + _prose(block) + "\n"
                   for block in blocks if isinstance(block, email.message.Message))


def _prose(block: email.message.Message) -> str:
    text = block.get_payload()
    return clean(text).replace("\r\n", "\n") if isinstance(text, str) and text.strip() else ""


def _payload(part: email.message.Message, runs: Runs, *, defer: bool = False) -> bytes | Deferred:
    """The decoded body of *part*; its encoded form when decoding yields nothing."""
    run = runs.base64_body(part, defer=defer)
    if run:
        return run
    runs.restore(part)
    decoded = part.get_payload(decode=True)  # bytes, or None: a leaf is never multipart
    if not isinstance(decoded, bytes) or not decoded:
        raw = part.get_payload()
        if isinstance(raw, str) and raw.strip():
            return raw.encode("ascii", "surrogateescape")
        return b""
    return decoded


def _charset(part: email.message.Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _attached_message(part: email.message.Message, filename: str | None) -> AttachmentData:
    inner = part.get_payload()
    if isinstance(inner, list) and inner:
        inner = inner[0]
    if isinstance(inner, email.message.Message):
        try:
            content = inner.as_bytes()
        except Exception:
            content = str(inner).encode("utf-8", "surrogateescape")
        subject = decode_header(str(inner.get("subject", "") or "")).strip()
    else:
        body = part.get_payload(decode=True)
        content, subject = body if isinstance(body, bytes) else b"", ""
    name = filename or f"{safe_filename(subject) if subject else 'message'}.eml"
    return AttachmentData(safe_filename(name), "message/rfc822", content)


def _filename(part: email.message.Message) -> str | None:
    try:
        name = part.get_filename() or part.get_param("name")
    except Exception:
        return None
    if isinstance(name, tuple):  # an RFC 2231 value get_param did not collapse
        name = email.utils.collapse_rfc2231_value(name)
    if not name or not isinstance(name, str):
        return None
    return safe_filename(decode_header(name))


def _default_name(ctype: str) -> str:
    return "attachment." + (ctype.split("/")[-1] if "/" in ctype else "bin")


_UNSAFE_NAME = re.compile(r"[/\\:*?\"<>|]")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d|conin\$|conout\$|clock\$)(\..*)?$", re.I)
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}  # controls, bidi overrides, zero-width, line separators
MAX_NAME_BYTES = 200


def safe_filename(name: str) -> str:
    """A file name that cannot leave a directory or upset a filesystem, a header or a reader:
    no directories, no control or formatting characters (U+202E turns "fdp.exe" into what
    looks like "exe.pdf"), no reserved DOS name, no leading dot, at most MAX_NAME_BYTES of
    UTF-8 with the extension kept."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if unicodedata.category(c) in _INVISIBLE else c for c in name)
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    if _RESERVED.match(name):
        name = "_" + name
    return _shorten(name) or "attachment"


def _shorten(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    else:
        extension = "." + extension
    budget = MAX_NAME_BYTES - len(extension.encode("utf-8"))
    return stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .") + extension


def clean(text: str, charset: str | None = None) -> str:
    """*text* without NUL and without the lone surrogates that stray 8-bit bytes leave behind
    (read as UTF-8, else as *charset*, else as cp1252)."""
    if not text:
        return ""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return decode_bytes(text.encode("utf-8", "surrogateescape"), charset, utf8_first=True)
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
