"""Everything that reaches into peewee's private parts, in one place (bounds in setup.cfg;
tests/test_adapters.py notices when one changes).

The per-message SQL (sql.py) runs hand-written statements for speed, and builds model instances
from rows itself; it still wants peewee's mapping of driver errors and its idea of an unchanged
instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

# __exception_wrapper__ is private, so not in peewee's stubs.
from peewee import Model, ModelSelect, __exception_wrapper__  # type: ignore[attr-defined]

M = TypeVar("M", bound=Model)


def driver_errors() -> AbstractContextManager[None]:
    """A context in which sqlite3's and psycopg2's exceptions become peewee's, as inside
    ``Database.execute_sql`` (for SQLite's incremental blob I/O, which peewee does not wrap)."""
    wrapper: AbstractContextManager[None] = __exception_wrapper__
    return wrapper


def as_saved(instance: M) -> M:
    """*instance*, built from a stored row, marked as having no unsaved changes."""
    instance._dirty.clear()  # type: ignore[attr-defined]  # private
    return instance


def tuples(query: ModelSelect[Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of *query* as tuples, as ``query.tuples()`` gives them: peewee's stubs type
    those rows as model instances still, so the checker learns the truth here, once."""
    rows: Iterator[tuple[Any, ...]] = iter(query.tuples().execute())  # execute(): untyped
    return rows


def one_tuple(query: ModelSelect[Any]) -> tuple[Any, ...]:
    """``query.tuples().get()``: the first row of *query*, as a tuple (see ``tuples``)."""
    row: tuple[Any, ...] = query.tuples().get()  # typed Any: the query's model is Any
    return row
