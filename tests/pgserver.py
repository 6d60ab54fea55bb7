"""A throwaway PostgreSQL cluster for the tests (and the benchmark): ``initdb`` in a temporary
directory, one free loopback port, run as the ``postgres`` OS user when we are root.

Nothing here installs anything: ``make test-deps`` (or ``.ci/run``) installs Debian's
``postgresql``. A missing PostgreSQL is an error that says so, never a skipped test.

The cluster asks for a password (scram-sha-256) on TCP, as a real one would; the tests' databases
belong to the role ``helpdesk`` (password ``PASSWORD``). The superuser ``postgres`` only connects
over the cluster's private Unix socket, to create databases.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers import ServerMissing, free_port

PASSWORD = "pg-test-secret"
ROLE = "helpdesk"
PG_BIN_ENV = "HELPDESK_TEST_PG_BIN"
# Fast and unsafe across a power cut: fine for tests, never for the benchmark or production.
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def pg_bin() -> Path:
    """Where the PostgreSQL server binaries are: $HELPDESK_TEST_PG_BIN, else the newest
    /usr/lib/postgresql/*/bin (Debian)."""
    if os.environ.get(PG_BIN_ENV):
        candidates = [os.environ[PG_BIN_ENV]]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                            key=lambda p: int(Path(p).parent.name) if Path(p).parent.name
                            .isdigit() else 0, reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ServerMissing("PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin); "
                        "run `sudo make test-deps` (Debian package postgresql), or point "
                        f"${PG_BIN_ENV} at its bin directory")


class PostgresCluster:
    """A private PostgreSQL cluster; ``create_database()`` hands out fresh empty databases."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bin = pg_bin()
        self.base = Path(tempfile.mkdtemp(prefix="helpdesk-fetch-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "run"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.settings = dict(settings if settings is not None else FAST)
        self._names = itertools.count(1)
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user is not None:
            try:
                pwd.getpwnam(self._user)
            except KeyError:
                raise ServerMissing("PostgreSQL will not run as root and there is no "
                                    "'postgres' user; run `sudo make test-deps` (Debian "
                                    "package postgresql creates it)") from None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> PostgresCluster:
        self.socket_dir.mkdir()
        if self._user is not None:  # initdb and postgres refuse to run as root
            owner = pwd.getpwnam(self._user)
            for path in (self.base, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        password_file = self.base / "superuser-password"
        password_file.write_text("unused-superuser-password\n")
        if self._user is not None:
            os.chown(password_file, pwd.getpwnam(self._user).pw_uid, -1)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                  "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={password_file}")
        options = [f"-p {self.port}", f"-k {self.socket_dir}", "-c listen_addresses=127.0.0.1",
                   "-c shared_buffers=32MB", "-c max_connections=60"]
        options += [f"-c {key}={value}" for key, value in self.settings.items()]
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", " ".join(options), "start")
        self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True,
                              user=self._user, stdin=subprocess.DEVNULL, cwd=self.base)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL: {program} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}{log}")

    # -- databases --------------------------------------------------------------------------
    def admin(self, sql: str, params: tuple = (), *, dbname: str = "postgres") -> list[tuple]:
        """Run *sql* as the superuser (autocommit), over the private socket."""
        import psycopg2

        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                                dbname=dbname)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            conn.close()

    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database owned by ROLE; its URL (without the password)."""
        name = name or f"test_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{name}"

    def dump(self, url: str) -> str:
        """Schema and data of the database at *url*, as pg_dump writes them (plain SQL; rows
        in their order on disk), less the random ``\\restrict`` key of newer pg_dumps."""
        done = subprocess.run([str(self.bin / "pg_dump"), "-h", str(self.socket_dir), "-p",
                               str(self.port), "-U", "postgres", url.rsplit("/", 1)[1]],
                              capture_output=True, text=True, user=self._user,
                              stdin=subprocess.DEVNULL, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"pg_dump failed ({done.returncode}): {done.stderr}")
        return "\n".join(line for line in done.stdout.splitlines()
                         if not line.startswith(("\\restrict", "\\unrestrict")))


def public_tables(url: str) -> list[str]:
    """The tables in the public schema of the test database at *url*."""
    from helpdesk_fetch.store.db import connect

    database = connect(url, password=PASSWORD)
    try:
        return database.get_tables(schema="public")
    finally:
        database.close()
