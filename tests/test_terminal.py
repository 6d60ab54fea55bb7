"""At a terminal (a real pseudo-terminal) the tool is friendly; under cron it is silent."""

from __future__ import annotations

import json
import socket
import sys

import pexpect

from helpdesk_fetch.cli import SYSLOG_ENV
from tests.mails import message, message_id_of
from tests.proc import ROOT, environment, helpdesk_fetch
from tests.servers import PASSWORD
from tests.test_ingest_maildir import make_maildir


def spawn(*args: str, config) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config", str(config),
                                          *args],
                         env=environment(COLUMNS="160"), cwd=str(ROOT), dimensions=(50, 160),
                         timeout=60, encoding="utf-8")


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_fetch_at_a_terminal_shows_progress_and_a_summary(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("One"), b"", message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    child = spawn("fetch", config=config)

    child.expect("3/3 messages")  # the progress display on stderr
    child.expect("fetch")  # the summary table's title
    child.expect(r"local\s*│\s*ok\s*│\s*3\s*│\s*2\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*1")
    assert finish(child) == 0


def test_fetch_under_cron_prints_nothing(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("One"), message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    result = helpdesk_fetch("fetch", config=config)

    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


def test_fetch_under_cron_reports_one_line_per_problem(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("One"), b"", b"\n"])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    result = helpdesk_fetch("fetch", config=config)

    assert result.returncode == 0 and result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("helpdesk-fetch: account local: ")
                                   for line in lines)


def test_verbose_levels(tmp_path, write_config):
    raw = message("One")
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    verbose = helpdesk_fetch("-v", "fetch", config=config)
    (tmp_path / "box" / "new" / "1764399999.M2P1.test").write_bytes(message("Two"))
    debug = helpdesk_fetch("-vv", "fetch", config=config)

    assert f"account local: <{message_id_of(raw)}> -> ticket 1001" in verbose.stderr.decode()
    assert "helpdesk_fetch.ingest.pipeline:" in debug.stderr.decode()  # -vv names the module


def test_log_file_names_account_and_message_id(tmp_path, write_config, run):
    stored, broken = message("Stored"), message("Too big", body="x" * 3000)
    make_maildir(tmp_path / "box", [stored])
    (tmp_path / "box" / "new" / "1764399999.M9P1.test").write_bytes(broken)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"max_message_bytes": 2000})
    log = tmp_path / "helpdesk-fetch.log"

    result = run("--log-file", str(log), "fetch", config=config)
    run("--log-file", str(log), "deliver", "--resource", "it-support", config=config,
        input=broken)

    assert result.exit_code == 0
    lines = log.read_text().splitlines()
    assert any(f"INFO account local: <{message_id_of(stored)}> -> ticket" in line
               for line in lines)
    assert any("WARNING account local: maildir:1764399999.M9P1.test: 3" in line
               for line in lines)  # not downloaded: its file name is all there is
    quarantine = [line for line in lines if "quarantine" in line]
    assert quarantine and f"<{message_id_of(broken)}>" in quarantine[0]
    assert PASSWORD not in log.read_text()


def test_syslog(tmp_path, write_config, run, monkeypatch):
    path = tmp_path / "log.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(10)
    monkeypatch.setenv(SYSLOG_ENV, str(path))
    raw = message("To syslog")
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    assert run("--syslog", "fetch", config=config).exit_code == 0

    wanted = f"account local: <{message_id_of(raw)}> -> ticket"
    datagram = ""
    while wanted not in datagram:
        datagram = listener.recv(4096).decode()
    listener.close()
    assert datagram.startswith("<22>helpdesk-fetch[")  # facility mail (2), severity info (6)


def test_syslog_missing_is_a_warning_not_a_failure(tmp_path, write_config, run, monkeypatch):
    monkeypatch.setenv(SYSLOG_ENV, str(tmp_path / "nobody-listens"))
    config = write_config([{"name": "off", "protocol": "maildir", "path": "box",
                            "enabled": False}])  # no account at all would be an error (§2)

    result = run("--syslog", "fetch", config=config)

    assert result.exit_code == 0 and "--syslog: cannot reach" in result.stderr


def test_accounts_add_dialog_at_a_terminal(dovecot, mail_user, write_config, run):
    config = write_config([])
    port = dovecot.ports["imaps"]

    child = spawn("accounts", "add", "desk", "--port", str(port), "--ca-file",
                  str(dovecot.cert), config=config)
    for prompt, answer in (("Protocol", "imap"), ("Server", "127.0.0.1"),
                           ("User name", mail_user), ("Security", "ssl"),
                           ("Password", PASSWORD)):
        child.expect(prompt)
        child.sendline(answer)
    child.expect("Resource")
    assert PASSWORD not in child.before  # typed, never echoed
    child.sendline("it-support")
    child.expect("Test it now?")
    child.sendline("y")
    child.expect("desk: ok, 0 messages waiting")

    assert finish(child) == 0
    [account] = run.json("accounts", "list", config=config)
    assert (account["host"], account["port"], account["username"], account["resource"]) == (
        "127.0.0.1", port, mail_user, "it-support")
    assert account["password"] == "(set)"
    assert PASSWORD not in json.dumps(account)
    assert oct(config.stat().st_mode & 0o777) == "0o600"
