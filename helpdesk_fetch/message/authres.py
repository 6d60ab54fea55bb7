"""Authentication-Results (RFC 8601): which sender domains the organisation's own mail server
vouches for. Pure functions of header values; no I/O.

Used by the resource-member rule (spec §5.3, issue #5 item 4): with ``authserv_id`` set, a From
address counts as a member's only when an Authentication-Results header whose authserv-id is that
one reports ``dmarc=pass`` (``header.from``) or ``dkim=pass`` (``header.d``, else ``header.i``)
for the address's domain. Headers from any other authserv-id are ignored: anyone can write them.

This relies on what RFC 8601 §5 requires of the receiving server: it removes headers that claim
its authserv-id from incoming mail (Postfix with OpenDMARC, Exchange Online, Gmail do). As a
second line of defence, a ``dmarc`` result other than pass for a domain in any such header (the
real one, when a forged pass slipped through) means no vouching for that domain.

The parser follows the RFC's grammar: comments (nested, with quoted-pairs) are CFWS anywhere,
values may be tokens or quoted-strings, ``;`` inside quotes or comments separates nothing, and
names are case-insensitive. A header it cannot read vouches for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_KEYWORD = r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?"
_VALUE = r'"(?:[^"\\]|\\.)*"|[^\s";=]+'
# Real headers carry base64 and addresses unquoted (header.b=ab/c+d=), so a property value is any
# run of non-space characters up to the next space or semicolon.
_PVALUE = r'"(?:[^"\\]|\\.)*"|[^\s";]+'
_METHOD_RE = re.compile(rf"\s*(?P<method>{_KEYWORD})\s*(?:/\s*\d+\s*)?=\s*(?P<result>{_KEYWORD})")
_REASON_RE = re.compile(rf"\s*reason\s*=\s*(?P<value>{_PVALUE})", re.I)
_PROPERTY_RE = re.compile(rf"\s*(?P<ptype>{_KEYWORD})\s*\.\s*(?P<property>{_KEYWORD})\s*=\s*"
                          rf"(?P<value>{_PVALUE})")
_SERVID_RE = re.compile(rf"\s*(?P<id>{_VALUE})(?:\s+(?P<version>\d+))?\s*$")


@dataclass(frozen=True)
class Result:
    """One ``method=result`` statement with its properties (``header.d`` -> ``example.com``)."""

    method: str
    result: str
    properties: dict[str, str] = field(default_factory=dict)
    reason: str | None = None


@dataclass(frozen=True)
class AuthResults:
    """One Authentication-Results header."""

    authserv_id: str
    results: tuple[Result, ...] = ()


def parse(value: str) -> AuthResults | None:
    """One header's value; None when it cannot be read."""
    text = _strip_comments(value.replace("\r", " ").replace("\n", " "))
    segments = _split(text) if text is not None else None
    if segments is None:
        return None
    head = _SERVID_RE.fullmatch(segments[0])
    if head is None or not _unquote(head.group("id")):
        return None
    rest = segments[1:]
    if len(rest) == 1 and rest[0].strip().lower() == "none":
        rest = []
    results = tuple(r for r in map(_result, rest) if r is not None)
    return AuthResults(_unquote(head.group("id")).lower(), results)


def vouched_domains(values: Iterable[str], authserv_id: str) -> set[str]:
    """The domains that headers from *authserv_id* report ``dmarc=pass`` or ``dkim=pass`` for."""
    passed: set[str] = set()
    failed: set[str] = set()
    for header in filter(None, map(parse, values)):
        if header.authserv_id != authserv_id.strip().lower():
            continue
        for result in header.results:
            domain = _domain_of(result)
            if domain is None:
                continue
            if result.result == "pass":
                passed.add(domain)
            elif result.method == "dmarc":
                failed.add(domain)
    return passed - failed


def vouches_for(values: Iterable[str], authserv_id: str, address: str) -> bool:
    """Whether headers from *authserv_id* vouch for the domain of the bare *address*."""
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    return bool(domain) and "@" in address and domain in vouched_domains(values, authserv_id)


def sender_trusted(values: Iterable[str], address: str, *, authserv_id: str) -> bool:
    """The rule's question: may the From *address* be believed? Always, when no authserv_id is
    configured; else only when the organisation's server vouches for its domain."""
    if not authserv_id.strip():
        return True
    return vouches_for(values, authserv_id, address)


# -- the grammar --------------------------------------------------------------------------------

def _strip_comments(text: str) -> str | None:
    """*text* with every (nested) comment replaced by a space; quoted-strings kept as they are.
    None for an unclosed comment: what it hides cannot be known."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if depth == 0 and char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
            continue
        if depth == 0:
            out.append(char)
    return None if depth else "".join(out)


def _split(text: str) -> list[str] | None:
    """*text* split at the semicolons outside quoted-strings; None for an unclosed quote."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        return None
    parts.append("".join(current))
    return parts


def _result(segment: str) -> Result | None:
    """``method[/version] = result [reason=...] ptype.property=value ...``; None if malformed."""
    found = _METHOD_RE.match(segment)
    if found is None:
        return None
    # Matched in place from *pos*: slicing off the rest after each property copied the rest of
    # the header once per property, quadratic in a crafted one.
    pos, reason = found.end(), None
    properties: dict[str, str] = {}
    if (why := _REASON_RE.match(segment, pos)) is not None:
        reason, pos = _unquote(why.group("value")), why.end()
    while (prop := _PROPERTY_RE.match(segment, pos)) is not None:
        key = f"{prop.group('ptype')}.{prop.group('property')}".lower()
        properties.setdefault(key, _unquote(prop.group("value")))
        pos = prop.end()
    if segment[pos:].strip():
        return None
    return Result(found.group("method").lower(), found.group("result").lower(), properties,
                  reason)


def _domain_of(result: Result) -> str | None:
    """The domain a dmarc or dkim result is about."""
    if result.method == "dmarc":
        value = result.properties.get("header.from")
    elif result.method == "dkim":
        value = result.properties.get("header.d") or result.properties.get("header.i")
    else:
        return None
    if not value:
        return None
    domain = value.rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
