"""Output: rich tables at a terminal, tab-separated lines in a pipe, JSON on request."""

from __future__ import annotations

import json
import os
import sys

import click

# Control characters shown as their Unicode pictures (ESC -> U+241B): mail is untrusted, and an
# escape sequence in a subject must not retitle, recolour or rewrite the administrator's terminal.
# The bidirectional overrides and isolates too: in a sender or subject they would reorder what
# the line around them says (U+202E shows "exe.pdf" for "fdp.exe").
_PICTURES = {code: chr(0x2400 + code) for code in range(32)} | {0x7F: "\u2421"} | {
    code: "\ufffd" for code in (*range(0x80, 0xA0), *range(0x202A, 0x202F),
                                 *range(0x2066, 0x206A))}
_PICTURES_KEEPING_LINES = {k: v for k, v in _PICTURES.items() if chr(k) not in "\n\t"}


_JSON_ESCAPES = {code: f"\\u{code:04x}"  # JSON escapes C0 itself; these are escaped too
                 for code in (*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def printable(text: str, *, lines: bool = False) -> str:
    """*text* safe for a terminal; newlines and tabs kept when *lines*."""
    return text.translate(_PICTURES_KEEPING_LINES if lines else _PICTURES)


def scrub(text: str, *, lines: bool = True) -> str:
    """The one filter of everything printed for people — lines, tables, errors, log lines and
    tracebacks: no secret this process handed out (redact.py), and no terminal control: a
    message's subject or an exception's text cannot steer the terminal (ESC shows as U+241B)."""
    from helpdesk_fetch.secrets.redact import redact

    return printable(redact(text), lines=lines)


def echo(text: str = "", *, err: bool = False, lines: bool = True, whole: bool = False) -> None:
    """``click.echo`` through ``scrub``, folded at a terminal unless *whole* (a monitoring
    line); *lines*: keep line breaks and tabs."""
    text = scrub(text, lines=lines)
    click.echo(text if whole else fold(text, sys.stderr if err else sys.stdout), err=err)


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def fold(text: str, stream) -> str:
    """*text* with the lines wider than the terminal broken between words, when *stream* is one
    (which would break them anywhere, mid-word or mid-path); a continuation keeps its line's
    indent, or stands under the value of a ``label:   value`` line (``errors show``). Elsewhere
    (cron's mail, a pipe, a log) every line stays whole: one per problem."""
    if not is_tty(stream):
        return text
    width = _terminal_width(stream)
    if all(len(line) <= width for line in text.split("\n")):
        return text
    return "\n".join(line if len(line) <= width or "\t" in line else _folded(line, width)
                     for line in text.split("\n"))


_KEEP = "\ue000"  # a space inside `a command`, while a line is folded (private use: no text's)


def _folded(line: str, width: int) -> str:
    """*line* broken between words, at most *width* wide but for a word longer than that, its
    indent kept even then; a command in backticks (`helpdesk-fetch errors list`) kept whole."""
    import re
    import textwrap

    lead = line[:len(line) - len(line.lstrip(" "))]
    rest = line[len(lead):]
    kept = _KEEP not in rest  # else a text's own: left as it is, commands may break
    if kept:
        rest = re.sub(r"`[^`]{1,60}`", lambda m: m.group().replace(" ", _KEEP), rest)
    folded = textwrap.fill(rest, width, initial_indent=lead[:width // 2],
                           subsequent_indent=" " * min(_indent(line), width // 2),
                           break_long_words=False, break_on_hyphens=False)
    return folded.replace(_KEEP, " ") if kept else folded


def _indent(line: str) -> int:
    """Where a continuation of *line* begins: under its value when it is labelled (two spaces
    or more after a colon), else at its own indent."""
    import re

    labelled = re.match(r" *[^ :][^:]{0,40}: {2,}(?=\S)", line)
    return labelled.end() if labelled else len(line) - len(line.lstrip(" "))


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


def table(columns: list[str], rows: list[list], *, title: str | None = None,
          notes: list[str | None] | None = None, shrink: tuple[str, ...] = (),
          notes_column: str = "problem") -> None:
    """A table for people at a terminal; one tab-separated line per row otherwise.

    At a terminal every row is one line, cut to the terminal's width: cells are never wrapped,
    so names stay whole; only the *shrink* columns (subjects, addresses) are shortened, with
    "…", when the table is too wide. A row's note (*notes*: long text such as a problem) goes
    on lines of its own below the row, wrapped. In a pipe the notes are one more column,
    *notes_column*."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not is_tty():
        with_notes = notes is not None
        click.echo("\t".join(columns + ([notes_column] if with_notes else [])))
        for index, row in enumerate(cells):
            extra = [_cell(notes[index])] if notes is not None else []
            click.echo("\t".join(row + extra))
        return
    width = _terminal_width()
    widths, gap = _widths(columns, cells, width, shrink)
    right = [bool(rows) and all(isinstance(row[i], int) or row[i] in ("", None) for row in rows)
             for i in range(len(columns))]  # numbers to the right
    if title:
        click.echo(click.style(scrub(title, lines=False), bold=True))
    click.echo(click.style(_line(columns, widths, right, gap), bold=True))
    for index, row in enumerate(cells):
        click.echo(_line(row, widths, right, gap))
        note_text = notes[index] if notes else None
        if note_text:
            click.echo(click.style(_wrapped(scrub(note_text, lines=False), width), fg="yellow"))


def _cell(value) -> str:
    return scrub(("" if value is None else str(value)).replace("\t", " ").replace("\n", " "),
                 lines=False)


def _terminal_width(stream=None) -> int:
    """The width of *stream*'s terminal (stderr's may differ from stdout's, which may be a
    file), else of the one shutil finds; at least 40 columns."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns if stream is not None else 0
    except (OSError, ValueError, AttributeError):
        columns = 0
    if not columns:
        import shutil

        columns = shutil.get_terminal_size((80, 24)).columns
    return max(columns, 40)


def _widths(columns: list[str], cells: list[list[str]], width: int,
            shrink: tuple[str, ...]) -> tuple[list[int], int]:
    """Each column's width, and the gap between columns: two spaces if the table fits with
    them, else one; then the *shrink* columns are shortened, in their order (the first down
    to its header's width or 10 before the next loses anything), until the table fits."""
    from rich.cells import cell_len

    widths = [max([cell_len(name)] + [cell_len(row[i]) for row in cells])
              for i, name in enumerate(columns)]
    gap = 2 if sum(widths) + 2 * (len(columns) - 1) <= width else 1
    excess = sum(widths) + gap * (len(columns) - 1) - width
    for name in shrink:
        i = columns.index(name)
        cut = max(0, min(excess, widths[i] - max(cell_len(name), 10)))
        widths[i] -= cut
        excess -= cut
    return widths, gap  # still too wide: names are never cut, the terminal wraps the line


def _line(cells: list[str], widths: list[int], right: list, gap: int) -> str:
    from rich.cells import cell_len, set_cell_size

    out = []
    for text, wide, to_right in zip(cells, widths, right, strict=True):
        if cell_len(text) > wide:
            text = set_cell_size(text, wide - 1) + "…"
        padding = " " * (wide - cell_len(text))
        out.append(padding + text if to_right else text + padding)
    return (" " * gap).join(out).rstrip()


def _wrapped(text: str, width: int) -> str:
    """*text* indented below its row, wrapped at spaces only (a path or an address is not cut
    in the middle)."""
    import textwrap

    return textwrap.fill(text, width=width, initial_indent="  ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)


def note(text: str, *, style: str = "", err: bool = False) -> None:
    """A line for people; styled at a terminal."""
    text = scrub(text)
    stream = sys.stderr if err else sys.stdout
    if is_tty(stream) and style:  # folded here: rich would break `a command` in two
        console(stderr=err).print(fold(text, stream), style=style, markup=False,
                                  soft_wrap=True)
    else:
        click.echo(fold(text, stream), err=err)


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


def hanging(line: str, indent: int) -> str:
    """*line* as it is in a pipe; at a terminal wrapped to its width at spaces, the lines after
    the first indented by *indent* (a dry run's verdict: below its text, not at column 0)."""
    if not is_tty():
        return line
    import textwrap

    return textwrap.fill(line, width=_terminal_width(), subsequent_indent=" " * indent,
                         break_long_words=False, break_on_hyphens=False)


def automail_remark(automail: bool) -> str:
    """What a dry run and `rules test` say once about auto-mails, below their messages (each
    names the auto-mails it would cause)."""
    return ("(a message without 'auto-mails' causes none)" if automail
            else "(no auto-mail: the accounts file has no [smtp] section)")


def local(iso: str | None) -> str:
    """An ISO 8601 time as people read it, in this machine's time zone: "2025-01-31 14:02"."""
    if not iso:
        return ""
    import datetime as dt

    return f"{dt.datetime.fromisoformat(iso).astimezone():%Y-%m-%d %H:%M}"


def when(iso: str | None) -> str:
    """An ISO 8601 time in a few characters, for lists: "14:02" today, else "2025-01-31"."""
    if not iso:
        return ""
    import datetime as dt

    moment = dt.datetime.fromisoformat(iso).astimezone()
    return f"{moment:%H:%M}" if moment.date() == dt.date.today() else f"{moment:%Y-%m-%d}"


def rule_counts(last_runs: list[tuple[str, dict | None]]) -> None:
    """How many messages each [[rules]] table decided in each account's last run (spec §10),
    below a table of accounts; nothing when no rule decided any."""
    decided = [f"  {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
               for name, run in last_runs if (counts := (run or {}).get("rule_counts"))]
    if decided:
        note("Messages each rule decided in the last run:\n" + "\n".join(decided))


def problem_of(account: str, text: str | None, path: object = None) -> str | None:
    """An account's stored problem as shown below its row: without the accounts file (*path*,
    the one the table lists) and the "account 'NAME': " the row already says."""
    from helpdesk_fetch.errors import account_named

    for prefix in (f"{path}: " if path is not None else None, f"{account_named(account)}: "):
        if text and prefix and text.startswith(prefix):
            text = text[len(prefix):]
    return text
