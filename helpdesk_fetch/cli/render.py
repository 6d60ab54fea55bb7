"""Output: rich tables at a terminal, tab-separated lines in a pipe, JSON on request."""

from __future__ import annotations

import json
import sys

import click

# Control characters shown as their Unicode pictures (ESC -> U+241B): mail is untrusted, and an
# escape sequence in a subject must not retitle, recolour or rewrite the administrator's terminal.
_PICTURES = {code: chr(0x2400 + code) for code in range(32)} | {0x7F: "\u2421"} | {
    code: "\ufffd" for code in range(0x80, 0xA0)}
_PICTURES_KEEPING_LINES = {k: v for k, v in _PICTURES.items() if chr(k) not in "\n\t"}


_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x7F, 0xA0)}  # JSON escapes C0 itself


def printable(text: str, *, lines: bool = False) -> str:
    """*text* safe for a terminal; newlines and tabs kept when *lines*."""
    return text.translate(_PICTURES_KEEPING_LINES if lines else _PICTURES)


def scrub(text: str, *, lines: bool = True) -> str:
    """The one filter of everything printed for people — lines, tables, errors, log lines and
    tracebacks: no secret this process handed out (redact.py), and no terminal control: a
    message's subject or an exception's text cannot steer the terminal (ESC shows as U+241B)."""
    from helpdesk_fetch.secrets.redact import redact

    return printable(redact(text), lines=lines)


def echo(text: str = "", *, err: bool = False, lines: bool = True) -> None:
    """``click.echo`` through ``scrub``; *lines*: keep line breaks and tabs."""
    click.echo(scrub(text, lines=lines), err=err)


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def echo_json(data) -> None:
    """Stable, complete, machine-readable output (spec §3). The same filter as ``scrub``, in
    JSON's terms: the controls JSON leaves as they are (DEL, C1) are written as escapes, which
    keeps the data whole."""
    from helpdesk_fetch.secrets.redact import redact

    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
    click.echo(redact(text).translate(_JSON_ESCAPES))


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def table(columns: list[str], rows: list[list], *, title: str | None = None) -> None:
    """A table for people at a terminal; one tab-separated line per row otherwise."""
    cells = [[scrub(("" if v is None else str(v)).replace("\t", " ").replace("\n", " "),
                    lines=False) for v in row] for row in rows]
    if not is_tty():
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(row))
        return
    from rich.table import Table
    from rich.text import Text

    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in cells:
        view.add_row(*(Text(cell) for cell in row))  # Text: "[bold]" in a subject is no markup
    console().print(view)


def note(text: str, *, style: str = "", err: bool = False) -> None:
    """A line for people; styled at a terminal."""
    text = scrub(text)
    stream = sys.stderr if err else sys.stdout
    if is_tty(stream) and style:
        console(stderr=err).print(text, style=style, markup=False)
    else:
        click.echo(text, err=err)


def ago(iso: str | None) -> str:
    """An ISO 8601 time as people read it at a glance: "14:02 (3 min ago)" today, else
    "2025-01-31 14:02"."""
    if not iso:
        return ""
    import datetime as dt

    when = dt.datetime.fromisoformat(iso).astimezone()
    now = dt.datetime.now().astimezone()
    if when.date() != now.date():
        return when.strftime("%Y-%m-%d %H:%M")
    seconds = max(int((now - when).total_seconds()), 0)
    rel = f"{seconds} s" if seconds < 120 else (f"{seconds // 60} min" if seconds < 7200
                                                else f"{seconds // 3600} h")
    return f"{when:%H:%M} ({rel} ago)"
