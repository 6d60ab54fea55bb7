"""Output: rich tables at a terminal, tab-separated lines in a pipe, JSON on request."""

from __future__ import annotations

import json
import sys

import click


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def echo_json(data) -> None:
    """Stable, complete, machine-readable output (spec §3)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def table(columns: list[str], rows: list[list], *, title: str | None = None) -> None:
    """A table for people at a terminal; one tab-separated line per row otherwise."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not is_tty():
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(c.replace("\t", " ").replace("\n", " ") for c in row))
        return
    from rich.table import Table

    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in cells:
        view.add_row(*row)
    console().print(view)


def note(text: str, *, style: str = "", err: bool = False) -> None:
    """A line for people; styled at a terminal."""
    stream = sys.stderr if err else sys.stdout
    if is_tty(stream) and style:
        console(stderr=err).print(text, style=style, markup=False)
    else:
        click.echo(text, err=err)


def ago(iso: str | None) -> str:
    """An ISO 8601 time as people read it at a glance: "2025-01-31 14:02 (3 min ago)"."""
    if not iso:
        return ""
    import datetime as dt

    when = dt.datetime.fromisoformat(iso)
    seconds = int((dt.datetime.now(dt.UTC) - when).total_seconds())
    if seconds < 120:
        rel = f"{max(seconds, 0)} s ago"
    elif seconds < 7200:
        rel = f"{seconds // 60} min ago"
    elif seconds < 172800:
        rel = f"{seconds // 3600} h ago"
    else:
        rel = f"{seconds // 86400} days ago"
    return f"{when.astimezone().strftime('%Y-%m-%d %H:%M')} ({rel})"
