"""Several fetch workers on one PostgreSQL database (spec §4.7, §8): 4 worker processes, 20
Dovecot accounts, 100 messages each, mail arriving between rounds, workers SIGKILLed mid-run —
by crash points between commit and delete and in the middle of a transaction, and from outside
at whatever instant. Every message ends up stored exactly once, every mailbox empty, every
ticket number unique and newer than those of earlier rounds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.mails import message, message_id_of

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS, MESSAGES, WORKERS = 20, 100, 4
BATCHES = (60, 40)  # messages per account arriving before round 1 and before round 2

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Workers:
    """`fetch` processes on one accounts file, as cron on several machines would start them."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.processes: list[subprocess.Popen] = []

    def start(self, crash_at: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "HELPDESK_FETCH_CRASH_AT": crash_at or ""}
        process = subprocess.Popen([sys.executable, "-m", "helpdesk_fetch", "--config",
                                    str(self.config), "fetch"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.processes.append(process)
        return process

    def wait(self) -> list[int]:
        codes = []
        for process in self.processes:
            out, err = process.communicate(timeout=300)
            assert process.returncode in (0, 75, -signal.SIGKILL), (process.returncode, out, err)
            assert process.returncode == -signal.SIGKILL or out == "", out
            codes.append(process.returncode)
        self.processes = []
        return codes


def stored(postgres, database_url: str, sql: str) -> list[tuple]:
    return postgres.admin(sql, dbname=database_url.rsplit("/", 1)[1])


def wait_until_stored(postgres, database_url: str, count: int, workers: Workers) -> None:
    """Until *count* inbound messages are stored (or every worker has ended)."""
    import psycopg2.errors

    def messages() -> int:
        try:
            return stored(postgres, database_url, "SELECT count(*) FROM message")[0][0]
        except psycopg2.errors.UndefinedTable:  # the workers are still creating the schema
            return 0

    deadline = time.monotonic() + 300
    while messages() < count:
        if all(p.poll() is not None for p in workers.processes):
            return
        assert time.monotonic() < deadline
        time.sleep(0.02)


def everything_in(dovecot, user: str, folder: str = "INBOX") -> list[int]:
    """Every UID in *folder*, \\Deleted or not."""
    client = dovecot.imap(user)
    try:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        return client.search("ALL")
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def test_workers_killed_mid_run_lose_and_duplicate_nothing(postgres, database_url, dovecot,
                                                           mail_user, write_config):
    users = [f"{mail_user}-{n}" for n in range(ACCOUNTS)]
    config = write_config([dovecot.account(f"box{n}", user) for n, user in enumerate(users)],
                          settings={"timeout_seconds": 120})
    sent: set[str] = set()
    numbers: set[int] = set()

    def deliver(batch: int, offset: int) -> None:
        for user in users:
            raws = [message(f"{user} #{offset + i}", body=f"Message {offset + i}.\n" * 10)
                    for i in range(batch)]
            sent.update(message_id_of(raw) for raw in raws)
            client = dovecot.imap(user)
            client.multiappend("INBOX", raws)
            client.logout()

    def newer_numbers() -> None:
        """The tickets of this round all have numbers above those of earlier rounds."""
        now = {int(n) for (n,) in stored(postgres, database_url, "SELECT number FROM ticket")}
        fresh = now - numbers
        assert fresh and min(fresh) > max(numbers, default=0)
        numbers.update(fresh)

    # Round 1: two workers die at crash points (between commit and delete; in the middle of a
    # transaction), a third is killed from outside at whatever it is doing.
    deliver(BATCHES[0], 0)
    workers = Workers(config)
    crashing = [workers.start(crash_at="after_commit:40"),
                workers.start(crash_at="mid_transaction:80")]
    victim = workers.start()
    workers.start()
    wait_until_stored(postgres, database_url, 500, workers)
    victim.send_signal(signal.SIGKILL)
    workers.wait()
    assert [p.returncode for p in crashing] == [-signal.SIGKILL] * 2
    newer_numbers()

    # Round 2: more mail has arrived; one worker is killed from outside mid-run.
    deliver(BATCHES[1], BATCHES[0])
    workers = Workers(config)
    for _ in range(WORKERS):
        workers.start()
    wait_until_stored(postgres, database_url, 1400, workers)
    workers.processes[1].send_signal(signal.SIGKILL)
    workers.wait()
    newer_numbers()

    # Later rounds: cron goes on until the mailboxes are empty.
    for _round in range(5):
        if not any(everything_in(dovecot, user) for user in users):
            break
        workers = Workers(config)
        for _ in range(WORKERS):
            workers.start()
        assert set(workers.wait()) <= {0, 75}

    assert [user for user in users if everything_in(dovecot, user)] == []
    assert [user for user in users if everything_in(dovecot, user, "HD Error Messages")] == []
    ids = stored(postgres, database_url, "SELECT message_id FROM message WHERE direction = 'in'")
    assert len(ids) == ACCOUNTS * MESSAGES == len(sent)  # exactly once ...
    assert {i for (i,) in ids} == sent  # ... each message we sent
    tickets = stored(postgres, database_url, "SELECT count(*), count(DISTINCT number) FROM ticket")
    assert tickets == [(ACCOUNTS * MESSAGES, ACCOUNTS * MESSAGES)]
    assert stored(postgres, database_url, "SELECT count(*) FROM failed_message") == [(0,)]
    assert stored(postgres, database_url, "SELECT count(*) FROM pg_locks WHERE locktype = "
                                          "'advisory' AND database = (SELECT oid FROM "
                                          "pg_database WHERE datname = current_database())"
                  ) == [(0,)]
