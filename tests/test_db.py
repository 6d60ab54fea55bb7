"""Opening the database (db.py): a new SQLite file is private; a newer schema is refused;
PostgreSQL URLs with query parameters open, malformed ones are config errors, passwords in them
are never shown."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk_fetch import config
from helpdesk_fetch.config import dburl
from helpdesk_fetch.errors import ConfigError, DatabaseError
from helpdesk_fetch.store import db
from tests.pgserver import PASSWORD

ROOT = Path(__file__).parent.parent


def test_a_new_sqlite_database_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        database = db.open_database(f"sqlite:///{tmp_path}/new/db/helpdesk.db")
    finally:
        os.umask(old)
    try:
        modes = {f.name: stat.S_IMODE(f.stat().st_mode)
                 for f in (tmp_path / "new/db").iterdir() if not f.name.endswith("migrate-lock")}
        assert modes == {"helpdesk.db": 0o600, "helpdesk.db-wal": 0o600,
                         "helpdesk.db-shm": 0o600}
        assert [stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "new", tmp_path / "new/db")
                ] == [0o700, 0o700]  # the directories it made
    finally:
        database.close()


def test_a_message_that_fails_again_after_it_was_resolved_is_a_new_failure(tmp_path,
                                                                            monkeypatch):
    """Its first failure is the new one (errors retry counts a reply's arrival from it), and
    its attempts start again; while it waits, a failure again is one more attempt."""
    from helpdesk_fetch.store import failures

    database = db.open_database(f"sqlite:///{tmp_path}/helpdesk.db")
    try:
        def fail_at(day: int) -> failures.FailedMessage:
            monkeypatch.setattr(failures, "utcnow", lambda: dt.datetime(2026, 11, day, 12))
            return failures.record_failure("box", "key:1", reason="too big", location="",
                                           size=10)

        first = fail_at(1)
        assert (fail_at(2).created_at, fail_at(3).attempts) == (first.created_at, 3)
        failures.resolve_failure(first.id)
        again = fail_at(20)
        assert (again.id, again.created_at, again.attempts, again.state) == (
            first.id, dt.datetime(2026, 11, 20, 12), 1, "pending")
    finally:
        database.close()


def test_processes_opening_a_new_database_together_take_turns(tmp_path):
    """Two runs started together on a new file got "database is locked" at once (SQLite does
    not wait for busy_timeout when one switches to WAL while the other reads)."""
    url = f"sqlite:///{tmp_path}/helpdesk.db"
    script = ("import sys; from helpdesk_fetch.store import db; db.open_database(sys.argv[1]); "
              "print(db.next_ticket_number(db.models.database.obj))")
    runs = [subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(8)]
    results = [(run.wait(60), *run.communicate()) for run in runs]

    assert [code for code, _, _ in results] == [0] * 8, results
    assert sorted(int(out) for _, out, _ in results) == list(range(1001, 1009))


def test_a_process_stuck_while_opening_stops_the_others_with_an_error(tmp_path, monkeypatch):
    path = tmp_path / "helpdesk.db"
    db.open_database(f"sqlite:///{path}").close()
    monkeypatch.setattr(db, "BUSY_SECONDS", 0.2)
    with open(f"{path}.migrate-lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DatabaseError, match="another process has held its lock file"):
            db.open_database(f"sqlite:///{path}")


@pytest.mark.parametrize("command", [["fetch"], ["status"], ["tickets", "list"],
                                     ["tickets", "close", "1"]])
def test_a_database_path_that_is_a_directory_is_a_configuration_error(tmp_path, write_config,
                                                                      run, command):
    (tmp_path / "helpdesk.db").mkdir()  # what the administrator meant as its directory
    config = write_config([{"name": "box", "protocol": "maildir", "path": "box"}],
                          settings={"database": "sqlite:///helpdesk.db"})

    result = run(*command, config=config)

    assert result.exit_code == 2, result.output
    assert (f"{config}: key 'settings.database': {tmp_path / 'helpdesk.db'} is a directory, "
            "not a database file; name a file, e.g. "
            f"sqlite:///{tmp_path / 'helpdesk.db' / 'helpdesk.db'}") in result.stderr


@pytest.mark.both_backends
@pytest.mark.parametrize("read_only", [False, True])
def test_a_database_upgraded_by_a_newer_version_is_refused(read_only, database_url, open_db):
    database = open_db()
    database.execute_sql(f"INSERT INTO {db.HISTORY_TABLE} (name, applied) "
                         f"VALUES ('9999_from_the_future', CURRENT_TIMESTAMP)")
    database.close()
    password = PASSWORD if database_url.startswith("postgresql:") else None

    with pytest.raises(DatabaseError, match=r"newer helpdesk-fetch .*9999_from_the_future"):
        db.open_database(database_url, password=password, read_only=read_only)


def test_query_parameters_override_the_url_parts(postgres, run, write_config, tmp_path):
    """README's socket URL, and user/port/dbname given in the query instead of the URL."""
    name = postgres.create_database().rsplit("/", 1)[1]
    socket = f"host={postgres.socket_dir}&port={postgres.port}"
    for url in (f"postgresql://helpdesk@/{name}?{socket}",
                f"postgresql://nobody@127.0.0.1:1/wrong?{socket}&user=helpdesk&dbname={name}"):
        config = write_config([], settings={"database": url})

        result = run("status", "--json", config=config)

        assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://helpdesk@127.0.0.1:port/db", "port of the PostgreSQL URL is not a number"),
    ("postgresql://helpdesk@127.0.0.1/db?port=x", "port of the PostgreSQL URL is not a number"),
    ("postgresql://helpdesk:1234/s3cr#t?x@127.0.0.1/db", "percent-encode"),
])
def test_a_malformed_postgresql_url_is_a_config_error(url, shown, run, write_config):
    config = write_config([], settings={"database": url})

    result = run("status", config=config)

    assert result.exit_code == 2 and shown in result.stderr
    assert "settings.database" in result.stderr
    assert "s3cr" not in result.output and "1234" not in result.output


@pytest.mark.parametrize("url", [
    "postgresql://helpdesk:1234/secret@db.example.com/helpdesk",
    "postgresql://helpdesk:12#34?secret@db.example.com/helpdesk",
    "postgresql://helpdesk:p%2Fw@db.example.com/helpdesk?sslmode=require",
    "postgresql://helpdesk@db.example.com/helpdesk?sslmode=require&password=secret",
])
def test_a_password_in_the_url_is_never_shown_and_makes_the_file_private(url, tmp_path,
                                                                         write_config):
    redacted = dburl.redact(url)
    assert dburl.password(url) not in redacted and "***" in redacted
    assert redacted.startswith("postgresql://helpdesk") and "db.example.com" in redacted
    path = write_config([], settings={"database": url})
    path.chmod(0o644)

    with pytest.raises(ConfigError, match="holds a secret"):
        config.load(path)


def test_the_read_only_path_of_a_file_with_a_space_and_umlaut(tmp_path):
    path = tmp_path / "my dir ü" / "helpdesk.db"
    db.open_database(f"sqlite:///{path}").close()

    database = db.open_database(f"sqlite:///{path}", read_only=True)

    assert db.sqlite_path(database) == path and path.exists()
    database.close()


@pytest.mark.both_backends
def test_the_migrations_build_exactly_the_models(open_db):
    """models.py and migrations/ agree: a change to one without the other (`make migration`)
    fails here, on SQLite and on PostgreSQL."""
    from playhouse.schema_diff import diff_models

    from helpdesk_fetch.store.models import MODELS

    database = open_db()
    assert not diff_models(database, MODELS), diff_models(database, MODELS)


def test_make_migration_finds_nothing_to_write(capsys):
    from helpdesk_fetch.store.migrations.__main__ import generate

    assert not generate("nothing")
    assert "Nothing to generate" in capsys.readouterr().out


# -- a database file this user may not use (issue 19.1) ------------------------------------------

SERVICE_USER = 65534  # nobody: the service user that meets a helpdesk.db a run as root created


@pytest.fixture
def service_user():
    """(directory, argv prefix): a directory of root's where another user may look (tmp_path's
    parents are root's alone), and what runs a command as that user. Not root, the test's user
    cannot hand a file to anyone: the command then runs as that user, on files it made but may
    not write (mode 444 and 555), which SQLite refuses the same way."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="helpdesk-fetch-test-")
    os.chmod(directory, 0o755)
    as_root = os.geteuid() == 0
    prefix = ("setpriv", f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}",
              "--clear-groups", "--") if as_root else ()
    yield Path(directory), prefix
    shutil.rmtree(directory)


def _ours(stderr: str) -> str:
    """What helpdesk-fetch printed: under `make test` the service user's process also carries
    coverage, which cannot write its data beside the root-owned checkout and says so."""
    return "".join(line for line in stderr.splitlines(keepends=True)
                   if line.startswith("helpdesk-fetch"))


def _me_and_owner() -> tuple[str, str]:
    import pwd

    if os.geteuid() == 0:
        return pwd.getpwuid(SERVICE_USER).pw_name, "root"
    me = pwd.getpwuid(os.geteuid()).pw_name
    return me, me


def _runnable_by_the_service_user(directory: Path) -> Path:
    """A Maildir account (a file without a secret may be root's, spec §2) and its first run."""
    from tests.mails import message
    from tests.proc import helpdesk_fetch
    from tests.test_ingest_maildir import make_maildir

    make_maildir(directory / "box", [message("Printer broken")])
    accounts = directory / "accounts.toml"
    accounts.write_text('[[accounts]]\nname = "local"\nprotocol = "maildir"\npath = "box"\n')
    accounts.chmod(0o644)
    assert helpdesk_fetch("fetch", config=accounts).returncode == 0  # as root, or the user
    make_maildir(directory / "box", [message("Scanner broken")])
    for path in (directory, *directory.rglob("*")):  # the service user may read it all
        path.chmod(0o755 if path.is_dir() else 0o644)
    return accounts


def test_an_accounts_file_this_user_cannot_read_says_whose_it_is(service_user):
    from tests.proc import helpdesk_fetch

    directory, as_service_user = service_user
    accounts = directory / "accounts.toml"
    accounts.write_text('[[accounts]]\nname = "local"\nprotocol = "maildir"\npath = "box"\n')
    as_root = os.geteuid() == 0
    accounts.chmod(0o600 if as_root else 0o200)
    me, owner = _me_and_owner()

    shown = helpdesk_fetch("status", config=accounts, wrapper=as_service_user, text=True)

    hint = f"(owned by root, mode 600; this runs as {me}); fix: chown {me} {accounts}" \
        if as_root else \
        f"(mode 200); fix: chmod u+r {accounts}"
    assert _ours(shown.stderr) == (f"helpdesk-fetch: error: {accounts}: cannot read the "
                                   f"accounts file: Permission denied {hint}\n")


def test_a_database_another_user_owns_is_one_line_with_owner_mode_and_fix(service_user):
    from tests.proc import helpdesk_fetch

    directory, as_service_user = service_user
    accounts = _runnable_by_the_service_user(directory)
    database = directory / "helpdesk.db"
    database.chmod(0o644 if os.geteuid() == 0 else 0o444)
    directory.chmod(0o755 if os.geteuid() == 0 else 0o555)
    me, owner = _me_and_owner()
    mode = "755" if os.geteuid() == 0 else "555"
    fix = (f"chown {me} {directory} {database}*" if os.geteuid() == 0 else
           f"chmod u+rwx {directory} && chmod u+rw {database}")

    fetched = helpdesk_fetch("fetch", config=accounts, wrapper=as_service_user, text=True)

    assert fetched.returncode == 1  # as for any database error (spec §3)
    assert _ours(fetched.stderr) == (
        f"helpdesk-fetch: the database directory {directory} belongs to {owner} (mode {mode}), "
        f"and {me}, who runs helpdesk-fetch, cannot create the database's -wal and -shm files "
        f"in it; fix: {fix}; the run stopped, and messages not stored stay on their server for "
        "the next run\n")
    assert len(list((directory / "box" / "new").iterdir())) == 1  # nothing read, nothing lost
    private = 0o600 if os.geteuid() == 0 else 0o200  # not the user's, or not even readable
    database.chmod(private)
    reading = f"chown {me} {database}*" if os.geteuid() == 0 else f"chmod u+rw {database}"

    shown = helpdesk_fetch("tickets", "list", config=accounts, wrapper=as_service_user,
                           text=True)

    assert shown.returncode == 1
    assert _ours(shown.stderr) == (
        f"helpdesk-fetch: error: the database file {database} belongs to {owner} (mode "
        f"{private:o}), and {me}, who runs helpdesk-fetch, cannot read it; fix: {reading}\n")
    assert "readonly database" not in fetched.stderr + shown.stderr
    directory.chmod(0o755)


def test_a_database_of_another_service_user_is_theirs_to_run(service_user):
    """Met by a user who is not its owner (a database the service user made, tried by another
    account): the fix is to run as its owner first, taking it away from them second."""
    import pwd

    from tests.proc import helpdesk_fetch

    if os.geteuid() != 0:
        pytest.skip("only root can give a database to a user other than itself")
    directory, as_service_user = service_user
    accounts = _runnable_by_the_service_user(directory)
    owner = pwd.getpwnam("daemon")
    for path in (directory / "helpdesk.db", *directory.glob("helpdesk.db-*")):
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o600)

    shown = helpdesk_fetch("tickets", "list", config=accounts, wrapper=as_service_user,
                           text=True)

    assert shown.returncode == 1
    me, _ = _me_and_owner()
    assert _ours(shown.stderr).endswith(
        "cannot read it; fix: run helpdesk-fetch as daemon, whose database it is (e.g. "
        f"`runuser -u daemon -- helpdesk-fetch ...`), or, if it is to be {me}'s: chown {me} "
        f"{directory / 'helpdesk.db'}*\n"), shown.stderr


def test_a_state_dir_another_user_owns_names_its_owner_and_the_fix(service_user):
    """The account locks live in state_dir: one made by root and used by the service user from
    cron is refused with who owns it and the fix, not a bare "Permission denied"."""
    from tests.proc import helpdesk_fetch

    directory, as_service_user = service_user
    accounts = _runnable_by_the_service_user(directory)
    accounts.write_text('[settings]\nstate_dir = "state"\n\n' + accounts.read_text())
    state = directory / "state"
    state.mkdir()
    me, owner = _me_and_owner()
    if os.geteuid() == 0:  # everything else is the service user's
        for path in (directory, *directory.rglob("*")):
            if path != state and path != accounts:
                os.chown(path, SERVICE_USER, SERVICE_USER)
        mode = 0o755
    else:
        mode = 0o555
    state.chmod(mode)

    fetched = helpdesk_fetch("fetch", config=accounts, wrapper=as_service_user, text=True)

    assert fetched.returncode == 1
    assert (f"cannot create the lock for account 'local' in {state}/locks: Permission denied; "
            f"{state} belongs to {owner} (mode {mode:o}) and {me} runs helpdesk-fetch; fix: "
            f"install -d -o {me} {state}/locks, or set settings.state_dir to a directory of "
            "this user") in fetched.stderr  # never a chown of a parent it did not make
    assert len(list((directory / "box" / "new").iterdir())) == 1  # nothing read, nothing lost
    state.chmod(0o755)


@pytest.mark.parametrize("where", ["closed", "to be made"])
def test_a_database_directory_this_user_cannot_enter_or_make(service_user, where):
    """A directory of root's that the service user cannot enter (mode 700) hides the file: no
    traceback, the owner and the fix. One still to be made is made for the user (install -d),
    never by giving away the parent that exists (think /var/lib)."""
    from tests.proc import helpdesk_fetch
    from tests.test_ingest_maildir import make_maildir

    directory, as_service_user = service_user
    make_maildir(directory / "box", [])
    closed = directory / "private"
    database = closed / "helpdesk.db" if where == "closed" else directory / "new" / "helpdesk.db"
    accounts = directory / "accounts.toml"
    accounts.write_text(f'[settings]\ndatabase = "sqlite:///{database}"\n\n[[accounts]]\n'
                        'name = "local"\nprotocol = "maildir"\npath = "box"\n')
    for path in (accounts, directory / "box", *(directory / "box").iterdir()):
        path.chmod(0o644 if path.is_file() else 0o755)
    closed.mkdir(mode=0o700 if os.geteuid() == 0 else 0o600)
    if where == "to be made" and os.geteuid() != 0:
        directory.chmod(0o555)
    me, owner = _me_and_owner()

    results = [helpdesk_fetch(*command, config=accounts, wrapper=as_service_user, text=True)
               for command in (["status"], ["fetch"])]

    for result in results if where == "closed" else results[1:]:
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in _ours(result.stderr) and "Error" not in _ours(result.stderr)
    if where == "to be made":  # nothing fetched yet, as far as reading goes
        assert results[0].returncode == 0 and "does not exist yet" in results[0].stderr
    if where == "closed":
        fix = f"chown {me} {closed}" if os.geteuid() == 0 else f"chmod u+rwx {closed}"
        assert (f"the database directory {closed} belongs to {owner} (mode "
                f"{0o700 if os.geteuid() == 0 else 0o600:o}), and {me}, who runs "
                f"helpdesk-fetch, cannot enter it; fix: {fix}") in results[0].stderr
    else:
        assert (f"cannot create {database.parent} in it; fix: install -d -o {me} "
                f"{database.parent}") in results[1].stderr
    closed.chmod(0o755)
    directory.chmod(0o755)


def test_a_lock_file_this_user_may_only_read_does_not_stop_it(service_user):
    """The open's lock file needs no write access (flock works on a file open for reading): one
    another member of a group made, with the umask's 644, is no obstacle."""
    from tests.proc import helpdesk_fetch

    directory, as_service_user = service_user
    accounts = _runnable_by_the_service_user(directory)
    lock = directory / "helpdesk.db.migrate-lock"
    assert lock.exists()  # made by the first run
    if os.geteuid() == 0:  # the database is the service user's; the lock file stays root's
        for path in (directory, *directory.rglob("*")):
            if path not in (lock, accounts):
                os.chown(path, SERVICE_USER, SERVICE_USER)
        lock.chmod(0o644)
    else:
        lock.chmod(0o444)

    fetched = helpdesk_fetch("fetch", config=accounts, wrapper=as_service_user, text=True)

    assert fetched.returncode == 0, fetched.stderr
    assert list((directory / "box" / "new").iterdir()) == []  # read and stored
