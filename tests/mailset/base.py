"""The machinery of the mail set: a case is a function that builds one message as bytes, with
what a parser must recover from it; small builders keep the bytes readable on the page.

Everything is deterministic: the same bytes on every run and every machine, so a failure names
a message anyone can rebuild (``tests.mailset.CASES[name].raw``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass

CRLF = b"\r\n"
DOMAIN = "mailset.example"
NOT_CHECKED = ...  # an expectation left open where None is itself a value (no Message-ID)


# -- what a case promises ---------------------------------------------------------------------

@dataclass(frozen=True)
class Expect:
    """What must be recovered from a case; a field left at its default is not checked.

    ``attachments`` lists (file name, content type) or (file name, content type, content) in
    document order, and no other attachment may be there."""

    subject: str | None = None
    subject_has: tuple[str, ...] = ()  # each is in the subject
    from_addr: str | None = None
    from_name: str | None = None
    to: tuple[str, ...] | None = None
    message_id: str | None | type(...) = NOT_CHECKED
    date: dt.datetime | None | type(...) = NOT_CHECKED  # naive UTC
    text: tuple[str, ...] = ()  # each is in the text
    text_is: str | None = None  # the whole text, stripped
    not_in_text: tuple[str, ...] = ()
    html: tuple[str, ...] = ()  # each is in the HTML
    attachments: tuple[tuple, ...] | None = None
    set_aside: bool = False  # cannot be ingested: error folder / left on the POP3 server
    duplicate_of: str | None = None  # served as the same bytes as that case: stored once
    ignored: str | None = None  # opens no ticket (spec §9.4): kept as ignored mail, this reason

    def problems(self, got: View) -> list[str]:
        """What *got* lacks of this expectation, as readable lines (empty: all there)."""
        found = []
        for name in ("subject", "from_addr", "from_name"):
            if getattr(self, name) is not None and getattr(got, name) != getattr(self, name):
                found.append(f"{name} {getattr(got, name)!r}, expected {getattr(self, name)!r}")
        found += [f"subject lacks {s!r}: {got.subject!r}" for s in self.subject_has
                  if s not in got.subject]
        if self.to is not None and tuple(got.to) != self.to:
            found.append(f"to {got.to!r}, expected {list(self.to)!r}")
        for name in ("message_id", "date"):
            wanted = getattr(self, name)
            if wanted is not NOT_CHECKED and getattr(got, name) != wanted:
                found.append(f"{name} {getattr(got, name)!r}, expected {wanted!r}")
        found += [f"text lacks {s!r}: {got.text[:300]!r}" for s in self.text if s not in got.text]
        found += [f"text has {s!r}" for s in self.not_in_text if s in got.text]
        if self.text_is is not None and got.text.strip() != self.text_is:
            found.append(f"text {got.text[:300]!r}, expected {self.text_is!r}")
        found += [f"html lacks {s!r}" for s in self.html if s not in (got.html or "")]
        if self.attachments is not None:
            found += _attachment_problems(self.attachments, got.attachments)
        return found


def _attachment_problems(wanted: tuple[tuple, ...], got: list[tuple]) -> list[str]:
    names = [(name, ctype) for name, ctype, *_ in wanted]
    if [(name, ctype) for name, ctype, _, _ in got] != names:
        return [f"attachments {[(n, t, s) for n, t, s, _ in got]!r}, expected {names!r}"]
    return [f"attachment {entry[0]!r}: size {size}, expected {len(entry[2])} (or other bytes)"
            for entry, (_, _, size, sha) in zip(wanted, got, strict=True)
            if len(entry) == 3 and sha != hashlib.sha256(entry[2]).hexdigest()]


@dataclass
class View:
    """What a parse or a stored message shows of a case: the same fields either way."""

    subject: str
    from_addr: str
    from_name: str
    to: list[str]
    message_id: str | None
    date: dt.datetime | None
    text: str
    html: str | None
    attachments: list[tuple[str, str, int, str]]  # name, content type, size, SHA-256

    @classmethod
    def of(cls, parsed) -> View:
        """The view of a ``helpdesk_fetch.message.parse.ParsedMessage``."""
        return cls(parsed.subject, parsed.from_addr, parsed.from_name, parsed.to_addrs,
                   parsed.message_id, parsed.date, parsed.text, parsed.html,
                   [(a.filename, a.content_type, a.size, a.sha256) for a in parsed.attachments])


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    expect: Expect
    why: str  # the real-world breakage it imitates

    def key(self) -> tuple[str, str | None]:
        """How to find this case among stored messages: by Message-ID, else by subject."""
        if self.expect.message_id:
            return "message_id", self.expect.message_id
        return "subject", self.expect.subject


CASES: dict[str, Case] = {}


def case(name: str | None = None, **expect) -> Callable:
    """Register the decorated builder as a case named after it (``bare_cr`` -> ``bare-cr``)
    or *name*; *expect* holds the fields of its ``Expect`` (lists and strings become tuples).

    The builder gets the case's Message-ID line; unless told otherwise the case must keep it,
    so that each case can be found again in a database full of them."""

    def register(build: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        named = name or build.__name__.replace("_", "-")
        assert named not in CASES, f"two cases named {named}"
        fields = {"message_id": f"{named}@{DOMAIN}", **expect}
        for key in ("subject_has", "to", "text", "not_in_text", "html", "attachments"):
            if isinstance(fields.get(key), str):
                fields[key] = (fields[key],)
            elif isinstance(fields.get(key), list):
                fields[key] = tuple(fields[key])
        made = Case(named, build(b"Message-ID: <%s@%s>" % (named.encode(), DOMAIN.encode())),
                    Expect(**fields), inspect.getdoc(build) or "")
        assert made.why, f"case {named} needs a docstring: what real breakage it imitates"
        assert made.key()[1] or made.expect.set_aside, f"case {named} cannot be found again"
        CASES[named] = made
        return build

    return register


# -- builders ---------------------------------------------------------------------------------

def top(mid: bytes, subject: bytes, *more: bytes,
        sender: bytes = b"Carol Customer <carol@example.org>",
        to: bytes = b"IT Helpdesk <helpdesk@example.com>",
        date: bytes = b"Tue, 05 Mar 2024 10:15:00 +0100") -> list[bytes]:
    """The header lines most mail starts with, then *more*."""
    return [b"From: " + sender, b"To: " + to, b"Subject: " + subject, b"Date: " + date, mid,
            *more]


def entity(headers: list[bytes], *body: bytes, nl: bytes = CRLF) -> bytes:
    """A header block, an empty line and the body lines, each line ended by *nl*."""
    return nl.join(headers) + nl + nl + b"".join(line + nl for line in body)


def multipart(boundary: bytes, *parts: bytes, preamble: bytes = b"", close: bool = True,
              nl: bytes = CRLF) -> bytes:
    """The body of a multipart entity: each part after its delimiter line, then the close."""
    out = preamble + nl if preamble else b""
    for part in parts:  # a part's last line break belongs to the delimiter after it
        out += b"--" + boundary + nl + part + (b"" if part.endswith(nl) else nl)
    return out + (b"--" + boundary + b"--" + nl if close else b"")


def ctype(value: bytes) -> bytes:
    return b"Content-Type: " + value


def blob(name: str, size: int, magic: bytes = b"") -> bytes:
    """*size* bytes of made-up binary content that starts like the real format (*magic*)."""
    return (magic + random.Random(name).randbytes(size))[:size]


def b64(content: bytes) -> bytes:
    """*content* in base64, 76 characters a line, lines ended by CRLF (none after the last)."""
    return base64.encodebytes(content).rstrip(b"\n").replace(b"\n", CRLF)
