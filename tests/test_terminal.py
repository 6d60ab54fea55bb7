"""At a terminal (a real pseudo-terminal) the tool is friendly; under cron it is silent."""

from __future__ import annotations

import json
import re
import socket
import sys

import pexpect

from helpdesk_fetch.cli import SYSLOG_ENV
from tests import kinds_samples as samples
from tests.mails import message, message_id_of
from tests.proc import ROOT, environment, helpdesk_fetch
from tests.servers import PASSWORD
from tests.test_cli import held
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


def at_80_columns(*args: str, config) -> list[str]:
    """What a command shows in an 80-column terminal, as lines without colours."""
    child = pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config", str(config),
                                          *args],
                          env=environment(COLUMNS="80"), cwd=str(ROOT), dimensions=(50, 80),
                          timeout=60, encoding="utf-8")
    child.expect(pexpect.EOF)
    child.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before).replace("\r", "")
    return text.splitlines()


def test_fetch_at_a_terminal_shows_progress_and_a_summary(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("One"), b"", message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    child = spawn("fetch", config=config)

    child.expect("3/3 messages")  # the progress display on stderr
    child.expect("fetch")  # the summary table's title
    child.expect(r"local\s+ok\s+3\s+2\s+0\s+0\s+0\s+1")
    assert finish(child) == 0


def test_fetch_of_an_empty_mailbox_at_a_terminal_says_so(tmp_path, write_config):
    """No progress bar of nothing ("0/0 messages 1/1 bytes"): one line, then the summary."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    lines = at_80_columns("fetch", config=config)

    assert lines[0] == "local: no new mail", lines
    assert not any("messages" in line or "bytes" in line for line in lines), lines
    assert re.match(r"local\s+ok\s+0\s+0\s+0\s+0\s+0\s+0\s+\d", lines[-1]), lines


def screen_of(*args: str, config, columns: int = 80) -> list[str]:
    """What stays on an 80-column terminal's screen after the command: its output played
    through a terminal emulator (a progress display redraws itself in place)."""
    import pyte

    child = pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config", str(config),
                                          *args],
                          env=environment(COLUMNS=str(columns)), cwd=str(ROOT),
                          dimensions=(50, columns), timeout=60, encoding="utf-8")
    child.expect(pexpect.EOF)
    child.close()
    screen = pyte.Screen(columns, 50)
    pyte.Stream(screen).feed(child.before.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def test_a_problem_said_during_fetch_leaves_no_stale_progress_bar(tmp_path, write_config):
    """A message set aside mid-run: its line is printed above the progress display, which
    goes on below it; no bar of an earlier moment ("0/3 messages") stays on the screen."""
    make_maildir(tmp_path / "box", [message("One"), b"", message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    lines = screen_of("fetch", config=config)

    assert "cannot be parsed: the message is empty" in " ".join(lines), lines
    bars = [line for line in lines if "messages" in line and "━" in line]
    assert len(bars) == 1 and "3/3 messages" in bars[0], lines


def test_a_dry_run_at_a_terminal_says_an_account_error_once(tmp_path, write_config):
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "gone", "protocol": "maildir", "path": "nowhere"},
                           {"name": "local", "protocol": "maildir", "path": "box"}])

    text = " ".join(at_80_columns("fetch", "--dry-run", config=config))

    assert text.count("does not exist") == 1, text  # on stderr, in full
    assert "gone: failed: (said above)" in text


def test_deliver_at_a_terminal_says_what_it_reads_instead_of_waiting(tmp_path, write_config):
    config = write_config([])
    child = spawn("deliver", "--resource", "it-support", config=config)
    child.expect("deliver reads one message on standard input")
    assert finish(child) == 75


def test_fetch_q_at_a_terminal_shows_only_errors(tmp_path, write_config):
    """-q is "only errors" at a terminal too: no progress, no summary, no "no new mail"."""
    make_maildir(tmp_path / "box", [message("One"), b""])
    make_maildir(tmp_path / "empty", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"},
                           {"name": "other", "protocol": "maildir", "path": "empty"}])

    lines = at_80_columns("-q", "fetch", config=config)

    assert [line for line in lines if line.strip()] == [], lines  # set aside: a warning
    assert at_80_columns("-q", "fetch", config=config) == []


def test_a_styled_line_at_80_columns_keeps_its_commands_whole(tmp_path, write_config):
    """What the administrator copies from the screen is a command that works: status's advice
    (in colour, through rich) is folded between the commands, not inside one."""
    make_maildir(tmp_path / "box", [b""])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    at_80_columns("fetch", config=config)

    lines = at_80_columns("status", config=config)

    advice = " ".join(line.strip() for line in lines[next(i for i, line in enumerate(lines)
                                                          if "Failed messages" in line):])
    for command in ("`helpdesk-fetch errors list`", "`helpdesk-fetch errors retry --all`"):
        assert command in advice, lines  # found whole once the lines are joined...
        assert any(command in line for line in lines), lines  # ...and on one line
    assert [line for line in lines if len(line) > 80 and " " in line.strip()  # a long path:
            or line != line.rstrip()] == [], lines  # alone on its line, as wide as it is


def test_a_mailbox_of_mail_too_large_alone_is_not_said_to_have_none(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("Huge", body="x" * 8000)])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"max_message_bytes": 5000})

    lines = at_80_columns("fetch", config=config)

    assert not any("no new mail" in line for line in lines), lines
    assert "over max_message_bytes" in " ".join(lines), lines  # folded at 80 columns


def test_an_account_another_run_holds_is_explained_below_its_row(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("One")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"},
                           {"name": "held", "protocol": "maildir", "path": "box"}])

    with held("held", config):
        text = " ".join(at_80_columns("fetch", config=config))

    assert "held busy" in " ".join(text.split()), text
    assert "skipped: another run is processing this account" in " ".join(text.split()), text


def test_a_run_the_database_stopped_at_once_shows_its_error_and_no_empty_table(tmp_path,
                                                                                write_config):
    make_maildir(tmp_path / "box", [message("One")])
    (tmp_path / "a-file").write_text("not a directory")
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                          settings={"database": f"sqlite:///{tmp_path}/a-file/helpdesk.db"})

    lines = [line for line in at_80_columns("fetch", config=config) if line.strip()]

    assert "the run stopped" in " ".join(lines), lines
    assert not any(line.split()[:2] == ["account", "outcome"] for line in lines), lines


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
    assert len(lines) == 2 and all(line.startswith("helpdesk-fetch: account 'local': ")
                                   for line in lines)


def test_verbose_levels(tmp_path, write_config):
    raw = message("One")
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])

    verbose = helpdesk_fetch("-v", "fetch", config=config)
    (tmp_path / "box" / "new" / "1764399999.M2P1.test").write_bytes(message("Two"))
    debug = helpdesk_fetch("-vv", "fetch", config=config)

    assert f"account 'local': <{message_id_of(raw)}> -> ticket 1001" in verbose.stderr.decode()
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
    assert any(f"INFO account 'local': <{message_id_of(stored)}> -> ticket" in line
               for line in lines)
    assert any(f"WARNING account 'local': <{message_id_of(broken)}>: 3" in line
               for line in lines)  # not downloaded, but named by its header
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

    wanted = f"account 'local': <{message_id_of(raw)}> -> ticket"
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

    child = spawn("accounts", "add", "desk", config=config)
    for prompt, answer in (("Protocol", "imap"), ("Server", "127.0.0.1"),
                           ("User name", mail_user), ("Security", "ssl"),
                           (re.escape("Port [993]"), str(port)),  # the default shown
                           (re.escape("Private CA (PEM file; empty: the system's CAs)"),
                            "mail-ca.pem"),  # no such file: said, and asked again
                           ("no file .*mail-ca.pem", str(dovecot.cert)),
                           ("Password", PASSWORD)):
        child.expect(prompt)
        child.sendline(answer)
    child.expect("Resource")
    assert PASSWORD not in child.before  # typed, never echoed
    child.sendline("it-suport")  # a typo: said, and asked again (not the whole dialog lost)
    child.expect(re.escape("no resource 'it-suport'; did you mean 'it-support'? (resources: "
                           "it-support)"))
    child.expect("Resource")
    child.sendline("it-support")
    child.expect("Test it now?")
    child.sendline("y")
    child.expect("desk: ok, 0 messages waiting")
    child.expect("Added account 'desk'")

    assert finish(child) == 0
    [account] = run.json("accounts", "list", config=config)
    assert (account["host"], account["port"], account["username"], account["resource"],
            account["ca_file"]) == ("127.0.0.1", port, mail_user, "it-support",
                                    str(dovecot.cert))
    assert account["password"] == "(set)"
    assert PASSWORD not in json.dumps(account)
    assert oct(config.stat().st_mode & 0o777) == "0o600"


def test_accounts_add_dialog_of_a_maildir_asks_for_its_resource(tmp_path, write_config, run):
    """A Maildir account is asked what an IMAP one is after its server: its resource."""
    config = write_config([])
    make_maildir(tmp_path / "box", [])

    child = spawn("accounts", "add", "local", config=config)
    for prompt, answer in (("Protocol", "maildir"), ("Maildir path", str(tmp_path / "box")),
                           ("Resource", "it-support"), ("Test it now?", "y")):
        child.expect(prompt)
        child.sendline(answer)
    child.expect("local: ok, 0 messages waiting")

    assert finish(child) == 0
    [account] = run.json("accounts", "list", config=config)
    assert (account["protocol"], account["resource"]) == ("maildir", "it-support")


def test_accounts_add_offers_not_to_keep_an_account_whose_test_failed(dovecot, mail_user,
                                                                      write_config, run):
    config = write_config([])
    before = config.read_bytes()

    def add(keep: str) -> pexpect.spawn:
        child = spawn("accounts", "add", "desk", "--protocol", "imap", "--host", "127.0.0.1",
                      "--port", str(dovecot.ports["imaps"]), "--ca-file", str(dovecot.cert),
                      "--security", "ssl", "--username", mail_user, "--resource", "it-support",
                      config=config)
        child.expect("Password")  # asked for, hidden: never on the command line
        child.sendline("wrong")
        child.expect("Test it now?")
        child.sendline("")  # yes, the default
        child.expect("desk: FAILED: login as")
        child.expect(re.escape("The test failed. Save the account 'desk' anyway? [y/N]"))
        child.sendline(keep)
        return child

    child = add("")  # no, the default
    child.expect("Account 'desk' was not added")
    assert finish(child) == 1
    assert config.read_bytes() == before  # nothing written

    child = add("y")
    child.expect("Added account 'desk'")
    assert finish(child) == 0
    assert [a["name"] for a in run.json("accounts", "list", config=config)] == ["desk"]


def test_a_disabled_account_is_said_in_its_last_run_not_in_its_name(tmp_path, write_config):
    """The name column stays as narrow as the names: the server and user keep their width."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"},
                           {"name": "old", "protocol": "maildir", "path": "box",
                            "enabled": False}])

    shown = at_80_columns("accounts", "list", config=config)
    lines = shown[next(i for i, line in enumerate(shown) if line.startswith("name ")):]

    assert lines[1].split()[0] == "local" and lines[2].split()[0] == "old"
    assert lines[2].endswith("disabled; never") and "(disabled)" not in " ".join(lines)


def test_tables_read_well_at_80_columns(dovecot, tmp_path, mail_user, write_config):
    """fetch's summary with a failing account (and ignored mail), status, tickets list,
    accounts list, errors list and ignored list: each row one line of at most 80 columns, names
    whole, headers on one line, a long problem on lines of its own below its row."""
    long_sender = "Someone With A Long Name <someone.with.a.long.address@customer.example.org>"
    make_maildir(tmp_path / "box", [
        message("The printer on the third floor prints everything twice and then jams",
                sender=long_sender), b"", samples.gmail_vacation()])
    wrong_port = dovecot.account("helpdesk-mailbox", mail_user, resource="it-support",
                                 port=dovecot.ports["pop3s"])  # an IMAP account, POP3S port
    config = write_config([wrong_port, {"name": "local-maildir", "protocol": "maildir",
                                        "path": "box", "resource": "it-support"}])
    problem = "  connecting to 127.0.0.1:"

    fetched = at_80_columns("fetch", config=config)
    summary = fetched[fetched.index("fetch"):]  # after the log lines and the progress
    assert summary[1].split() == ["account", "outcome", "read", "new", "replies",
                                  "rejected", "dupes", "ignored", "errors", "time"]
    assert summary[2].split()[:2] == ["helpdesk-mailbox", "failed"]
    assert summary[3].startswith(problem)
    assert [line for line in summary if line.startswith("local-maildir")][0].split()[:9] == [
        "local-maildir", "ok", "3", "1", "0", "0", "0", "1", "1"]

    status = at_80_columns("status", config=config)
    row = next(i for i, line in enumerate(status) if line.startswith("helpdesk-mailbox "))
    assert status[row - 1].split()[:3] == ["account", "last", "run"]
    assert status[row + 1].startswith(problem)

    tickets = at_80_columns("tickets", "list", config=config)
    assert tickets[0].split() == ["number", "status", "resource", "updated", "msgs",
                                  "requester", "subject"]
    assert tickets[1].split()[:3] == ["1001", "new", "it-support"]
    assert "someone.w…" in tickets[1] and "The printer on the third" in tickets[1]
    assert tickets[1].endswith("…")  # the subject shortened, not wrapped

    accounts = at_80_columns("accounts", "list", config=config)
    assert accounts[0].split() == ["name", "protocol", "server", "user", "resource", "last",
                                   "run"]
    assert accounts[1].split()[:2] == ["helpdesk-mailbox", "imap"]
    assert accounts[2].startswith(problem)

    errors = at_80_columns("errors", "list", config=config)
    assert errors[0].split() == ["id", "account", "failed", "waits", "in", "from", "subject"]
    assert errors[1].split()[:2] == ["1", "local-maildir"]
    assert errors[2] == "  cannot be parsed: the message is empty"

    ignored = at_80_columns("ignored", "list", config=config)
    assert ignored[0].split() == ["id", "account", "received", "from", "subject", "reason"]
    assert ignored[1].split()[:2] == ["1", "local-maildir"] and ignored[1].endswith(
        " auto_reply")

    status = [line for line in status if not line.startswith("sqlite:")]  # a long path, whole
    for lines in (summary, status, tickets, accounts, errors, ignored):
        assert all(len(line) <= 80 for line in lines), "\n".join(lines)
        assert not any(line.rstrip().endswith(("helpdesk-", "local-")) for line in lines)


def test_at_80_columns_long_errors_and_news_break_between_words(tmp_path, write_config):
    """A terminal breaks a long line anywhere ("key 'ru|les.accounts'"); the tool breaks it
    between words there, and keeps it one line elsewhere (cron's mail: one line a problem)."""
    box = make_maildir(tmp_path / "box", [])
    account = {"name": "local", "protocol": "maildir", "path": str(box)}
    config = write_config([account])
    (tmp_path / "wrong").mkdir()
    wrong = write_config([account], settings={"reactivation_dayz": 3},
                         path=tmp_path / "wrong" / "accounts.toml")
    empty = iter(range(10))

    def an_empty_message() -> None:  # set aside by fetch, with a warning on stderr
        (box / "new" / f"1764300000.M{next(empty)}P1.test").write_bytes(b"")

    for args, cfg, prepare in ((["status"], wrong, lambda: None),
                               (["fetch"], config, an_empty_message)):
        prepare()
        whole = helpdesk_fetch(*args, config=cfg).stderr.decode().splitlines()
        prepare()
        shown = [line.rpartition("0:00:00")[2] for line in at_80_columns(*args, config=cfg)
                 if line.strip() and not line.endswith("0:00:00")]  # the progress bar aside
        whole, shown = ([re.sub(r"\.M\dP1\.", ".M0P1.", line) for line in lines]  # one name
                        for lines in (whole, shown))
        long = [line for line in whole if len(line) > 80]
        assert long, whole
        # at most 80 columns, but for a word longer than that (a path), which stays whole
        assert all(len(line) <= 80 or " " not in line.strip() for line in shown), shown
        for line in long:  # the same words, broken only where there was a space
            start = next(i for i, s in enumerate(shown) if line.startswith(s))
            folded = " ".join(shown[start:start + len(line) // 40 + 2])
            assert folded.startswith(line), (line, shown)


def test_a_long_value_of_errors_show_continues_under_its_value(tmp_path, write_config):
    box = make_maildir(tmp_path / "a-maildir-whose-path-is-long-enough-to-fold", [b""])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])
    helpdesk_fetch("fetch", config=config)

    lines = at_80_columns("errors", "show", "1", config=config)

    start = lines.index("  waits in:    moved to the Maildir folder")
    assert lines[start + 1:start + 3] == [f"{' ' * 15}{box}/.HD", f"{' ' * 15}Error Messages"]


def test_check_is_one_line_even_at_a_narrow_terminal(tmp_path, write_config):
    """Spec §11.1: the monitoring line is one line, perfdata after its "|", wherever it runs
    (an operator trying the plugin at a terminal sees what the monitoring system reads)."""
    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "a-mailbox-with-a-rather-long-name", "protocol": "maildir",
                            "path": "box"}])

    [line] = [line for line in at_80_columns("check", config=config) if line.strip()]

    assert line.startswith("HELPDESK-FETCH CRITICAL - ") and len(line) > 80
    assert " | age_a-mailbox-with-a-rather-long-name=" in line


def test_a_folded_line_keeps_its_indent_and_a_command_whole():
    """tickets show indents a message's lines: one long word (a URL) keeps that indent; a
    command in backticks is never broken in two (`helpdesk-fetch ` / `errors list`)."""
    from helpdesk_fetch.cli.render import _folded

    url = "   https://example.org/" + "x" * 80
    assert _folded(url, 80) == url
    said = "Failed messages waiting: 3; see `helpdesk-fetch errors list` for their reasons"
    assert _folded(said, 50).splitlines() == [
        "Failed messages waiting: 3; see",
        "`helpdesk-fetch errors list` for their reasons"]
    own = "a subject with \ue000 in it, " * 4  # a character of the text's own stays
    assert "\ue000" in _folded(own, 40)
