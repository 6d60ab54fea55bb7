"""The stdlib parser's multipart boundaries, matched without compiling a regex per message.

``email.feedparser`` compiles a regular expression for every multipart boundary it meets:
``(?P<sep>--BOUNDARY)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$``. Boundaries are
unique per message, so each is a fresh compile (~100 µs), and they fill ``re``'s cache of 512
patterns, evicting the parser's own, which are then compiled again: in the parse worker a fifth
of the time of a typical multipart message (profile of ``make bench``'s message set, issue 18).

``install`` gives the feedparser module a stand-in for ``re`` whose ``compile`` answers exactly
that pattern with ``Boundary``: the literal separator tested with ``str.startswith``, the rest
of the pattern (compiled once) matched after it. It answers the same lines with the same
``end`` and ``linesep`` groups, the only ones the feedparser reads (``match(line)``, true or
not, and ``group('end')``, ``group('linesep')``). This is what Python 3.13's feedparser does
itself (``boundarymatch``, with ``boundaryendRE``); there it compiles no such pattern, and the
stand-in is never asked. Any other pattern, and a boundary pattern of another form, goes to
``re.compile`` as before.
"""

from __future__ import annotations

import email.feedparser
import re
from typing import Any

_PREFIX = "(?P<sep>"
_SUFFIX = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_TAIL = re.compile(_SUFFIX[1:])
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


class Boundary:
    """``re.compile(_PREFIX + re.escape(separator) + _SUFFIX)``, as far as ``match`` goes."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _TAIL.match(line, len(self.separator))


def compile_pattern(pattern: str, flags: int = 0) -> Boundary | re.Pattern[str]:
    """``re.compile(pattern, flags)``, or a Boundary where that is the same for the feedparser."""
    if flags or not (pattern.startswith(_PREFIX) and pattern.endswith(_SUFFIX)):
        return re.compile(pattern, flags)
    escaped = pattern[len(_PREFIX):-len(_SUFFIX)]
    separator = _ESCAPED.sub(r"\1", escaped)
    if re.escape(separator) != escaped:  # not a pattern the feedparser built: as it is
        return re.compile(pattern, flags)
    return Boundary(separator)


class _FeedparserRe:
    """The ``re`` module as email.feedparser sees it: ``compile`` is ``compile_pattern``."""

    compile = staticmethod(compile_pattern)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


def install() -> None:
    """Have email.feedparser match boundaries with ``Boundary`` (idempotent)."""
    feedparser: Any = email.feedparser
    if not isinstance(feedparser.re, _FeedparserRe):
        feedparser.re = _FeedparserRe()
