"""PostgreSQL as the database (spec §8): the same mail stored alike on both backends, the
password from a password source and never shown, a clear error without the driver, and account
locks that end with the session that holds them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import DB_PASSWORD_ENV
from tests.mails import message, message_id_of
from tests.pgserver import PASSWORD
from tests.servers import PASSWORD as PASSWORD_IMAP
from tests.test_ingest_maildir import make_maildir

ROOT = Path(__file__).resolve().parent.parent


def helpdesk(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """The real command in a process of its own."""
    return subprocess.Popen([sys.executable, "-m", "helpdesk_fetch", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.both_backends
def test_mail_beyond_varchar_limits_and_with_nul_bytes_is_stored_alike(tmp_path, write_config,
                                                                      run):
    address = "x" * 240 + "@" + "y" * 60 + ".example.org"  # 313 characters: legal, and real
    odd_type = "application/x-" + "z" * 300
    raw = (f"From: Long Name <{address}>\r\nSubject: Nul\x00in subject\r\n"
           f"Message-ID: <nul@example.org>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           f"--b\r\nContent-Type: text/plain\r\n\r\nbody with a \x00 NUL\r\n"
           f"--b\r\nContent-Type: {odd_type}\x00x\r\nContent-Disposition: attachment; "
           f"filename=\"a\x00b.bin\"\r\n\r\ndata\r\n--b--\r\n").encode()
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    ticket = run.json("tickets", "list", config=config)[0]
    assert ticket["requester"] == address and ticket["subject"] == "Nulin subject"
    shown = run.json("tickets", "show", ticket["number"], config=config)["messages"][0]
    assert shown["text"].strip() == "body with a  NUL"
    assert shown["attachments"][0]["content_type"].startswith(odd_type)
    assert "\x00" not in shown["attachments"][0]["content_type"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_text_with_nul_is_stored_not_refused(database_url, open_db):
    """A NUL that slips past the parser (an error text, an old SQLite row) must not crash."""
    from helpdesk_fetch.store.models import Setting

    open_db()
    Setting.create(key="probe", value="before\x00after")
    assert Setting.get_by_id("probe").value == "before\ufffdafter"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("source", ["env", "file", "command"])
def test_database_password_from_a_password_source(source, tmp_path, write_config, run,
                                                  monkeypatch):
    make_maildir(tmp_path / "box", [message("Via a password source")])
    password_file = tmp_path / "db-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    key, value = {"env": ("database_password_env", DB_PASSWORD_ENV),
                  "file": ("database_password_file", "db-password"),
                  "command": ("database_password_command", f"cat {password_file}")}[source]
    monkeypatch.delenv(DB_PASSWORD_ENV, raising=source != "env")
    if source == "env":
        monkeypatch.setenv(DB_PASSWORD_ENV, PASSWORD)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={key: value})

    assert run("fetch", config=config).exit_code == 0
    status = run("status", config=config)
    assert status.exit_code == 0 and PASSWORD not in status.output
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Via a password source"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_wrong_database_password_fails_the_run_and_is_never_shown(tmp_path, write_config,
                                                                    run, monkeypatch):
    monkeypatch.setenv(DB_PASSWORD_ENV, "wrong-password-123")
    make_maildir(tmp_path / "box", [message("Stays")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert "cannot open the database postgresql://helpdesk@127.0.0.1" in result.stderr
    assert "password authentication failed" in result.stderr
    assert "wrong-password-123" not in result.output
    assert len(list((tmp_path / "box" / "new").iterdir())) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_password_in_the_url_is_redacted_and_needs_a_private_file(database_url, tmp_path,
                                                                    write_config, run):
    url = database_url.replace("helpdesk@", f"helpdesk:{PASSWORD}@")
    config = write_config([], settings={"database": url, "database_password_env": None})

    text = run("status", config=config)
    data = run.json("status", config=config)

    assert text.exit_code == 0, text.output
    assert PASSWORD not in text.output and PASSWORD not in str(data)
    assert data["database"] == database_url.replace("helpdesk@", "helpdesk:***@")
    config.chmod(0o644)
    refused = run("status", config=config)
    assert refused.exit_code == 2 and f"chmod 600 {config}" in refused.stderr


def test_database_password_keys_are_checked(tmp_path, write_config, run):
    sqlite = write_config([], settings={"database_password_env": "X"})
    both = write_config([], settings={"database": "postgresql://u@db.example.org/helpdesk",
                                      "database_password_env": "X",
                                      "database_password_file": "f"},
                        path=tmp_path / "both.toml")
    assert "key 'settings.database_password_env': only a PostgreSQL database has a password" \
        in run("status", config=sqlite).stderr
    assert "key 'settings.database_password_file': give only one of" \
        in run("status", config=both).stderr


def test_without_the_driver_postgresql_is_a_clear_error(tmp_path, write_config):
    config = write_config([], settings={"database": "postgresql://u@127.0.0.1:1/helpdesk"})
    no_driver = textwrap.dedent("""
        import sys
        sys.modules["psycopg2"] = sys.modules["psycopg"] = None  # as if never installed
        from helpdesk_fetch.cli import main
        sys.argv[0] = "helpdesk-fetch"
        main()
    """)
    process = subprocess.run([sys.executable, "-c", no_driver, "--config", str(config),
                              "status"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert process.returncode == 2
    assert "pip install 'helpdesk-fetch[postgres]'" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_after_peewee_was_imported_for_sqlite(database_url):
    """peewee imported for SQLite leaves psycopg2 out (issue 18); a PostgreSQL database opened
    afterwards in the same process (db copy) hands it to peewee and works: transactions, their
    status, binary and UUID values."""
    script = textwrap.dedent("""
        import sys, uuid
        from helpdesk_fetch.store.peewee_adapter import import_peewee
        import_peewee("sqlite:///unused.db")
        assert "peewee" in sys.modules and "psycopg2" not in sys.modules
        from helpdesk_fetch.store import db
        database = db.open_database(sys.argv[1], password=sys.argv[2])
        with database.atomic():
            row = database.execute_sql("SELECT %s, %s", (b"\\x00raw", uuid.UUID(int=7))).fetchone()
        print(bytes(row[0]) == b"\\x00raw", row[1] == uuid.UUID(int=7),
              database.is_connection_usable(), database.in_transaction())
    """)
    done = subprocess.run([sys.executable, "-c", script, database_url, PASSWORD], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "False"]


def advisory_locks(cluster, database_url: str) -> int:
    """Account locks held in the database of *database_url* right now."""
    name = database_url.rsplit("/", 1)[1]
    return cluster.admin("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = "
                         "l.database WHERE l.locktype = 'advisory' AND l.granted AND "
                         "d.datname = %s", (name,))[0][0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_killed_worker_releases_its_account(database_url, postgres, dovecot, mail_user,
                                              write_config, run, tmp_path):
    """A worker killed mid-account holds nothing afterwards: its session, and with it the
    advisory lock, ends with the process (spec §8). No state file is left to clean up."""
    account = dovecot.account("helpdesk", mail_user)
    del account["password"]
    gate = tmp_path / "gate"  # the password command waits for it: the account stays held
    account["password_command"] = (f"while [ ! -e {gate} ]; do sleep 0.1; done; "
                                   f"echo {PASSWORD_IMAP}")
    dovecot.append(mail_user, [message("Survives a killed worker")])
    config = write_config([account], settings={"timeout_seconds": 600})
    first = helpdesk("--config", str(config), "fetch", start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while advisory_locks(postgres, database_url) == 0:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first worker never took the account"
            time.sleep(0.05)
        busy = helpdesk("--config", str(config), "-v", "fetch")
        assert busy.wait(60) == 75, busy.communicate()
        assert "another run" in busy.communicate()[1]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    gate.touch()
    deadline = time.monotonic() + 60
    while advisory_locks(postgres, database_url):  # the server notices the closed socket
        assert time.monotonic() < deadline, "the killed worker's lock was never released"
        time.sleep(0.05)

    second = helpdesk("--config", str(config), "fetch")

    assert second.wait(60) == 0, second.communicate()
    assert dovecot.messages(mail_user) == []
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Survives a killed worker"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_times_are_utc_whatever_the_server_and_client_time_zones(database_url, tmp_path,
                                                                 write_config, run):
    import datetime as dt

    sent = dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    make_maildir(tmp_path / "box", [message("Time zones", date=sent)])
    url = f"{database_url}?options=-c%20TimeZone%3DAsia/Tokyo"  # libpq options in the URL
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"database": url})
    with pytest.MonkeyPatch.context() as local_time:
        local_time.setenv("TZ", "America/New_York")
        time.tzset()
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        assert run("fetch", config=config).exit_code == 0
        ticket = run.json("tickets", "list", config=config)[0]
        shown = run.json("tickets", "show", ticket["number"], config=config)
    time.tzset()
    assert shown["messages"][0]["date"] == "2024-03-31T08:30:00+00:00"
    created = dt.datetime.fromisoformat(ticket["created_at"])
    assert before <= created <= dt.datetime.now(dt.UTC)
    assert run.json("status", config=config)["database"] == url


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_write_path_locks_the_ticket_row_until_commit(database_url, tmp_path, write_config,
                                                          run, monkeypatch):
    """A reply's transaction holds its ticket's row (SELECT … FOR UPDATE), so an agent's
    `tickets close` committed meanwhile waits instead of being overwritten by the reply."""
    import psycopg2
    from psycopg2 import errors

    from helpdesk_fetch.store import write
    from tests.pgserver import ROLE

    first = message("Printer broken")
    make_maildir(tmp_path / "box", [first])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0
    reply = message("Re: Printer broken", in_reply_to=f"<{message_id_of(first)}>")
    (tmp_path / "box" / "new" / "1800000000.M1P2.reply").write_bytes(reply)
    seen = []
    real = write.store_inbound

    def store_inbound(parsed, raw, sha256, *, ticket, **kwargs):  # inside the transaction
        agent = psycopg2.connect(database_url.replace(f"{ROLE}@", f"{ROLE}:{PASSWORD}@"))
        try:
            with agent.cursor() as cursor:
                cursor.execute('SELECT 1 FROM "ticket" WHERE "id" = %s FOR UPDATE NOWAIT',
                               (ticket.id,))
            seen.append("free")
        except errors.LockNotAvailable:
            seen.append("locked")
        finally:
            agent.close()
        return real(parsed, raw, sha256, ticket=ticket, **kwargs)

    monkeypatch.setattr(write, "store_inbound", store_inbound)
    assert run("fetch", config=config).exit_code == 0

    assert seen == ["locked"]
    assert run.json("tickets", "list", config=config)[0]["message_count"] == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_lock_wait_ends_after_busy_seconds_unless_the_url_says_otherwise(database_url):
    """Without lock_timeout a command waiting for a row an agent's open transaction holds
    hangs as long as that transaction lives, deaf to SIGTERM inside libpq (spec §3)."""
    from helpdesk_fetch.store import db

    by_default = db.connect(database_url, password=PASSWORD)
    chosen = db.connect(f"{database_url}?options=-c%20lock_timeout%3D200", password=PASSWORD)
    try:
        shown = [d.execute_sql("SHOW lock_timeout").fetchone()[0] for d in (by_default, chosen)]
    finally:
        by_default.close()
        chosen.close()
    assert shown == [f"{db.BUSY_SECONDS}s", "200ms"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_error_in_a_ticket_command_is_one_line(database_url, tmp_path,
                                                            write_config, run):
    """Spec §3 on PostgreSQL: `tickets close` on a ticket row another session holds (past
    lock_timeout), and on a server that is gone, says so in one line and exits 1."""
    import psycopg2

    from tests.pgserver import ROLE

    make_maildir(tmp_path / "box", [message("Printer broken")])
    locking = f"{database_url}?options=-c%20lock_timeout%3D200"  # libpq options in the URL
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"database": locking})
    assert run("fetch", config=config).exit_code == 0
    [ticket] = run.json("tickets", "list", config=config)
    agent = psycopg2.connect(database_url.replace(f"{ROLE}@", f"{ROLE}:{PASSWORD}@"))
    try:
        with agent.cursor() as cursor:  # an agent's transaction on that ticket, not yet done
            cursor.execute('SELECT 1 FROM "ticket" WHERE "number" = %s FOR UPDATE',
                           (ticket["number"],))
            locked = run("tickets", "close", ticket["number"], config=config)
    finally:
        agent.close()
    gone = write_config([], settings={"database": "postgresql://helpdesk@127.0.0.1:1/helpdesk"},
                        path=tmp_path / "gone.toml")  # nothing listens on port 1
    unreachable = run("tickets", "close", ticket["number"], config=gone)

    for result, reason in ((locked, "another session holds what this needs"),
                           (unreachable, "127.0.0.1")):
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("helpdesk-fetch: error: "), result.stderr
        assert reason in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert run.json("tickets", "list", config=config)[0]["status"] == "new"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_dropped_under_a_ticket_command_is_one_line(database_url, postgres,
                                                                 tmp_path, write_config, run):
    """The server ends the session of a `tickets close` that waits for a row (a restart, an
    administrator, a failover): one line, exit 1, no traceback, and the ticket unchanged."""
    import psycopg2

    from tests.pgserver import ROLE

    make_maildir(tmp_path / "box", [message("Printer broken")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0
    [ticket] = run.json("tickets", "list", config=config)
    agent = psycopg2.connect(database_url.replace(f"{ROLE}@", f"{ROLE}:{PASSWORD}@"))
    try:
        with agent.cursor() as cursor:
            cursor.execute('SELECT 1 FROM "ticket" WHERE "number" = %s FOR UPDATE',
                           (ticket["number"],))
            closing = helpdesk("--config", str(config), "tickets", "close", ticket["number"])
            name, waiting = database_url.rsplit("/", 1)[1], []
            deadline = time.monotonic() + 60
            while not waiting:  # the command's session, waiting for the agent's row lock
                assert closing.poll() is None, closing.communicate()
                assert time.monotonic() < deadline, "tickets close never waited for the row"
                waiting = postgres.admin("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                         "AND wait_event_type = 'Lock'", (name,))
                time.sleep(0.05)
            postgres.admin("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
            stdout, stderr = closing.communicate(timeout=60)
    finally:
        agent.close()

    assert closing.returncode == 1, stdout + stderr
    assert stderr.startswith("helpdesk-fetch: error: database: ") and "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert "terminat" in stderr or "closed the connection" in stderr, stderr
    assert run.json("tickets", "list", config=config)[0]["status"] == "new"
