"""Everything that reaches into peewee's private parts, in one place (bounds in setup.cfg;
tests/test_adapters.py notices when one changes).

The per-message SQL (sql.py) runs hand-written statements for speed, and builds model instances
from rows itself; it still wants peewee's mapping of driver errors and its idea of an unchanged
instance. And peewee is imported here without psycopg2 on SQLite (import_peewee), which is then
handed to it should PostgreSQL be opened after all (postgresql_driver).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:  # peewee itself is imported by import_peewee, or by whoever needs it first
    from peewee import Model, ModelSelect

M = TypeVar("M", bound="Model")


def import_peewee(url: str) -> None:
    """Import peewee for the database at *url*; for any but PostgreSQL without psycopg2, which
    peewee imports whenever it is installed (a fifth of a cron run that finds no mail, issue
    18). ``postgresql_driver`` hands it to peewee should a PostgreSQL database be opened after
    all (``db copy``). Nothing to do when peewee or psycopg2 was imported already."""
    if "peewee" in sys.modules or "psycopg2" in sys.modules \
            or urlsplit(url).scheme.lower() in ("postgres", "postgresql"):
        import peewee  # noqa: F401
        return
    sys.modules["psycopg2"] = None  # type: ignore[assignment]  # import psycopg2 fails
    try:
        import peewee  # noqa: F401
    finally:
        del sys.modules["psycopg2"]


def postgresql_driver() -> bool:
    """Whether peewee has a PostgreSQL driver: psycopg2, handed to it here when import_peewee
    left it out; False when psycopg2 (and psycopg) is not installed."""
    import peewee

    # peewee's driver modules (None when missing) are not in its stubs.
    if getattr(peewee, "psycopg2", None) is not None or getattr(peewee, "psycopg", None):
        return True
    try:
        import psycopg2
        from psycopg2 import extensions
        from psycopg2.extras import Json, register_uuid
    except ImportError:
        return False
    register_uuid()  # type: ignore[no-untyped-call]  # as peewee does on import
    for name, value in (("psycopg2", psycopg2), ("pg_extensions", extensions),
                        ("pg_register_uuid", register_uuid), ("Json_pg2", Json)):
        setattr(peewee, name, value)
    adapter = peewee.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN
    return True


def driver_errors() -> AbstractContextManager[None]:
    """A context in which sqlite3's and psycopg2's exceptions become peewee's, as inside
    ``Database.execute_sql`` (for SQLite's incremental blob I/O, which peewee does not wrap)."""
    # __exception_wrapper__ is private, so not in peewee's stubs.
    from peewee import __exception_wrapper__  # type: ignore[attr-defined]

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
