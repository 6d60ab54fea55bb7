"""Everything that reaches into peewee's private parts, in one place (bounds in setup.cfg;
tests/test_adapters.py notices when one changes).

The per-message SQL (sql.py) runs hand-written statements for speed, and builds model instances
from rows itself; it still wants peewee's mapping of driver errors and its idea of an unchanged
instance.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TypeVar

from peewee import Model, __exception_wrapper__

M = TypeVar("M", bound=Model)


def driver_errors() -> AbstractContextManager[None]:
    """A context in which sqlite3's and psycopg2's exceptions become peewee's, as inside
    ``Database.execute_sql`` (for SQLite's incremental blob I/O, which peewee does not wrap)."""
    return __exception_wrapper__


def as_saved(instance: M) -> M:
    """*instance*, built from a stored row, marked as having no unsaved changes."""
    instance._dirty.clear()
    return instance
