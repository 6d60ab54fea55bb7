"""Opening the database (db.py): a new SQLite file is private."""

from __future__ import annotations

import os
import stat

from helpdesk_fetch import db


def test_a_new_sqlite_database_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        database = db.open_database(f"sqlite:///{tmp_path}/new/helpdesk.db")
    finally:
        os.umask(old)
    try:
        modes = {f.name: stat.S_IMODE(f.stat().st_mode)
                 for f in (tmp_path / "new").iterdir() if not f.name.endswith("migrate-lock")}
        assert modes == {"helpdesk.db": 0o600, "helpdesk.db-wal": 0o600,
                         "helpdesk.db-shm": 0o600}
    finally:
        database.close()
