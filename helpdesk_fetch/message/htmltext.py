"""HTML turned into readable plain text, in one pass; nothing is rendered, loaded or executed.

Not the stdlib's ``html.parser``: it rescans the rest of the page for every construct that never
closes (``<a `` repeated: 30 KB took 17 s, and each doubling four times as long; ``<!--`` the
same). Here every step consumes what it looked at: text up to the next ``<``; a tag up to the next
``>`` or ``<``; a comment up to ``-->`` or the end; the content of ``script`` and ``style`` up to
their end tag or the end. A ``>`` inside a quoted attribute value ends the tag early, which only
shows a little of the attribute as text. At most MAX_RENDER characters are rendered: the HTML
itself is kept whole.
"""

from __future__ import annotations

import html
import re

MAX_RENDER = 2 * 1024 * 1024

_BLOCKS = {"p", "div", "table", "tr", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
           "blockquote", "pre", "hr", "section", "article", "header", "footer"}
_HIDDEN = {"head", "title"}  # their text is not shown
_RAW = {"script", "style"}  # their content is not HTML: skipped up to the end tag
_TAG = re.compile(r"<(?:!--.*?(?:-->|\Z)|[!?][^<>]*>?|(/?)([A-Za-z][A-Za-z0-9:-]*)([^<>]*)>?)",
                  re.S)
_RAW_END = {name: re.compile(rf"</{name}\b[^<>]*>?", re.I) for name in _RAW}
_SPACES = re.compile(r"[ \t\r\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def html_to_text(page: str) -> str:
    """Readable plain text from the HTML *page* (its first MAX_RENDER characters)."""
    page = page[:MAX_RENDER]
    writer = _Writer()
    pos, end = 0, len(page)
    while pos < end:
        lt = page.find("<", pos)
        if lt < 0:
            lt = end
        writer.data(page[pos:lt])
        if lt == end:
            break
        tag = _TAG.match(page, lt)
        if tag is None:  # "a < b": a "<" that starts nothing is text
            writer.data("<")
            pos = lt + 1
            continue
        pos = tag.end()
        name = (tag.group(2) or "").lower()
        if not name:  # a comment, a declaration, a processing instruction
            continue
        if tag.group(1):
            writer.end(name)
            continue
        writer.start(name)
        if tag.group(3).endswith("/"):  # <br/>, <p/>
            writer.end(name)
        elif name in _RAW:
            close = _RAW_END[name].search(page, pos)
            pos = close.end() if close else end
    return writer.text()


class _Writer:
    """The text of a page as its tags and text arrive."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.hidden = 0
        self.pre = 0

    def start(self, name: str) -> None:
        if name in _HIDDEN:
            self.hidden += 1
        elif name == "br":
            self.out.append("\n")
        elif name == "li":
            self.out.append("\n- ")
        elif name in ("td", "th"):
            self.out.append(" ")
        elif name in _BLOCKS:
            self.out.append("\n\n")
        if name == "pre":
            self.pre += 1

    def end(self, name: str) -> None:
        if name in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif name in _BLOCKS:
            self.out.append("\n\n")
        if name == "pre":
            self.pre = max(0, self.pre - 1)

    def data(self, text: str) -> None:
        if text and not self.hidden:
            text = html.unescape(text)
            self.out.append(text if self.pre else _SPACES.sub(" ", text))

    def text(self) -> str:
        # Line by line: the regex [ \t]+\n backtracks over a long run of spaces at every start.
        lines = "".join(self.out).split("\n")
        return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip(" \t") for line in lines)).strip()
