"""Fixtures: real servers, an isolated environment, accounts files and the CLI."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from hypothesis import settings as hypothesis_settings

from helpdesk_fetch.cli import cli
from tests.mailset import CASES
from tests.oauth_server import OAuthServer, Provider
from tests.pgserver import PASSWORD as PG_PASSWORD
from tests.pgserver import PostgresCluster
from tests.servers import (
    Dovecot,
    DovecotInboxNamespace,
    DovecotWithoutMove,
    SmtpSink,
    dovecot_base,
    server_base,
)

_names = itertools.count(1)
# The server matrix (tests/SERVERS.md): each name is also a session fixture (with "_" for "-").
IMAP_SERVERS = ("dovecot", "dovecot-inbox-ns", "dovecot-nomove", "courier", "cyrus")
POP3_SERVERS = ("dovecot", "courier", "cyrus")
MATRIX = {"imap_server": IMAP_SERVERS, "pop3_server": POP3_SERVERS}
DB_PASSWORD_ENV = "HELPDESK_TEST_DB_PASSWORD"
BACKENDS = ("sqlite", "postgresql")
CORPUS = pytest.StashKey[list]()  # (name, bytes) of each message of --corpus DIR

# Property tests: in CI ($CI set) the same examples on every run, so that a red run can be
# replayed and a green one means the same thing twice; elsewhere new examples each run. Neither
# has a deadline: a busy two-core machine makes timings noise. $HYPOTHESIS_PROFILE overrides.
hypothesis_settings.register_profile("ci", deadline=None, derandomize=True, database=None,
                                     print_blob=True)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser):
    parser.addoption("--corpus", metavar="DIR", type=Path,
                     help="also run the tests that take any mail (mail_bytes, mail_collection) "
                          "on the messages in DIR: *.eml files and the files of Maildir cur/ "
                          "and new/ folders; `-m corpus` runs only those (make test-corpus)")


def pytest_configure(config):
    config.addinivalue_line("markers", "both_backends: run the test once on SQLite and once on "
                                       "PostgreSQL (through the database_url fixture)")
    config.addinivalue_line("markers", "corpus: a run on the messages of --corpus DIR")
    directory = config.getoption("corpus")
    config.stash[CORPUS] = corpus_messages(directory) if directory is not None else []


def corpus_messages(directory: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of each message in *directory*; a corpus given but missing or empty is a
    usage error, never a quiet run on nothing."""
    if not directory.is_dir():
        raise pytest.UsageError(f"--corpus {directory}: no such directory")
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and (
        p.suffix == ".eml" or p.parent.name in ("cur", "new")))
    if not paths:
        raise pytest.UsageError(f"--corpus {directory}: no messages in it (*.eml files, or "
                                "the files of Maildir cur/ and new/ folders)")
    return [(str(p.relative_to(directory)), p.read_bytes()) for p in paths]


def pytest_generate_tests(metafunc):
    """Tests marked both_backends run on each, unless they name their own database_url. Tests
    that take any mail run on the mail set (tests/mailset) and, with --corpus, on the corpus:
    ``mail_bytes`` once per message, ``mail_collection`` once per collection."""
    own = any("database_url" in str(mark.args[0])
              for mark in metafunc.definition.iter_markers("parametrize"))
    matrix = next((name for name in MATRIX if name in metafunc.fixturenames), None)
    if ("database_url" in metafunc.fixturenames and not own
            and metafunc.definition.get_closest_marker("both_backends")):
        _backends(metafunc, matrix)
    elif matrix is not None:
        metafunc.parametrize(matrix, MATRIX[matrix], indirect=True)
    corpus = metafunc.config.stash[CORPUS]
    if "mail_bytes" in metafunc.fixturenames:
        metafunc.parametrize("mail_bytes", [
            *(pytest.param(case.raw, id=name) for name, case in CASES.items()),
            *(pytest.param(raw, id=f"corpus/{name}", marks=pytest.mark.corpus)
              for name, raw in corpus)])
    if "mail_collection" in metafunc.fixturenames:
        metafunc.parametrize("mail_collection", [
            pytest.param([case.raw for case in CASES.values()], id="mailset"),
            *([pytest.param([raw for _, raw in corpus], id="corpus", marks=pytest.mark.corpus)]
              if corpus else [])])


def _backends(metafunc, matrix: str | None) -> None:
    """Each backend; a test that runs on the server matrix too runs every server on SQLite and
    Dovecot also on PostgreSQL (the database does not care which server the mail came from,
    and ten runs of each such test would make the suite crawl)."""
    if matrix is None:
        return metafunc.parametrize("database_url", BACKENDS, indirect=True)
    pairs = [(server, "sqlite") for server in MATRIX[matrix]] + [("dovecot", "postgresql")]
    metafunc.parametrize((matrix, "database_url"), pairs, indirect=True,
                         ids=[f"{server}-{backend}" for server, backend in pairs])


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test can read or write a real configuration."""
    monkeypatch.setenv("HELPDESK_FETCH_CONFIG", str(tmp_path / "no-such-dir" / "accounts.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("HELPDESK_FETCH_CRASH_AT", raising=False)


@pytest.fixture
def owned_by_another_user(monkeypatch):
    """Make a file belong to someone other than the user the code under test runs as, who is
    root (uid 0) either way. As root the file is given to nobody (65534). Anyone else cannot
    give a file away (chown needs CAP_CHOWN, even in a user namespace the other uid is not
    mapped), so the code under test is made to see itself running as root instead: the file,
    owned by the real user, then belongs to someone else. Returns the file's (uid, gid)."""

    def give(path: Path) -> tuple[int, int]:
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)
        else:
            monkeypatch.setattr(os, "geteuid", lambda: 0)
        st = path.stat()
        return st.st_uid, st.st_gid

    return give


@pytest.fixture(scope="session")
def dovecot():
    with dovecot_base() as base:
        server = Dovecot(base).start()
        yield server
        server.stop()


def _serve(name: str, make):
    with server_base(name) as base:
        server = make(base).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def dovecot_inbox_ns():
    """Dovecot with the Courier/cPanel namespace: prefix "INBOX.", separator "."."""
    yield from _serve("dovecot", DovecotInboxNamespace)


@pytest.fixture(scope="session")
def dovecot_nomove():
    """Dovecot that announces neither MOVE nor UIDPLUS."""
    yield from _serve("dovecot", DovecotWithoutMove)


@pytest.fixture(scope="session")
def courier():
    """Courier IMAP and POP3 (Debian's packages, unpacked by tests/install-servers.sh)."""
    from tests.courier import Courier

    yield from _serve("courier", Courier)


@pytest.fixture(scope="session")
def cyrus():
    """Cyrus IMAP and POP3 (Debian's packages, unpacked by tests/install-servers.sh)."""
    from tests.cyrus import Cyrus

    yield from _serve("cyrus", Cyrus)


@pytest.fixture
def imap_server(request):
    """Each IMAP server of the matrix in turn (IMAP_SERVERS, parametrized in
    pytest_generate_tests), each started on first use and kept for the session: a test that
    takes this fixture runs once per server."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@pytest.fixture
def pop3_server(request):
    """Each POP3 server of the matrix in turn (POP3_SERVERS; Dovecot's variants differ only in
    IMAP)."""
    return request.getfixturevalue(request.param.replace("-", "_"))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of the tests' own, started on first use."""
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def _forget_secrets():
    """The secrets an in-process command handed out (secrets/redact.py) end with the test: a
    password of one test ("wrong") must not be starred out of the next one's output."""
    yield
    from helpdesk_fetch.secrets import redact

    redact._SECRETS.clear()


@pytest.fixture
def database_url(request, tmp_path, monkeypatch):
    """The database write_config uses: SQLite in tmp_path, or (in tests marked both_backends)
    also a fresh, empty PostgreSQL database whose password comes from $DB_PASSWORD_ENV."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"sqlite:///{tmp_path}/helpdesk.db"
    cluster = request.getfixturevalue("postgres")
    monkeypatch.setenv(DB_PASSWORD_ENV, PG_PASSWORD)
    return cluster.create_database()


@pytest.fixture
def open_db(database_url):
    """Open write_config's database in the test process (models bound to it)."""
    from helpdesk_fetch.store import db

    def open_():
        password = PG_PASSWORD if database_url.startswith("postgresql:") else None
        return db.open_database(database_url, password=password)

    return open_


@pytest.fixture
def database_state(database_url, request):
    """A function that returns all the test database holds, to be compared byte for byte:
    the SHA-256 of SQLite's file and of its -wal (None when absent), or PostgreSQL's pg_dump.
    Run the command under test in a process of its own (tests/proc.py): an in-process command
    first closes the test process's connection, and SQLite folds the WAL into the file when
    the last connection closes — a change, but not one of the command's."""

    def state() -> dict[str, str | None]:
        if database_url.startswith("postgresql:"):
            return {"dump": request.getfixturevalue("postgres").dump(database_url)}
        path = Path(database_url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        return {"file": hashlib.sha256(path.read_bytes()).hexdigest(),
                "wal": hashlib.sha256(wal.read_bytes()).hexdigest() if wal.exists() else None}

    return state


@pytest.fixture(scope="session")
def oauth_server():
    """The tests' OAuth2 identity provider (token, device, browser and introspection endpoints)."""
    server = OAuthServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(oauth_server):
    """A second Dovecot whose XOAUTH2/OAUTHBEARER logins are checked by the tests' provider."""
    with dovecot_base() as base:
        server = Dovecot(base, oauth2_introspection_url=oauth_server.url + "/introspect").start()
        yield server
        server.stop()


@pytest.fixture
def idp(oauth_server):
    """The identity provider with a fresh state for this test."""
    oauth_server.provider = Provider()
    return oauth_server


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives."""
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def mail_user():
    """A fresh mailbox name: Dovecot creates the mailbox on first login, the other servers of
    the matrix when a helper first names the user (add_user)."""
    return f"user{next(_names)}-{os.getpid()}"


@pytest.fixture
def write_config(tmp_path, database_url):
    """Write an accounts file (mode 600) from Python data; returns its path."""

    def write(accounts=(), *, settings=None, resources=None, smtp=None, automail=None,
              alerts=None, hooks=None, path: Path | None = None) -> Path:
        data = {"settings": {"database": database_url}}
        if database_url.startswith("postgresql:"):
            data["settings"]["database_password_env"] = DB_PASSWORD_ENV
        if settings and any(key.startswith("database_password") for key in settings):
            data["settings"].pop("database_password_env", None)
        data["settings"].update({k: v for k, v in (settings or {}).items() if v is not None})
        if smtp is not None:
            data["smtp"] = smtp
        if automail is not None:
            data["automail"] = automail
        for table, value in (("alerts", alerts), ("hooks", hooks)):
            if value is not None:
                data[table] = value
        data["resources"] = resources if resources is not None else [
            {"name": "it-support", "members": ["alice@example.com", "bob@example.com"]}]
        if accounts:
            data["accounts"] = list(accounts)
        path = path or tmp_path / "accounts.toml"
        path.write_text(tomli_w.dumps(data))
        path.chmod(0o600)
        return path

    return write


class Cli:
    """Runs the real command line in-process."""

    def __init__(self, config: Path | None = None) -> None:
        self.config = config

    def __call__(self, *args: str, config: Path | None = None, input: str | None = None):
        config = config or self.config
        argv = (["--config", str(config)] if config else []) + list(args)
        return CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)

    def json(self, *args: str, **kwargs):
        result = self(*args, "--json", **kwargs)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def run():
    return Cli()
