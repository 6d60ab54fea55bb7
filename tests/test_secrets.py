"""Secrets stay secret (spec §7): files holding one must be private; no secret appears in any
output of any command at any verbosity, in the protocol traces, in error messages, or in the
database.

The leak test runs every command of the click tree (so a new command is covered the day it is
added) as a real process at -v, -vv and -vvv against accounts whose secrets come from every
source, logins that succeed and logins that fail, and greps everything they print.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import os
import pwd
import socket
import sqlite3
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from helpdesk_fetch.cli import cli, subcommands
from tests.mails import message
from tests.oauth_server import Client
from tests.pgserver import PASSWORD as PG_PASSWORD
from tests.proc import environment, helpdesk_fetch
from tests.servers import PASSWORD
from tests.test_ingest_maildir import make_maildir
from tests.test_oauth2 import CLIENT, oauth_account, signed_in

BAD_INLINE = 'bad-"inline"\\pässwörd-7'  # quotes, backslash, non-ASCII: every escaping path
BAD_ENV = "bad-env-s3cr3t-value"
CMD_FAIL = "cmd-fail-s3cr3t-value"
SMTP_SECRET = "smtp-inline-s3cr3t"
CLIENT_SECRET = "oauth-client-s3cr3t"

# Arguments for the commands' required parameters, by parameter name; a new command with a new
# required parameter makes the leak test fail until it gets a sample here.
ARGUMENTS = {"name": "bad-inline", "ident": "1", "ids": "1", "status": "in_progress"}
SPECIAL = {("accounts", "add"): ["leak-new", "--protocol", "imap", "--host", "127.0.0.1",
                                 "--username", "u", "--password-env", "LEAK_GOOD"],
           ("accounts", "authorize"): ["oauth-device"],
           ("deliver",): ["--account", "local"],
           ("tickets", "show"): ["1001"], ("tickets", "close"): ["1001"],  # TICKET
           ("tickets", "set-status"): ["1001", "in_progress"],
           ("rules", "test"): ["--account", "local", "-"]}
STDIN = {"deliver": message("Piped in by the MTA"), "rules": message("Tried on the rules")}
SKIP_FLAGS = {"--browser"}  # waits for a person's browser


def _me() -> str:
    """The running user's name, as a fix names it (chown NAME FILE)."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def revealing(command: str) -> str:
    """A shell command printing *command*'s secret without containing it (rot13)."""
    return f"echo {codecs.encode(command, 'rot13')} | tr 'A-Za-z' 'N-ZA-Mn-za-m'"


def leaf_commands(group: click.Group = cli, prefix: tuple = ()):
    for name, command in subcommands(group).items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def invocations():
    """Every command with its required arguments, once plain and once per flag it has."""
    for path, command in leaf_commands():
        args = SPECIAL.get(path)
        if args is None:
            args = []
            for param in command.params:
                if isinstance(param, click.Argument) and param.required:
                    if param.name not in ARGUMENTS:
                        pytest.fail(f"add a sample for {' '.join(path)} {param.name.upper()} "
                                    "to ARGUMENTS in tests/test_secrets.py")
                    args.append(ARGUMENTS[param.name])
        yield [*path, *args]
        for param in command.params:
            flags = [o for o in param.opts if o.startswith("--")]
            if getattr(param, "is_flag", False) and flags and flags[0] not in SKIP_FLAGS:
                yield [*path, *args, flags[0]]


def forms(secret: str, users: list[str]) -> set[str]:
    """*secret* as it could leak: raw, escaped, URL-encoded, and inside base64 SASL responses."""
    found = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], urllib.parse.quote(secret),
             urllib.parse.quote_plus(secret), base64.b64encode(secret.encode()).decode()}
    for user in users:
        for sasl in (f"\0{user}\0{secret}", f"user={user}\x01auth=Bearer {secret}\x01\x01"):
            found.add(base64.b64encode(sasl.encode()).decode())
    return found


@pytest.fixture
def leaky_setup(dovecot, oauth_dovecot, idp, tmp_path, write_config):
    """Accounts with a secret from every source; some log in, some fail. Returns a function that
    prepares a directory of its own (accounts file, database, token files) for one series of
    runs, and the environment and user names."""
    users = {name: f"leak-{name}-{os.getpid()}-{tmp_path.name[-12:]}" for name in (
        "inline", "env", "file", "cmd", "oauth", "cmdtoken", "revoked", "device")}
    for name in ("inline", "env", "file", "cmd"):
        dovecot.append(users[name], [message(f"Mail for {name}")])
    for name in ("oauth", "cmdtoken"):
        oauth_dovecot.append(users[name], [message(f"Mail for {name}")])
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    (tmp_path / "client-secret").write_text(CLIENT_SECRET + "\n")
    for name in ("pw", "client-secret"):
        (tmp_path / name).chmod(0o600)
    idp.provider.clients[CLIENT] = Client(secret=CLIENT_SECRET)
    idp.provider.device_user = users["device"]
    token = idp.provider.issue(users["cmdtoken"], CLIENT, with_refresh=False)["access_token"]
    env = {"LEAK_GOOD": PASSWORD, "LEAK_BAD": BAD_ENV}

    def account(server, name, user_key, **keys):
        table = server.account(name, users[user_key], **keys)
        if "password" in keys and keys["password"] is None:
            del table["password"]
        return table

    oauth = dict(password_file=str(tmp_path / "client-secret"))
    accounts = [
        account(dovecot, "inline-ok", "inline"),
        account(dovecot, "env-ok", "env", protocol="pop3", password=None,
                password_env="LEAK_GOOD"),
        account(dovecot, "file-ok", "file", security="starttls", password=None,
                password_file=str(tmp_path / "pw")),
        account(dovecot, "cmd-ok", "cmd", protocol="pop3", security="starttls", password=None,
                password_command=revealing(PASSWORD)),
        account(dovecot, "bad-inline", "inline", password=BAD_INLINE),
        account(dovecot, "bad-env", "env", protocol="pop3", password=None,
                password_env="LEAK_BAD"),
        account(dovecot, "cmd-fail", "cmd", password=None, password_command=(
            f"{revealing(CMD_FAIL)}; {revealing(CMD_FAIL)} >&2; exit 1")),
        oauth_account(oauth_dovecot, idp, "oauth-refresh", users["oauth"], **oauth),
        oauth_account(oauth_dovecot, idp, "oauth-revoked", users["revoked"], **oauth),
        oauth_account(oauth_dovecot, idp, "oauth-device", users["device"], "pop3", **oauth),
        oauth_account(oauth_dovecot, idp, "oauth-cmd", users["cmdtoken"],
                      oauth2_token_command=revealing(token)),
        {"name": "local", "protocol": "maildir", "path": "box", "resource": "it-support"},
    ]
    smtp = {"host": "127.0.0.1", "port": 9, "from_address": "hd@example.com",
            "username": "hd", "password": SMTP_SECRET}

    def prepare(directory: Path):
        directory.mkdir()
        make_maildir(directory / "box", [message("Local mail"), b""])  # b"": an error

        def write() -> Path:
            return write_config(accounts, smtp=smtp, path=directory / "accounts.toml",
                                settings={"database": f"sqlite:///{directory}/helpdesk.db"})

        config = write()
        signed_in(idp, config, "oauth-refresh", users["oauth"])
        signed_in(idp, config, "oauth-revoked", users["revoked"])
        return write

    yield prepare, env, users


def run_cli(config: Path, env: dict, argv: list[str], **kwargs) -> str:
    """stdout and stderr of one real run."""
    done = helpdesk_fetch(*argv, config=config, env=environment(**env), **kwargs)
    return (done.stdout + done.stderr).decode("utf-8", "replace")


class SyslogSink:
    """A syslog socket that keeps every line sent to it (for --syslog)."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.lines.append(self.sock.recv(65536).decode("utf-8", "replace"))

    def close(self) -> None:
        self.sock.close()


def test_no_secret_in_any_output(leaky_setup, idp, postgres, tmp_path):
    prepare, env, users = leaky_setup
    levels = ("-v", "-vv", "-vvv")
    writers = {level: prepare(tmp_path / level.strip("-")) for level in levels}
    idp.provider.revoke(users["revoked"])  # its saved refresh tokens are now void
    # db copy (which copies the tag secret) gets an empty PostgreSQL database per series
    copy_to = {level: ["--to", postgres.create_database(), "--password-env", "LEAK_PG"]
               for level in levels}

    syslog = SyslogSink(tmp_path / "syslog.sock")
    env = dict(env, HELPDESK_FETCH_SYSLOG_SOCKET=str(syslog.path), LEAK_PG=PG_PASSWORD)

    def series(level: str) -> dict[str, str]:
        """Every command in turn at one verbosity (the series run side by side), logging also
        to a file and to syslog."""
        trail = ["--log-file", str(tmp_path / f"trail{level}.log"), "--syslog"]
        # A first run fills the database (tickets, a failed message) for the commands after it.
        outputs = {f"{level} first fetch": run_cli(writers[level](), env, [level, *trail,
                                                                           "fetch"])}
        for argv in invocations():
            config = writers[level]()  # every command sees the whole file again
            extra = copy_to[level] if argv[:2] == ["db", "copy"] else []
            if extra:  # db copy needs ingest off
                run_cli(config, env, ["ingest", "disable"])
            outputs[" ".join([level, *argv])] = run_cli(
                config, env, [level, *trail, *argv, *extra], input=STDIN.get(argv[0], b""))
            if extra:
                run_cli(config, env, ["ingest", "enable"])
        outputs[f"{level} log file"] = (tmp_path / f"trail{level}.log").read_text()
        return outputs

    try:
        with ThreadPoolExecutor(len(levels)) as pool:
            outputs = {k: v for part in pool.map(series, levels) for k, v in part.items()}
    finally:
        syslog.close()
    outputs["syslog"] = "\n".join(syslog.lines)

    secrets = [PASSWORD, BAD_INLINE, BAD_ENV, CMD_FAIL, SMTP_SECRET, CLIENT_SECRET,
               PG_PASSWORD, *idp.provider.issued]
    tag_secrets = [tag_secret(tmp_path / level.strip("-") / "helpdesk.db") for level in levels]
    for command, output in outputs.items():
        assert "Traceback" not in output, f"`{command}` crashed:\n{output}"
        for secret in secrets:
            for form in forms(secret, list(users.values())):
                assert form not in output, f"`{command}` shows a secret:\n{output}"
        for secret in tag_secrets:  # -vv logs SQL: the first run creates the secret
            assert secret not in output, f"`{command}` shows the tag secret:\n{output}"
    for level in levels:
        database = (tmp_path / level.strip("-") / "helpdesk.db").read_bytes()
        for secret in secrets:
            assert secret.encode() not in database

    # The runs did what they should, so the grep above saw the interesting paths.
    fetch = outputs["-vvv fetch"]
    assert "account 'bad-inline': login as" in fetch and "refused" in fetch
    assert "account 'bad-env': login as" in fetch
    assert "account 'cmd-fail': key 'password_command': the command exited with status 1" \
        in fetch
    assert "account 'oauth-revoked'" in fetch and "invalid_grant" in fetch
    assert "LOGIN **REDACTED**" in fetch  # the imaplib trace is on
    assert "> PASS ***" in fetch and "> AUTH XOAUTH2" in fetch  # and the POP3 trace
    assert "Signed in." in outputs["-v accounts authorize oauth-device"]
    assert "refused" in outputs["-v log file"] and "refused" in outputs["syslog"]
    assert "the message is empty" in outputs["-v errors show 1"]
    assert len(idp.provider.issued) > 10  # refreshed, rotated, device codes: all grepped
    assert "Copied sqlite:///" in outputs["-vv db copy"]
    assert "peewee: INSERT INTO" in outputs["-vv first fetch"]  # the SQL log was on


def tag_secret(database: Path) -> str:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        (secret,) = connection.execute(
            "SELECT value FROM setting WHERE key = 'tag_secret'").fetchone()
    return secret


@pytest.mark.parametrize("mode, who", [
    (0o644, "read by its group and others"), (0o640, "read by its group"),
    (0o604, "read by others"), (0o664, "read and written by its group, and read by others")])
def test_an_accounts_file_with_a_secret_must_be_private(tmp_path, write_config, run, mode, who):
    config = write_config([{"name": "a", "protocol": "imap", "host": "h", "username": "u",
                            "password": "s3cret-pw"}])
    config.chmod(mode)

    result = run("accounts", "list", config=config)

    assert result.exit_code == 2
    assert f"can be {who} (mode {mode:o}); fix: chmod 600 {config}" in result.stderr
    assert "s3cret-pw" not in result.output


@pytest.mark.parametrize("argv", [["accounts", "add", "b", "--protocol", "maildir", "--path", "x"],
                                  ["accounts", "remove", "a"], ["accounts", "disable", "a"]])
def test_commands_that_write_the_file_refuse_one_others_can_read(tmp_path, run, argv):
    config = tmp_path / "accounts.toml"
    config.write_text('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\n'
                      'username = "u"\npassword = "s3cret-pw"\n')
    config.chmod(0o644)
    before = config.read_text()

    result = run(*argv, config=config)

    assert result.exit_code == 2, result.output
    assert f"can be read by its group and others (mode 644); fix: chmod 600 {config}" in \
        result.stderr
    assert config.read_text() == before


def test_an_accounts_file_of_another_user_is_refused(tmp_path, write_config, run,
                                                    owned_by_another_user):
    config = write_config([{"name": "a", "protocol": "imap", "host": "h", "username": "u",
                            "password": "s3cret-pw"}])
    owner, _ = owned_by_another_user(config)

    result = run("fetch", config=config)

    assert result.exit_code == 2
    assert f"belongs to uid {owner}" in result.stderr and f"chown {_me()} {config}" in result.stderr
    name = pwd.getpwuid(owner).pw_name  # the service user, most likely: run as them
    assert (f"belongs to uid {owner} ({name}), not to the user running this (uid 0 (root)); "
            f"run helpdesk-fetch as {name} (who runs it from cron, e.g. `runuser -u {name} -- "
            "helpdesk-fetch ...`), or fix:") in result.stderr


def test_a_password_file_others_can_read_fails_fetch_with_exit_2(dovecot, mail_user, tmp_path,
                                                                 write_config, run):
    (tmp_path / "pw").write_text(PASSWORD)
    (tmp_path / "pw").chmod(0o640)
    dovecot.append(mail_user, [message("Other accounts still run")])
    exposed = dovecot.account("exposed", mail_user, password_file=str(tmp_path / "pw"))
    del exposed["password"]
    config = write_config([exposed, dovecot.account("fine", mail_user)])

    result = run("fetch", config=config)

    assert result.exit_code == 2
    assert (f"account 'exposed': key 'password_file': {tmp_path / 'pw'}: holds a secret but "
            f"can be read by its group (mode 640); fix: chmod 600 {tmp_path / 'pw'}") in \
        result.stderr
    assert len(run.json("tickets", "list", config=config)) == 1  # the other account ran


def test_a_token_file_others_can_read_is_refused(oauth_dovecot, idp, mail_user, write_config,
                                                 run):
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    token_file = config.parent / "oauth2" / "account-o.json"
    token_file.chmod(0o644)

    result = run("fetch", config=config)

    assert result.exit_code == 2 and f"fix: chmod 600 {token_file}" in result.stderr
    assert idp.provider.requests == []  # the exposed refresh token was not used


def test_the_protocol_traces_hide_the_login(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("imap", mail_user),
                           dovecot.account("pop", mail_user, protocol="pop3")])

    result = run("-vvv", "accounts", "test", config=config)

    assert result.exit_code == 0
    assert "LOGIN **REDACTED**" in result.stderr  # imapclient's trace
    assert "> USER " + mail_user in result.stderr and "> PASS ***" in result.stderr
    assert "< +OK" in result.stderr
    assert PASSWORD not in result.output + result.stderr
    quiet = run("-vv", "accounts", "test", config=config)
    assert "> PASS" not in quiet.stderr and "LOGIN" not in quiet.stderr



@pytest.mark.parametrize(("verbosity", "shown"), [(1, False), (2, False), (3, True)])
def test_below_the_protocol_trace_imapclient_says_nothing_of_its_own(verbosity, shown):
    """Its "Connection closed" names no account (a session opened ahead and dropped said it at
    -v, among a run's lines): only -vvv shows what imapclient logs."""
    import logging

    from helpdesk_fetch.cli import setup_logging

    root = logging.getLogger()
    before = root.handlers[:], root.level, logging.getLogger("imapclient").level
    try:
        setup_logging(verbosity)
        assert logging.getLogger("imapclient").isEnabledFor(logging.INFO) is shown
    finally:
        root.handlers[:], root.level = before[0], before[1]
        logging.getLogger("imapclient").setLevel(before[2])
