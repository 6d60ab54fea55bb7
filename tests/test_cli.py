"""The command line (spec §3): every command, its JSON and its exit codes."""

from __future__ import annotations

import base64
import contextlib
import json

import click
import pytest

from helpdesk_fetch import __version__
from helpdesk_fetch.cli import cli, subcommands
from tests.mails import message
from tests.servers import PASSWORD, free_port
from tests.test_ingest_maildir import make_maildir

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


@pytest.fixture
def maildir_config(tmp_path, write_config):
    make_maildir(tmp_path / "box", [message("First"), message("Second")])
    return write_config([{"name": "local", "protocol": "maildir", "path": "box",
                          "resource": "it-support"}])


def test_version_and_help(run):
    assert run("--version").output.strip() == f"helpdesk-fetch, version {__version__}"
    assert "fetch" in run("--help").output
    alone = run()  # a new administrator's first try: the help, not "Missing command"
    assert "Commands:" in alone.output and "Missing command" not in alone.output
    words = " ".join(run("--help").output.split())  # -vvv is what shows the protocol
    assert "-vv debugging (with the SQL), -vvv also the IMAP and POP3 protocol" in words


def test_accounts_list_never_shows_a_secret(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("helpdesk", mail_user)])
    text = run("accounts", "list", config=config)
    data = run.json("accounts", "list", config=config)
    assert PASSWORD not in text.output + json.dumps(data)
    assert data[0]["name"] == "helpdesk" and data[0]["password"] == "(set)"
    assert data[0]["last_run"] is None
    run("fetch", config=config)
    run_info = run.json("accounts", "list", config=config)[0]["last_run"]
    assert run_info["outcome"] == "ok" and run_info["fetched"] == 0


def test_a_missing_accounts_file_says_how_to_make_one_and_accounts_add_does(tmp_path, run):
    path = tmp_path / "accounts.toml"
    missing = run("fetch", config=path)
    assert missing.exit_code == 2
    assert f"{path}: accounts file not found; `helpdesk-fetch accounts add NAME` creates it" \
        in missing.stderr
    (tmp_path / "box").mkdir()
    assert run("accounts", "add", "local", "--protocol", "maildir", "--path",
               str(tmp_path / "box"), config=path).exit_code == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [a["name"] for a in run.json("accounts", "list", config=path)] == ["local"]


def test_accounts_add_remove_enable_disable(tmp_path, write_config, run):
    config = write_config([])
    added = run("accounts", "add", "pop", "--protocol", "pop3", "--host", "pop.example.com",
                "--username", "u", "--password-env", "POP_PW", "--security", "starttls",
                "--resource", "it-support", "--no-automail", config=config)
    assert added.exit_code == 0, added.output
    account = run.json("accounts", "list", config=config)[0]
    assert (account["port"], account["automail"], account["security"]) == (110, False,
                                                                           "starttls")
    assert run("accounts", "disable", "pop", config=config).output == \
        "Account 'pop' disabled.\n"
    assert run.json("accounts", "list", config=config)[0]["enabled"] is False
    before = config.read_bytes()
    assert run("accounts", "disable", "pop", config=config).output == \
        "Account 'pop' was already disabled.\n"
    assert config.read_bytes() == before
    assert run("accounts", "enable", "pop", config=config).exit_code == 0
    assert run.json("accounts", "list", config=config)[0]["enabled"] is True
    assert run("accounts", "remove", "pop", config=config).exit_code == 0
    assert run.json("accounts", "list", config=config) == []


@pytest.mark.parametrize(("options", "missing"), [
    ([], "missing --protocol, and with it --host, --username and one of --password-env, "
         "--password-file or --password-command (imap, pop3) or --path (maildir); there is no "
         "terminal to ask for them"),
    (["--protocol", "imap"], "missing --host, --username and one of --password-env, "
                             "--password-file or --password-command; there is no terminal"),
    (["--protocol", "pop3", "--host", "h", "--password-env", "PW"], "missing --username; "),
    (["--protocol", "maildir"], "missing --path; there is no terminal to ask for them"),
])
def test_accounts_add_without_a_terminal_names_every_missing_option(write_config, run,
                                                                    options, missing):
    config = write_config([])
    before = config.read_text()

    result = run("accounts", "add", "new", *options, config=config)  # stdin is no terminal

    assert result.exit_code == 2
    assert missing in result.stderr
    assert config.read_text() == before


def test_accounts_add_refuses_a_name_that_exists(tmp_path, write_config, run):
    (tmp_path / "box").mkdir()
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    before = config.read_text()

    result = run("accounts", "add", "local", config=config)  # before asking anything

    assert result.exit_code == 2
    assert (f"an account named 'local' already exists in {config}; choose another name, or "
            "`helpdesk-fetch accounts remove local` first") in result.stderr
    assert config.read_text() == before


def test_accounts_add_makes_the_account_a_rule_waits_for(tmp_path, write_config, run,
                                                        monkeypatch):
    """The sample file's `nagios` rule names an account `monitoring`: the file is refused until
    it exists, and `accounts add monitoring` is how it comes to exist. Another missing account
    still refuses the edit, and nothing is written."""
    monkeypatch.chdir(tmp_path)  # where --path alerts is
    for box in ("box", "alerts"):
        make_maildir(tmp_path / box, [])
    config = write_config([])  # then tables, as the sample file has them
    config.write_text(config.read_text() + '\n[[accounts]]\nname = "local"\nprotocol = '
                      '"maildir"\npath = "box"\n\n[[rules]]\nname = "nagios"\naccounts = '
                      '["monitoring"]\nsubject = "PROBLEM"\n')
    assert "no account 'monitoring'" in run("fetch", config=config).stderr

    other = run("accounts", "add", "other", "--protocol", "maildir", "--path", "alerts",
                config=config)
    assert other.exit_code == 2 and "no account 'monitoring'" in other.stderr
    added = run("accounts", "add", "monitoring", "--protocol", "maildir", "--path", "alerts",
                config=config)

    assert added.exit_code == 0, added.output
    assert [a["name"] for a in run.json("accounts", "list", config=config)] == ["local",
                                                                                "monitoring"]
    assert run("fetch", config=config).exit_code == 0


def test_accounts_add_warns_of_a_password_file_fetch_would_refuse(tmp_path, write_config, run,
                                                                  monkeypatch):
    config = write_config([])
    monkeypatch.chdir(tmp_path)  # the files are named relative to the shell's directory
    server = ["--protocol", "imap", "--host", "mail.example.com", "--username", "u"]
    (tmp_path / "open-pw").write_text("s3cret\n")
    (tmp_path / "open-pw").chmod(0o644)
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o600)

    shown = run("accounts", "add", "shown", *server, "--password-file", "open-pw", config=config)
    missing = run("accounts", "add", "missing", *server, "--password-file", "nowhere",
                  config=config)
    fine = run("accounts", "add", "fine", *server, "--password-file", "pw", config=config)
    no_ca = run("accounts", "add", "no-ca", *server, "--password-file", "pw", "--ca-file",
                "mail-ca.pem", config=config)

    assert (shown.exit_code, missing.exit_code, fine.exit_code, no_ca.exit_code) == (0,) * 4
    assert (f"shown: warning: {tmp_path / 'open-pw'}: holds a secret but can be read by its "
            "group and others (mode 644); fix: chmod 600") in shown.stderr
    assert f"the password file {tmp_path / 'nowhere'} does not exist (yet)" in missing.stderr
    assert "warning" not in fine.stderr
    assert f"no-ca: warning: the CA file {tmp_path / 'mail-ca.pem'} does not exist" in \
        no_ca.stderr
    assert "(not tested: `helpdesk-fetch accounts test fine` connects and logs in)" in \
        fine.output  # no terminal: nobody to offer the test to
    assert [a["name"] for a in run.json("accounts", "list", config=config)] == [
        "shown", "missing", "fine", "no-ca"]


def test_accounts_add_warns_of_a_maildir_that_does_not_exist_and_adds_it(tmp_path,
                                                                        write_config, run,
                                                                        monkeypatch):
    """A relative path is the shell's: it is written absolute (in the file it would mean the
    accounts file's directory)."""
    config = write_config([])
    (tmp_path / "shell").mkdir()
    monkeypatch.chdir(tmp_path / "shell")

    result = run("accounts", "add", "local", "--protocol", "maildir", "--path", "Maildir",
                 config=config)

    assert result.exit_code == 0
    maildir = tmp_path / "shell" / "Maildir"
    assert f'path = "{maildir}"' in config.read_text()
    assert (f"local: warning: the Maildir {maildir} does not exist (yet); fetch fails for this "
            f"account until it does: mkdir -p {maildir}/cur {maildir}/new {maildir}/tmp"
            ) in result.stderr
    assert [a["name"] for a in run.json("accounts", "list", config=config)] == ["local"]
    assert not maildir.exists()
    made = run("accounts", "add", "made", "--protocol", "maildir", "--path", str(tmp_path),
               config=config)
    assert made.exit_code == 0 and "warning" not in made.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about the SQLite file
@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["tickets", "list"],
                                     ["tickets", "list", "--json"], ["tickets", "show", "1"],
                                     ["errors", "list"], ["ignored", "list"],
                                     ["accounts", "list"]])
def test_a_read_only_command_says_the_database_does_not_exist_yet(tmp_path, write_config, run,
                                                                  command):
    from tests.test_ingest_maildir import make_maildir

    make_maildir(tmp_path / "box", [])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    database = tmp_path / "helpdesk.db"

    result = run(*command, config=config)

    assert result.exit_code == (2 if "show" in command else 0)  # show: no ticket 1
    assert (f"helpdesk-fetch: note: the database {database} does not exist yet: nothing has "
            "been fetched into it (the first `helpdesk-fetch fetch` creates it)"
            ) in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.toml", "box"]  # nothing made
    assert run("fetch", config=config).exit_code == 0
    assert "does not exist" not in run(*command, config=config).stderr


def test_accounts_add_has_an_option_for_every_key_but_the_password_itself(run):
    from helpdesk_fetch.config import Account

    help_text = run("accounts", "add", "--help").output
    for field in Account.__dataclass_fields__:
        if field not in ("name", "password"):
            assert "--" + field.replace("_", "-") in help_text, field
    assert "--password " not in help_text and "--password TEXT" not in help_text


@pytest.mark.parametrize("old", [["--password", "s3cret-on-the-line"],
                                 ["--password=s3cret-on-the-line"], ["--password"]])
def test_a_password_on_the_command_line_is_refused(write_config, run, old):
    """It would be seen by every user (ps) and kept in the shell's history (issue 20.5)."""
    config = write_config([])
    before = config.read_text()

    result = run("accounts", "add", "pop", "--protocol", "pop3", "--host", "pop.example.com",
                 "--username", "u", *old, config=config)

    assert result.exit_code == 2
    assert "--password is gone" in result.stderr and "--password-env VAR" in result.stderr
    assert "s3cret-on-the-line" not in result.output
    assert config.read_text() == before


@pytest.mark.parametrize(("args", "fixed"), [
    (["fetch", "-q"], "-q fetch"),
    (["fetch", "--dry-run", "-vv"], "-vv fetch --dry-run"),  # the rest of the line kept
    (["accounts", "list", "--verbose"], "--verbose accounts list"),
    (["status", "--config", "x.toml", "--json"], "--config x.toml status --json"),
    (["tickets", "list", "--log-file=/tmp/l"], "--log-file=/tmp/l tickets list"),
    # given before the command too: the one after it counts, once
    (["--config", "x.toml", "fetch", "--config", "x.toml"], "--config x.toml fetch"),
    (["--config=a.toml", "-q", "fetch", "--config", "b.toml"], "-q --config b.toml fetch"),
    (["-v", "fetch", "-v"], "-v -v fetch"),
])
def test_an_option_of_the_tool_after_the_command_gets_the_line_that_works(run, args, fixed):
    """As cron lines are often written: `helpdesk-fetch fetch -q`."""
    result = run(*args)
    assert result.exit_code == 2
    program = result.stderr.split()[1]  # "Usage: helpdesk-fetch ..." ("cli" here)
    assert f"goes before the command:\n  {program} {fixed}\n" in result.stderr
    other = run("fetch", "--bogus")  # any other unknown option: click's own words
    assert other.exit_code == 2 and "No such option '--bogus'" in other.stderr


@pytest.mark.parametrize(("args", "said"), [
    (["ticket", "list"], "No such command 'ticket'. Did you mean 'tickets'?"),
    (["zzz"], "No such command 'zzz'.\n"),
])
def test_a_mistyped_command_is_named_with_the_one_it_is_close_to(run, args, said):
    result = run(*args)
    assert result.exit_code == 2 and said in result.stderr


def test_unknown_account_is_a_usage_error(maildir_config, run):
    result = run("accounts", "disable", "nope", config=maildir_config)
    assert result.exit_code == 2 and "no such account (known: local)" in result.stderr
    typo = run("fetch", "--account", "locl", config=maildir_config)
    assert typo.exit_code == 2
    assert "account 'locl': no such account; did you mean 'local'? (known: local)" in typo.stderr


def test_accounts_test(dovecot, mail_user, write_config, run):
    dovecot.append(mail_user, [message("Waiting")])
    config = write_config([dovecot.account("good", mail_user),
                           dovecot.account("bad", mail_user, password="nope"),
                           dovecot.account("pop", mail_user, protocol="pop3")])
    result = run("accounts", "test", config=config)
    assert result.exit_code == 1
    assert "good: ok, 1 message waiting" in result.output
    assert "pop: ok, 1 message waiting" in result.output
    assert "bad: FAILED" in result.output and "refused" in result.output
    tested = run("accounts", "test", "--json", config=config)
    assert tested.exit_code == 1
    data = json.loads(tested.stdout)
    assert [(p["account"], p["ok"], p["count"]) for p in data] == [
        ("good", True, 1), ("bad", False, None), ("pop", True, 1)]  # a failure counted nothing
    assert run("accounts", "test", "good", config=config).exit_code == 0
    assert dovecot.messages(mail_user) != []  # nothing changed


def test_accounts_test_leaves_a_disabled_account_alone_unless_named(dovecot, mail_user,
                                                                   write_config, run):
    from tests.proxy import FaultProxy

    dovecot.append(mail_user, [message("Waiting")])
    with FaultProxy(dovecot.ports["imap"]) as proxy:  # counts the connections made to it
        config = write_config([dovecot.account("good", mail_user),
                               dovecot.account("off", mail_user, security="none",
                                               port=proxy.port, enabled=False)])

        result = run("accounts", "test", config=config)
        data = run.json("accounts", "test", config=config)

        assert result.exit_code == 0
        assert "off: (disabled, not tested)" in result.output
        assert [(p["account"], p["ok"], p["tested"], p["count"]) for p in data] == [
            ("good", True, True, 1), ("off", None, False, None)]
        assert proxy.connections == 0  # never connected to
        named = run("accounts", "test", "off", config=config)  # before enabling it again
        assert named.exit_code == 0 and "off: ok, 1 message waiting" in named.output
        assert proxy.connections == 1


def test_fetch_account_runs_the_named_account_even_when_disabled(dovecot, mail_user,
                                                                write_config, run):
    """A run reads the enabled accounts (spec §3); naming one with --account is asking for it,
    disabled or not, and only for it (README: "named accounts run even when disabled")."""
    paused, waiting = message("For the paused mailbox"), message("For the other mailbox")
    dovecot.append(mail_user, [paused])
    config = write_config([dovecot.account("paused", mail_user, enabled=False),
                           dovecot.account("other", mail_user + "-other")])
    assert run("fetch", config=config).exit_code == 0
    assert dovecot.messages(mail_user) == [paused]  # a plain run passes it by
    dovecot.append(mail_user + "-other", [waiting])

    result = run("fetch", "--account", "paused", config=config)

    assert result.exit_code == 0 and result.output == ""
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "For the paused mailbox"]
    assert dovecot.messages(mail_user) == []
    assert dovecot.messages(mail_user + "-other") == [waiting]  # not named: not read
    accounts = {a["name"]: a for a in run.json("accounts", "list", config=config)}
    assert accounts["paused"]["enabled"] is False
    assert accounts["paused"]["last_run"]["outcome"] == "ok"


def test_tickets_commands(maildir_config, run):
    assert run("fetch", config=maildir_config).exit_code == 0
    tickets = run.json("tickets", "list", config=maildir_config)
    assert set(tickets[0]) >= {"id", "number", "subject", "status", "resource", "requester",
                               "created_at", "updated_at", "closed_at", "escalation_due_at",
                               "message_count", "tag"}
    first = tickets[0]
    assert first["status"] == "new" and first["resource"] == "it-support"
    assert first["created_at"].endswith("+00:00") and first["closed_at"] is None
    assert first["tag"] == f"[TicketID {first['number']}{first['tag'][-5:-1]}]"
    by_number = run.json("tickets", "show", first["number"], config=maildir_config)
    assert by_number["id"] == first["id"] and len(by_number["messages"]) == 1
    message_keys = set(by_number["messages"][0])
    assert message_keys >= {"id", "direction", "state", "account", "message_id", "from", "to",
                            "cc", "date", "subject", "text", "html", "attachments"}
    assert run("tickets", "close", first["number"], config=maildir_config).exit_code == 0
    closed = run.json("tickets", "list", "--status", "closed", config=maildir_config)
    assert [t["id"] for t in closed] == [first["id"]] and closed[0]["closed_at"]
    run("tickets", "set-status", first["number"], "in_progress", config=maildir_config)
    again = run.json("tickets", "show", first["number"], config=maildir_config)
    assert again["status"] == "in_progress" and again["closed_at"] is None
    missing = run("tickets", "show", "999", config=maildir_config)
    assert missing.exit_code == 2 and "no ticket number 999" in missing.stderr
    assert "First" in run("tickets", "show", first["number"], config=maildir_config).output


def test_tickets_json_addresses_times_and_attachments(tmp_path, write_config, run):
    """Spec §3: bare addresses, every time ISO 8601 with its offset, attachments with their
    content type, size and SHA-256."""
    import datetime as dt
    import hashlib

    blob = b"%PDF-1.4 quote" * 10
    mail = message("Quote", sender="Carol Customer <Carol@Example.org>",
                   to="IT Help Desk <helpdesk@example.com>",
                   headers={"Cc": "Bob <bob@example.com>, dave@example.com"},
                   date=dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC),
                   attachments=[("quote.pdf", "application/pdf", blob)])
    make_maildir(tmp_path / "box", [mail])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0
    [ticket] = run.json("tickets", "list", config=config)
    assert run("tickets", "close", ticket["number"], config=config).exit_code == 0

    shown = run.json("tickets", "show", ticket["number"], config=config)

    [inbound] = shown["messages"]
    assert (inbound["from"], inbound["to"], inbound["cc"]) == (
        "carol@example.org", ["helpdesk@example.com"], ["bob@example.com", "dave@example.com"])
    for value in (shown["created_at"], shown["updated_at"], shown["closed_at"],
                  shown["escalation_due_at"], inbound["date"]):
        assert dt.datetime.fromisoformat(value).utcoffset() is not None, value
    assert inbound["attachments"] == [{"filename": "quote.pdf", "content_type": "application/pdf",
                                       "size": len(blob),
                                       "sha256": hashlib.sha256(blob).hexdigest()}]


def test_tickets_by_number_or_tag(maildir_config, run):
    """Spec §3: TICKET is the number users see, or its tag; --id N the internal id."""
    run("fetch", config=maildir_config)
    first, second = run.json("tickets", "list", config=maildir_config)
    number, tag = second["number"], second["tag"]
    for value in (number, tag, tag.strip("[]").split()[1], f"00{number}"):
        shown = run.json("tickets", "show", value, config=maildir_config)
        assert shown["id"] == second["id"], value
    assert run.json("tickets", "show", "--id", str(second["id"]),
                    config=maildir_config)["number"] == number
    assert run.json("tickets", "show", f"--number={number}",  # the option of 0.1 still works
                    config=maildir_config)["id"] == second["id"]
    assert run("tickets", "close", number, config=maildir_config).exit_code == 0
    result = run("tickets", "set-status", number, "in_progress",
                 config=maildir_config)
    assert result.exit_code == 0, result.output
    assert [t["status"] for t in run.json("tickets", "list", config=maildir_config)] == [
        "new", "in_progress"]
    assert run.json("tickets", "show", first["number"], config=maildir_config)["id"] == \
        first["id"]

    result = run("tickets", "set-status", "--id", str(first["id"]), "closed",
                 config=maildir_config)
    assert result.exit_code == 0 and f"Ticket {first['number']} is now closed" in result.output
    for argv in (["show"], ["show", number, "--number", number], ["close"],
                 ["set-status", "in_progress"], ["set-status", "--id", "1"],
                 ["show", number, "--id", "1"]):
        result = run("tickets", *argv, config=maildir_config)
        assert result.exit_code == 2, argv
        assert "Usage:" in result.stderr or "not both" in result.stderr \
            or "which ticket? give its number (or its tag), or --id N" in result.stderr, argv
    forged = run("tickets", "show", f"{number}AAAA", config=maildir_config)
    assert forged.exit_code == 2
    assert f"'{number}AAAA' is neither a ticket number nor a valid ticket tag" in forged.stderr


def test_dry_run_reports_a_failing_account_and_goes_on(tmp_path, write_config, run, open_db):
    make_maildir(tmp_path / "box", [message("Waiting")])
    closed = {"name": "down", "protocol": "imap", "host": "127.0.0.1", "port": free_port(),
              "username": "u", "password": "pw", "security": "none"}
    config = write_config([closed, {"name": "local", "protocol": "maildir", "path": "box"}])
    open_db()  # an existing database: a dry run opens it read-only

    result = run("fetch", "--dry-run", config=config)

    assert result.exit_code == 1, result.output
    assert "cannot record" not in result.output
    assert "down: failed: account 'down': " in result.stdout
    assert "local: dry-run\n  would file <" in result.stdout
    assert "-> a new ticket" in result.stdout
    assert run.json("accounts", "list", config=config)[0]["last_run"] is None


def test_a_dry_run_names_each_message_then_its_verdict(tmp_path, write_config):
    """At 80 columns: "would file" and the Message-ID (else the subject) with the sender (and
    the subject), then "-> " where it would go on a line of its own; that no auto-mail would
    go out is said once, at the end."""
    from tests.test_terminal import at_80_columns

    make_maildir(tmp_path / "box", [message("Printer jams", message_id="<p1@example.org>"),
                                    message("VPN drops every 10 minutes", message_id=None)])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box",
                            "resource": "it-support"}])

    lines = at_80_columns("fetch", "--dry-run", config=config)

    new = "    -> a new ticket in it-support [message]: no matching ticket: a new one"
    assert lines == ["local: dry-run",
                     "  would file <p1@example.org> from carol@example.org: 'Printer jams'", new,
                     "  would file 'VPN drops every 10 minutes' from carol@example.org", new,
                     "(dry run: nothing was changed)",
                     "(no auto-mail: the accounts file has no [smtp] section)"]
    for name in ("new", "cur"):  # without mail there is no message to remark on
        for path in (tmp_path / "box" / name).iterdir():
            path.unlink()
    assert at_80_columns("fetch", "--dry-run", config=config) == [
        "local: dry-run", "  no mail waiting", "(dry run: nothing was changed)"]


def test_status_json(maildir_config, run):
    run("fetch", config=maildir_config)
    data = run.json("status", config=maildir_config)
    assert set(data) >= {"ingest_disabled", "accounts", "error_messages", "outbox_pending",
                         "tickets_by_status"}
    assert data["tickets_by_status"] == {"new": 2, "confirmed_unread": 0, "in_progress": 0,
                                         "closed": 0}
    assert data["accounts"][0]["last_run"]["new_tickets"] == 2
    assert "Tickets: new: 2" in run("status", config=maildir_config).output


@contextlib.contextmanager
def held(account: str, config_path):
    """Hold *account* as another run would: its flock, or its PostgreSQL advisory lock in a
    session of its own."""
    from helpdesk_fetch import config, state
    from helpdesk_fetch.secrets.passwords import database_password
    from helpdesk_fetch.store import db

    settings = config.load(config_path).settings
    database = None
    if settings.database.startswith("postgresql:"):
        database = db.connect(settings.database,
                              password=database_password(settings, timeout=10))
    try:
        with state.account_lock(account, state_dir=settings.state_dir, database=database):
            yield
    finally:
        if database is not None:
            database.close()


def test_a_held_account_makes_the_run_exit_75(maildir_config, run):
    with held("local", maildir_config):
        busy = run("fetch", config=maildir_config)
        verbose = run("-v", "fetch", config=maildir_config)
    assert busy.exit_code == 75 and busy.output == ""
    assert verbose.exit_code == 75 and "another run" in verbose.stderr
    assert run.json("tickets", "list", config=maildir_config) == []
    assert run("fetch", config=maildir_config).exit_code == 0  # no stale lock afterwards


def test_a_held_account_is_skipped_while_others_run(tmp_path, write_config, run):
    make_maildir(tmp_path / "a", [message("A")])
    make_maildir(tmp_path / "b", [message("B")])
    config = write_config([{"name": "a", "protocol": "maildir", "path": "a"},
                           {"name": "b", "protocol": "maildir", "path": "b"}])
    with held("a", config):
        result = run("fetch", config=config)
    assert result.exit_code == 0 and result.output == ""
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["B"]


def test_every_command_has_help_with_an_example(run):
    def walk(group, prefix):
        for name, command in subcommands(group).items():
            yield prefix + [name], command
            if isinstance(command, click.Group):
                yield from walk(command, prefix + [name])

    for path, _command in walk(cli, []):
        result = run(*path, "--help")
        assert result.exit_code == 0
        assert "Example" in result.output, " ".join(path)


# -- one filter for everything printed (issue 20.6) ----------------------------------------------

SECRET = "inline-s3cret-of-the-accounts-file"
EVIL = f"boom {SECRET} \x1b]0;pwned\x07 \x1b[2J"


@pytest.fixture
def secret_config(tmp_path, write_config):
    """An account whose password the process remembers (and must never print)."""
    make_maildir(tmp_path / "box", [message("First")])
    return write_config([{"name": "local", "protocol": "maildir", "path": "box",
                          "resource": "it-support"},
                         {"name": "secret", "protocol": "imap", "host": "127.0.0.1",
                          "username": "u", "password": SECRET, "enabled": False}])


def assert_scrubbed(output: str) -> None:
    assert SECRET not in output and "\x1b" not in output and "\x07" not in output
    assert "boom *** \u241b]0;pwned\u2407 \u241b[2J" in output


def test_a_sender_cannot_reorder_a_line_with_bidirectional_controls(tmp_path, write_config,
                                                                     run):
    """A subject (or an RFC 6532 address) may hold any character: U+202E (right-to-left
    override) would make "gpj.exe" read "exe.jpg" on the administrator's screen."""
    make_maildir(tmp_path / "box", [message("Invoice \u202egpj.exe \u2067x\u2069")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0

    shown = run("tickets", "show", "1001", config=config).output

    assert "\u202e" not in shown and "\u2067" not in shown and "\u2069" not in shown
    assert "Invoice \ufffdgpj.exe \ufffdx\ufffd" in shown
    listed = run("tickets", "list", "--json", config=config).stdout
    assert "\u202e" not in listed and "\\u202e" in listed  # escaped: the same data
    assert json.loads(listed)[0]["subject"] == "Invoice \u202egpj.exe \u2067x\u2069"


def test_a_traceback_goes_through_the_output_filter(secret_config, run, monkeypatch):
    from helpdesk_fetch.health import status

    def bug(*args, **kwargs):
        raise RuntimeError(EVIL)

    monkeypatch.setattr(status, "last_runs", bug)
    result = run("accounts", "list", config=secret_config)

    assert result.exit_code == 1
    assert "unexpected error (please report it)" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert_scrubbed(result.output)


def test_deliver_prints_its_unexpected_error_through_the_filter(secret_config, run,
                                                                monkeypatch):
    from helpdesk_fetch.ingest import deliver

    def bug(*args, **kwargs):
        raise RuntimeError(EVIL)

    monkeypatch.setattr(deliver, "deliver", bug)
    result = run("deliver", "--resource", "it-support", config=secret_config,
                 input=message("Piped").decode())

    assert result.exit_code == 75 and "Traceback" in result.stderr
    assert_scrubbed(result.output)


def test_the_pipelines_debug_traceback_goes_through_the_filter(secret_config, run, monkeypatch):
    from helpdesk_fetch.ingest import decide

    def bug(parsed, tagger, **kwargs):
        raise KeyError(EVIL)

    monkeypatch.setattr(decide, "find_ticket", bug)
    result = run("-vv", "fetch", config=secret_config)

    assert result.exit_code == 0
    assert "Traceback" in result.stderr and "unexpected error (please report it)" in result.stderr
    assert SECRET not in result.output and "\x1b" not in result.output


def test_what_escapes_the_command_is_printed_through_the_filter(secret_config, run, capsys):
    from helpdesk_fetch.cli import excepthook

    run("accounts", "list", config=secret_config)  # the secret is known now
    try:
        raise RuntimeError(EVIL)
    except RuntimeError as exc:
        excepthook(type(exc), exc, exc.__traceback__)

    assert_scrubbed(capsys.readouterr().err)


def test_json_keeps_the_data_and_escapes_what_a_terminal_obeys(tmp_path, write_config, run):
    raw = (b"From: a@example.org\r\nSubject: =?utf-8?b?"
           + base64.b64encode("csi \u009b2J del \x7f".encode())
           + b"?=\r\n\r\nbody\r\n")
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0

    result = run("tickets", "list", "--json", config=config)

    assert "\u009b" not in result.output and "\x7f" not in result.output
    assert "\\u009b" in result.output and "\\u007f" in result.output
    assert json.loads(result.output)[0]["subject"] == "csi \u009b2J del \x7f"


@pytest.mark.parametrize(("args", "through"), [(["tickets", "list"], "pipe"),
                                               (["status", "--json"], "pipe"),
                                               (["tickets", "list"], "socket")])
def test_output_to_a_reader_that_has_gone_ends_quietly(tmp_path, write_config, args, through):
    """``tickets list | head -1``: once head has what it wanted, no traceback ("unexpected
    error (please report it)") about the broken pipe; exit 1, the output having been cut. The
    same for a socket (systemd's journal) whose reader has gone."""
    import os
    import socket
    import subprocess
    import sys

    from tests.proc import ROOT, environment

    make_maildir(tmp_path / "box", [message("One"), message("Two")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert subprocess.run([sys.executable, "-m", "helpdesk_fetch", "--config", str(config),
                           "fetch"], cwd=ROOT, env=environment()).returncode == 0
    if through == "pipe":
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the command writes
    else:
        reader, writer = socket.socketpair()
        reader.close()
        write = os.dup(writer.fileno())
        writer.close()
    try:
        done = subprocess.run([sys.executable, "-m", "helpdesk_fetch", "--config", str(config),
                               *args], stdout=write, stderr=subprocess.PIPE, cwd=ROOT,
                              env=environment(), timeout=60)
    finally:
        os.close(write)

    assert (done.returncode, done.stderr.decode()) == (1, "")
