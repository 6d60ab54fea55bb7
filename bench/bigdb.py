"""A helpdesk database with a million stored messages, made with bulk SQL (not through the tool):
does ingest slow down as the database grows?

The schema is the tool's own (its migrations create it); the rows are written by recursive CTEs
with the indexes dropped and rebuilt afterwards, which takes well under a minute. The result is
cached (``$BENCH_CACHE``, else ``~/.cache/helpdesk-fetch-bench``) under a key of the migrations,
this file and the sizes, so later bench runs only copy it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE.parent / "helpdesk_fetch" / "store" / "migrations"
MESSAGES = 1_000_000
PER_TICKET = 4  # in, out (our auto-mail), in, out
TEXT = ("Hello, the printer on the third floor does not print since this morning; the display "
        "says paper jam but there is no paper in it. Thanks, a user.")


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "helpdesk-fetch-bench")


def cache_key(messages: int) -> str:
    digest = hashlib.sha256(f"{messages}".encode())
    migrations = sorted(MIGRATIONS.glob("*.py"))
    if not migrations:  # moved: a stale cache would migrate inside the timed run
        raise SystemExit(f"bench: no migrations in {MIGRATIONS}")
    for path in migrations + [Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached(messages: int = MESSAGES, *, account: str = "bench") -> tuple[Path, float]:
    """The path of the cached database (built when missing) and the seconds building took."""
    path = cache_dir() / f"bigdb-{messages}-{cache_key(messages)}.db"
    if path.exists():
        return path, 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f"bigdb-{messages}-*.db"):
        old.unlink()
    started = time.perf_counter()
    temp = path.with_suffix(".building")
    temp.unlink(missing_ok=True)
    build(temp, messages, account=account)
    temp.rename(path)
    return path, time.perf_counter() - started


def copy_to(target: Path, messages: int = MESSAGES, *, account: str = "bench") -> float:
    """Put a copy of the big database at *target*; returns the seconds spent building it."""
    path, built = cached(messages, account=account)
    shutil.copyfile(path, target)
    # On disk before the run is timed: the kernel writing back a fresh gigabyte in the meantime
    # would slow the run's own syncs, which is not what is measured.
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())
    return built


def build(path: Path, messages: int, *, account: str) -> None:
    """Create the tool's schema at *path*, then fill it with *messages* messages."""
    from helpdesk_fetch.store import db

    database = db.open_database(f"sqlite:///{path}")
    database.close()
    Path(f"{path}.migrate-lock").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # nothing to recover if the build dies: rebuilt
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    indexes = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT "
                           "NULL").fetchall()
    for (sql,) in indexes:
        conn.execute("DROP INDEX " + sql.split(" ON ")[0].split()[-1])
    conn.execute("BEGIN")
    _fill(conn, messages, account)
    conn.execute("COMMIT")
    for (sql,) in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def _fill(conn: sqlite3.Connection, messages: int, account: str) -> None:
    tickets = messages // PER_TICKET
    first = int(conn.execute("SELECT value FROM counter WHERE name = 'ticket'").fetchone()[0]) + 1
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {tickets})
        INSERT INTO ticket (id, number, subject, status, resource, requester, requester_name,
                            account, created_at, updated_at, closed_at, escalation_due_at)
        SELECT i, CAST(i + {first - 1} AS TEXT), 'Old request number ' || i,
               CASE i % 4 WHEN 0 THEN 'closed' WHEN 1 THEN 'new' WHEN 2 THEN 'in_progress'
                          ELSE 'confirmed_unread' END,
               'it-support', 'user' || (i % 5000) || '@example.net', 'Old User', ?,
               datetime('2020-01-01', '+' || (i * 5) || ' minutes'),
               datetime('2020-01-01', '+' || (i * 5 + 60) || ' minutes'),
               CASE WHEN i % 4 = 0 THEN datetime('2020-01-01', '+' || (i * 5 + 90) || ' minutes')
               END,
               datetime('2020-01-02', '+' || (i * 5) || ' minutes')
        FROM n""", (account,))
    conn.execute("UPDATE counter SET value = ? WHERE name = 'ticket'", (first - 1 + tickets,))
    conn.execute(f"""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {messages})
        INSERT INTO message (id, ticket_id, direction, state, account, message_id, in_reply_to,
                             "references", from_addr, from_name, to_addrs, cc_addrs, date,
                             subject, text, html, auto_submitted, size, sha256, received_at,
                             kind)
        SELECT i, (i - 1) / {PER_TICKET} + 1, CASE i % 2 WHEN 1 THEN 'in' ELSE 'out' END,
               'accepted', CASE i % 2 WHEN 1 THEN ? END,
               'old.' || i || '@example.net',
               CASE WHEN i % {PER_TICKET} != 1 THEN 'old.' || (i - 1) || '@example.net' END, '',
               'user' || (i % 5000) || '@example.net', 'Old User', '["helpdesk@example.com"]',
               '[]', datetime('2020-01-01', '+' || (i * 5 / 4) || ' minutes'),
               'Old request number ' || ((i - 1) / {PER_TICKET} + 1), ?, NULL, 0, 1500,
               CASE i % 2 WHEN 1 THEN lower(hex(randomblob(32))) END,
               datetime('2020-01-01', '+' || (i * 5 / 4) || ' minutes'), 'message'
        FROM n""", (account, TEXT))
    conn.execute("""
        INSERT INTO source_key (account, key, message_id, created_at)
        SELECT account, 'imap:1:' || id, id, received_at FROM message WHERE direction = 'in'""")
    conn.execute("INSERT INTO raw_message (message_id, data) SELECT id, randomblob(300) "
                 "FROM message")
