"""``make migration NAME=what_it_adds``: write the next numbered migration from the difference
between the models (``store/models.py``) and the migrations so far, with peewee's own generator
run on a scratch SQLite database that the existing migrations have built. Read the file it
writes before committing it: released migrations never change."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playhouse.migrations import main as peewee_migrations

from helpdesk_fetch.store import db


def generate(name: str) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "schema.db"
        db.open_database(f"sqlite:///{path}").close()
        status: int = peewee_migrations([str(path), "generate", name,
                                         "helpdesk_fetch.store.models:MODELS",
                                         "--directory", str(db.MIGRATIONS),
                                         "--table", db.HISTORY_TABLE])  # its exit status
        return status


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m helpdesk_fetch.store.migrations NAME")
    sys.exit(generate(sys.argv[1]))
