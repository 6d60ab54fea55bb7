"""The accounts file (spec §2): validation names file, account and key; secrets are guarded."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from helpdesk_fetch import config
from helpdesk_fetch.errors import ConfigError
from helpdesk_fetch.secrets.passwords import password_for, password_from
from helpdesk_fetch.tickets import rules

ROOT = Path(__file__).resolve().parent.parent


def load_text(tmp_path: Path, text: str, mode: int = 0o600) -> config.Config:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    path.chmod(mode)
    return config.load(path)


def test_the_sample_file_is_valid_and_documents_every_key():
    sample = config.load(ROOT / "sample-accounts.toml")
    text = (ROOT / "sample-accounts.toml").read_text()
    assert {a.protocol for a in sample.accounts} == {"imap", "pop3", "maildir"}
    assert any(not a.automail for a in sample.accounts)
    for cls in (config.Settings, config.Smtp, config.Automail, config.Resource, config.Account,
                config.Rule, config.Alerts, config.Hooks):
        for field in cls.__dataclass_fields__.values():
            key = field.metadata.get("key", field.name)
            assert re.search(rf"^#? *{key} *=", text, re.MULTILINE), f"{cls.__name__}.{key}"


@pytest.mark.parametrize("scheme", ["sqlite", "SQLite", "SQLITE"])
def test_a_relative_sqlite_path_is_beside_the_accounts_file_in_any_case(tmp_path, scheme):
    """Not wherever the command runs (under cron: the home directory)."""
    cfg = load_text(tmp_path, f'[settings]\ndatabase = "{scheme}:///hd-data/hd.db"\n\n'
                              '[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "box"\n')
    assert cfg.settings.database == f"sqlite:///{tmp_path / 'hd-data' / 'hd.db'}"


def test_a_relative_sqlite_path_that_reads_like_an_existing_absolute_one_is_refused(tmp_path):
    """sqlite:///var/lib/... (three slashes: relative) where var/lib/... is not beside the
    accounts file and /var/lib/... exists: the database would go where nobody looks."""
    absolute = tmp_path / "srv" / "helpdesk"
    absolute.mkdir(parents=True)
    relative = f"{absolute.relative_to('/')}/helpdesk.db"  # tmp/pytest-.../srv/helpdesk/...
    home = tmp_path / "etc"
    home.mkdir()
    accounts = '\n[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "box"\n'

    with pytest.raises(ConfigError) as refused:
        load_text(home, f'[settings]\ndatabase = "sqlite:///{relative}"\n' + accounts)
    assert str(refused.value).endswith(
        f"key 'settings.database': 'sqlite:///{relative}' is relative to the accounts file's "
        f"directory, where {absolute.relative_to('/')} does not exist, but {absolute} does: "
        f"write sqlite:////{relative} for the absolute path /{relative}, or "
        f"sqlite:///./{relative} for {home / relative}")
    for url, meant in ((f"sqlite:////{relative}", f"/{relative}"),
                       (f"sqlite:///./{relative}", str(home / relative))):
        cfg = load_text(home, f'[settings]\ndatabase = "{url}"\n' + accounts)
        assert cfg.settings.database == f"sqlite:///{meant}"
    (home / absolute.relative_to("/")).mkdir(parents=True)  # the relative one exists: meant
    cfg = load_text(home, f'[settings]\ndatabase = "sqlite:///{relative}"\n' + accounts)
    assert cfg.settings.database == f"sqlite:///{home / relative}"


def test_a_relative_sqlite_path_under_a_root_folder_is_refused_before_its_directory_exists(
        tmp_path):
    """The spec's own example, sqlite:///var/lib/helpdesk-fetch/helpdesk.db, on a machine where
    /var/lib/helpdesk-fetch is not made yet: not a var/lib/... beside the accounts file."""
    missing = f"var/lib/helpdesk-fetch-{tmp_path.name}"
    assert not (Path("/") / missing).exists()

    with pytest.raises(ConfigError) as refused:
        load_text(tmp_path, f'[settings]\ndatabase = "sqlite:///{missing}/helpdesk.db"\n\n'
                            '[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "box"\n')

    assert f"where {missing} does not exist, but it reads like a path under /var: write " \
        f"sqlite:////{missing}/helpdesk.db for the absolute path /{missing}/helpdesk.db, or " \
        f"sqlite:///./{missing}/helpdesk.db for {tmp_path / missing}/helpdesk.db" \
        in str(refused.value)
    assert not (tmp_path / "var").exists()


def test_the_accounts_file_is_found_where_the_readme_says(tmp_path, monkeypatch):
    """--config, else $HELPDESK_FETCH_CONFIG, else ~/.config/helpdesk-fetch/accounts.toml, or
    the same under $XDG_CONFIG_HOME where that is set (README, Configure)."""
    from helpdesk_fetch.config import config_path

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HELPDESK_FETCH_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(tmp_path / "option.toml") == tmp_path / "option.toml"
    assert config_path() == tmp_path / "env.toml"
    monkeypatch.delenv("HELPDESK_FETCH_CONFIG")
    assert config_path() == tmp_path / "xdg" / "helpdesk-fetch" / "accounts.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config_path() == tmp_path / "home" / ".config" / "helpdesk-fetch" / "accounts.toml"


def test_defaults(tmp_path):
    cfg = load_text(tmp_path, '[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\n'
                              'username = "u"\npassword_env = "X"\n')
    account = cfg.accounts[0]
    assert (account.port, account.security, account.folder, account.enabled) == (
        993, "ssl", "INBOX", True)
    assert cfg.settings.database == f"sqlite:///{tmp_path / 'helpdesk.db'}"
    assert cfg.settings.error_folder == "HD Error Messages"
    assert cfg.smtp is None


IMAP = ('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\nusername = "u"\n'
        'password_env = "X"\n')
SMTP = '[smtp]\nhost = "h"\nfrom_address = "hd@example.com"\n'
MAILDIR = '[[accounts]]\nname = "m"\nprotocol = "maildir"\npath = "x"\n'


@pytest.mark.parametrize("text, needle", [
    ('[settings]\nreactivaton_days = 3\n', "key 'settings.reactivaton_days': unknown key; "
                                           "did you mean 'reactivation_days'?"),
    ('[settings]\ntimeout_seconds = "60"\n', "key 'settings.timeout_seconds': expected an "
                                             "integer, got a string"),
    ('[settings]\nmax_message_bytes = 3221225472\n', "key 'settings.max_message_bytes': must "
                                                      "be at most 1073741824 (1 GiB)"),
    ('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\nusername = "u"\n'
     'password_env = "X"\nfolderr = "INBOX"\n', "account 'a': key 'folderr': unknown key"),
    ('[[accounts]]\nname = "a"\nprotocol = "imap"\nusername = "u"\npassword_env = "X"\n',
     "account 'a': key 'host': missing"),
    ('[[accounts]]\nname = "a"\nprotocol = "smtp"\n', "account 'a': key 'protocol': 'smtp' is "
                                                      "not one of imap, pop3, maildir"),
    ('[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "x"\nresource = "nope"\n',
     "account 'a': key 'resource': no resource 'nope'"),
    ('[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "x"\n'
     '[[accounts]]\nname = "a"\nprotocol = "maildir"\npath = "y"\n',
     "account 'a': key 'name': two accounts have this name"),
    ('[[accounts]]\nname = "A b"\nprotocol = "maildir"\npath = "x"\n', "key 'name'"),
    ('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\nusername = "u"\n'
     'password_env = "X"\npassword_file = "f"\n', "give only one of"),
    ('[[accounts]]\nname = "a"\nprotocol = "pop3"\nhost = "h"\nusername = "u"\n'
     'password_env = "X"\nfolder = "INBOX"\n', "POP3 has no folders"),
    ('this is = not toml =', "not valid TOML"),
    (IMAP + 'timeout_seconds = -5\n', "account 'a': key 'timeout_seconds': must be greater than 0"),
    (IMAP + 'timeout_seconds = 0\n', "account 'a': key 'timeout_seconds': must be greater than 0"),
    (IMAP + 'port = 0\n', "account 'a': key 'port': must be between 1 and 65535"),
    (IMAP + 'port = 65536\n', "account 'a': key 'port': must be between 1 and 65535"),
    (SMTP + 'port = 0\n', "key 'smtp.port': must be between 1 and 65535"),
    (SMTP + 'timeout_seconds = -5\n', "key 'smtp.timeout_seconds': must be greater than 0"),
    ('[settings]\ntimeout_seconds = 0\n', "key 'settings.timeout_seconds': must be greater"),
    ('[settings]\nparse_seconds = 0\n', "key 'settings.parse_seconds': must be greater than 0"),
    ('[settings]\nparse_seconds = 2.5\n', "key 'settings.parse_seconds': expected an integer, "
                                        "got a number"),
    (MAILDIR + 'folder = "INBOX"\n', "account 'm': key 'folder': does not apply to a maildir"),
    (MAILDIR + 'security = "ssl"\n', "account 'm': key 'security': does not apply to a maildir"),
    (MAILDIR + 'host = "h"\n', "account 'm': key 'host': does not apply to a maildir"),
    (MAILDIR + 'timeout_seconds = 5\n', "account 'm': key 'timeout_seconds': does not apply"),
    ('[[resources]]\nname = "it"\nmembers = "alice@example.com"\n',
     "resource 'it': key 'resources.members': expected a list of strings, got a string"),
    ('[[resources]]\nname = "it"\nmembres = []\n',
     "resource 'it': key 'resources.membres': unknown key; did you mean 'members'?"),
    ('[[resources]]\nname = "it"\n[[resources]]\nname = "it"\n',
     "resource 'it': key 'resources.name': two resources have this name"),
    ('[[resources]]\nname = "it"\n[[resources]]\nmembers = []\n',
     "the 2nd [[resources]] table: key 'resources.name': missing (required)"),
    (MAILDIR + '[[accounts]]\nprotocol = "maildir"\npath = "y"\n',
     "the 2nd [[accounts]] table: key 'name': missing (required)"),
    ('[[accounts]]\nname = 7\nprotocol = "maildir"\npath = "y"\n',
     "the 1st [[accounts]] table: key 'name': expected a string, got an integer"),
    ('[[resources]]\nname = "it"\nmembers = ["Alice Smith"]\n',
     "resource 'it': key 'resources.members': 'Alice Smith' is not one e-mail address"),
    ('[[resources]]\nname = "it"\nnotify = ["a@example.com, b@example.com"]\n',
     "resource 'it': key 'resources.notify': 'a@example.com, b@example.com' is not one e-mail"),
    (IMAP + 'address = "not an address"\n',
     "account 'a': key 'address': 'not an address' is not one e-mail address"),
    ('[settings]\ncanary_max_minutes = 0\n', "key 'settings.canary_max_minutes': must be greater"),
    ('[alerts]\nto = ["admin@example.com"]\n', "key 'alerts.to': alerts are mailed through "
                                                "[smtp]; add an [smtp] section"),
    (SMTP + '[alerts]\nto = ["admin"]\n', "key 'alerts.to': 'admin' is not one e-mail address"),
    (SMTP + '[alerts]\ncc = []\n', "key 'alerts.cc': unknown key"),
    ('[settings]\ndatabase = "sqlite://var/lib/hd/helpdesk.db"\n',
     "key 'settings.database': 'sqlite://var/lib/hd/helpdesk.db' names a host ('var'), which a "
     "SQLite URL has not: write sqlite:////var/lib/hd/helpdesk.db for the absolute path "
     "/var/lib/hd/helpdesk.db, or sqlite:///var/lib/hd/helpdesk.db for a path relative to the "
     "accounts file's directory"),
    ('[settings]\ndatabase = "sqlite:helpdesk.db"\n',
     "key 'settings.database': 'sqlite:helpdesk.db' is not a SQLite URL (sqlite:/// and a path)"),
    ('[hooks]\nevents = ["ticket.created"]\n', "key 'hooks.command': missing (required)"),
    ('[hooks]\ncommand = "/bin/hook --all"\n', "key 'hooks.command': expected a list of strings"),
    ('[hooks]\ncommand = []\n', "key 'hooks.command': must name the program to run"),
    ('[hooks]\ncommand = ["/bin/true"]\nevents = ["ticket.closed"]\n',
     "key 'hooks.events': 'ticket.closed' is not one of ticket.created, ticket.replied, "
     "ticket.reopened, ticket.rejected, message.bounced"),
    ('[hooks]\ncommand = ["/bin/true"]\ntimeout_seconds = 0\n',
     "key 'hooks.timeout_seconds': must be greater than 0"),
    ('[hooks]\ncommand = ["/bin/true"]\nmax_attempts = 0\n',
     "key 'hooks.max_attempts': must be greater than 0"),
])
def test_errors_name_the_file_account_and_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    assert str(caught.value).startswith(str(tmp_path / "accounts.toml"))
    assert needle in str(caught.value)


@pytest.mark.parametrize("table", ["accounts", "resources"])
def test_names_are_at_most_64_characters(tmp_path, table):
    """A longer name would fail every run on PostgreSQL (a column of 255) at the first message."""
    body = 'protocol = "maildir"\npath = "x"\n' if table == "accounts" else ""
    load_text(tmp_path, f'[[{table}]]\nname = "{"a" * 64}"\n{body}')
    with pytest.raises(ConfigError, match="names are 1 to 64 of a-z 0-9"):
        load_text(tmp_path, f'[[{table}]]\nname = "{"a" * 65}"\n{body}')


def test_resource_addresses_are_reduced_to_bare_lowercase_ones(tmp_path):
    cfg = load_text(tmp_path, '[[resources]]\nname = "it"\nmembers = ["Alice Smith '
                              '<Alice@Example.com>", " bob@example.com", "BOB@example.com"]\n'
                              '[[resources]]\nname = "ops"\nmembers = ["ops@example.com"]\n'
                              'notify = ["\\"Ops, Team\\" <Ops-Team@Example.com>"]\n')
    it, ops = cfg.resources
    assert it.members == it.notify == ("alice@example.com", "bob@example.com")
    assert ops.notify == ("ops-team@example.com",)
    assert rules.is_member("alice@example.com", it)


def test_account_addresses_and_hooks(tmp_path):
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "event").write_text("#!/bin/sh\n")
    (tmp_path / "hooks" / "event").chmod(0o755)
    cfg = load_text(tmp_path, IMAP.replace('username = "u"', 'username = "Help@Example.com"')
                    + MAILDIR + '[[accounts]]\nname = "n"\nprotocol = "maildir"\npath = "y"\n'
                    'address = "Helpdesk <Local@Example.com>"\n'
                    '[hooks]\ncommand = ["hooks/event", "--to", "chat"]\n')
    assert [a.address for a in cfg.accounts] == ["help@example.com", None, "local@example.com"]
    assert cfg.hooks == config.Hooks(command=(str(tmp_path / "hooks/event"), "--to", "chat"))
    assert set(cfg.hooks.events) == {"ticket.created", "ticket.replied", "ticket.reopened",
                                     "ticket.rejected", "message.bounced"}
    assert (cfg.hooks.timeout_seconds, cfg.hooks.max_attempts, cfg.alerts) == (30, 10, None)
    assert load_text(tmp_path, IMAP).accounts[0].address is None  # "u" is no address


@pytest.mark.parametrize(("program", "needle"), [
    ("hooks/gone", "the program {dir}/hooks/gone does not exist"),
    ("hooks/event.txt", "the program {dir}/hooks/event.txt is not executable; fix: chmod +x "
                        "{dir}/hooks/event.txt"),
    ("./hooks", "the program {dir}/hooks is a directory"),
    ("no-such-hook-program", "no program 'no-such-hook-program' in the PATH ({path}); give "
                             "its absolute path, such as [\"/usr/local/bin/no-such-hook-program"
                             "\"] (cron's PATH is not your shell's)"),
])
def test_a_hook_command_that_cannot_run_is_refused_when_the_file_is_read(tmp_path, program,
                                                                        needle):
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "event.txt").write_text("#!/bin/sh\n")  # chmod +x forgotten
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, f'[hooks]\ncommand = ["{program}", "--quiet"]\n')
    assert str(caught.value) == f"{tmp_path / 'accounts.toml'}: key 'hooks.command': " + \
        needle.format(dir=tmp_path, path=os.environ.get("PATH", ""))


def test_a_hook_named_without_a_path_is_looked_up_in_the_path(tmp_path):
    """As before the check at load (the runner searched the PATH): `logger` works, as
    /usr/bin/logger, under cron's PATH as under the shell's."""
    loaded = load_text(tmp_path, '[hooks]\ncommand = ["sh", "-c", "cat > /dev/null"]\n')
    assert loaded.hooks.command == (shutil.which("sh"), "-c", "cat > /dev/null")


def test_type_errors_never_show_the_value(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, '[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\n'
                            'username = "u"\npassword = 12345678\n')
    assert "12345678" not in str(caught.value)


def test_a_file_with_a_secret_readable_by_others_is_refused(tmp_path):
    text = ('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\nusername = "u"\n'
            'password = "hunter22"\n')
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, mode=0o644)
    assert caught.value.exit_code == 2
    assert f"chmod 600 {tmp_path / 'accounts.toml'}" in str(caught.value)
    load_text(tmp_path, text, mode=0o600)
    load_text(tmp_path, text.replace('password = "hunter22"', 'password_env = "P"'), mode=0o644)


def test_cli_exit_2_names_the_key(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_text('[settings]\nmax_mesage_bytes = 10\n')
    result = run("fetch", config=path)
    assert result.exit_code == 2
    assert "key 'settings.max_mesage_bytes'" in result.stderr


def test_accounts_test_with_a_negative_timeout_names_the_key(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_text(IMAP + "timeout_seconds = -5\n")
    result = run("accounts", "test", config=path)
    assert result.exit_code == 2
    assert f"{path}: account 'a': key 'timeout_seconds': must be greater than 0" in result.stderr


@pytest.mark.parametrize("command", [["fetch"], ["accounts", "test"]])
def test_password_source_errors_name_the_accounts_file(tmp_path, run, command, monkeypatch):
    monkeypatch.delenv("X", raising=False)
    path = tmp_path / "accounts.toml"
    path.write_text(IMAP.replace('host = "h"', 'host = "127.0.0.1"'))
    result = run(*command, config=path)
    assert result.exit_code in (1, 2)
    assert (f"{path}: account 'a': key 'password_env': environment variable X is not set"
            in result.output)


def test_accounts_list_shows_a_problem_without_the_file_it_lists(tmp_path, run, monkeypatch):
    monkeypatch.delenv("X", raising=False)
    path = tmp_path / "accounts.toml"
    path.write_text(IMAP)
    assert run("fetch", config=path).exit_code == 2

    [row] = run("accounts", "list", config=path).stdout.splitlines()[1:]

    assert row.split("\t")[-1] == "key 'password_env': environment variable X is not set"


def test_missing_file_says_how_to_start(tmp_path, run):
    result = run("fetch", config=tmp_path / "none.toml")
    assert result.exit_code == 2 and "sample-accounts.toml" in result.stderr


TRUNCATED = ('[settings]\nerror_folder = "HD Error Messages"\n\n[[resources]]\n'
             'name = "it-support"\n')  # the file cut short before its [[accounts]]


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", TRUNCATED])
@pytest.mark.parametrize("command", [["fetch"], ["fetch", "--dry-run"], ["accounts", "test"]])
def test_a_file_without_accounts_stops_every_command_that_reads_mail(tmp_path, run, text,
                                                                      command):
    path = tmp_path / "accounts.toml"
    path.write_text(text)

    result = run(*command, config=path)

    assert result.exit_code == 2, result.output
    assert f"{path}: defines no [[accounts]] table" in result.stderr
    assert "accounts add" in result.stderr
    assert list(tmp_path.iterdir()) == [path]  # no database beside a file that is wrong


@pytest.mark.parametrize("command", [["status"], ["accounts", "list"], ["accounts", "list",
                                                                        "--json"]])
def test_a_file_without_accounts_is_named_by_the_commands_that_show_them(tmp_path, run,
                                                                         command):
    """They read no mail, so the file is no error for them; but an empty table would look
    like a quiet system, where fetch refuses the file (the wrong file given, say). As `check`
    says: when nothing can come in, or fetch read an account here lately; a file of resources
    only serves `deliver`, and is no news."""
    path = tmp_path / "accounts.toml"
    path.write_text("")
    nothing = run(*command, config=path)
    path.write_text(TRUNCATED)
    deliver_only = run(*command, config=path)
    path.write_text(MAILDIR)
    run("fetch", config=path)  # its Maildir is missing: a failed run is a run all the same
    path.write_text(TRUNCATED)
    cut_short = run(*command, config=path)

    assert nothing.exit_code == deliver_only.exit_code == cut_short.exit_code == 0
    assert (f"note: {path}: the accounts file defines no [[accounts]] and no [[resources]]: no "
            "mail can be fetched or delivered; is it empty, cut short, or the wrong file?"
            ) in nothing.stderr
    assert "defines no" not in deliver_only.stderr
    assert (f"note: {path}: the accounts file defines no [[accounts]] table, yet fetch read m "
            "here in the last 24 h: every fetch now fails (exit 2)") in cut_short.stderr


def test_a_file_whose_accounts_are_all_disabled_is_not_an_error(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_text(MAILDIR + "enabled = false\n")

    assert run("fetch", config=path).exit_code == 0


def test_dev_null_is_no_accounts_file(run):
    before = set(Path("/dev").iterdir())
    try:
        result = run("fetch", config=Path("/dev/null"))
    finally:
        created = set(Path("/dev").iterdir()) - before
        for path in created:  # what a regression would leave behind
            path.unlink()
    assert result.exit_code == 2, result.output
    assert "/dev/null: is a device, not an accounts file" in result.stderr
    assert not created  # no /dev/helpdesk.db


@pytest.mark.parametrize("command", [["fetch"], ["status"], ["tickets", "list"],
                                     ["tickets", "close", "1"], ["accounts", "list"],
                                     ["accounts", "add", "x", "--protocol", "maildir",
                                      "--path", "/tmp/x"]])
def test_a_device_is_no_accounts_file_for_any_command(tmp_path, run, command):
    device = tmp_path / "null"  # like /dev/null; a test must not risk the real one
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))

    result = run(*command, config=device)

    assert result.exit_code == 2, result.output
    assert f"{device}: is a device, not an accounts file" in result.stderr
    assert list(tmp_path.iterdir()) == [device]  # no database beside it
    assert device.is_char_device()  # not replaced by an accounts file


def test_a_directory_is_no_accounts_file(tmp_path, run):
    result = run("fetch", config=tmp_path)
    assert result.exit_code == 2 and f"{tmp_path}: is a directory" in result.stderr


def test_a_file_that_is_not_utf8_names_the_line(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_bytes(MAILDIR.encode() + "# Zugang für die Buchhaltung\n".encode("latin-1"))

    result = run("fetch", config=path)

    assert result.exit_code == 2
    assert (f"{path}: line 5, column 11: byte 0xfc is not UTF-8" in result.stderr)
    assert "save it again as UTF-8" in result.stderr


@pytest.mark.parametrize("make, needle", [(lambda p: None, "No such file or directory"),
                                           (lambda p: p.write_text(""), "is not a directory")])
def test_a_templates_dir_that_is_no_directory_is_an_error(tmp_path, run, make, needle):
    make(tmp_path / "my-texts")
    path = tmp_path / "accounts.toml"
    path.write_text('[settings]\ntemplates_dir = "my-texts"\n' + MAILDIR + 'enabled = false\n')

    result = run("fetch", config=path)

    assert result.exit_code == 2
    assert (f"{path}: key 'settings.templates_dir': {tmp_path / 'my-texts'}" in result.stderr
            and needle in result.stderr)
    (tmp_path / "my-texts").unlink(missing_ok=True)
    (tmp_path / "my-texts").mkdir()
    assert run("fetch", config=path).exit_code == 0


def _account(**keys) -> config.Account:
    return config.Account(name="a", protocol="imap", host="h", username="u", **keys)


def test_password_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HD_PW", "from-env")
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\nsecond line ignored\n")
    secret_file.chmod(0o600)
    assert password_for(_account(password="inline"), label="a", timeout=5) == "inline"
    assert password_for(_account(password_env="HD_PW"), label="a", timeout=5) == "from-env"
    assert password_for(_account(password_file=str(secret_file)), label="a",
                             timeout=5) == "from-file"
    assert password_for(_account(password_command="echo from-command"), label="a",
                             timeout=5) == "from-command"


@pytest.mark.parametrize("keys, needle", [
    ({"password_env": "HD_NOT_SET"}, "environment variable HD_NOT_SET is not set"),
    ({"password_command": "echo secret-out; exit 3"}, "exited with status 3 (what it printed "
     "is not shown: it may hold the secret); run it by hand as the user cron runs this as"),
    ({"password_command": "TOKEN=s3cret no-such-vault get helpdesk"},
     "key 'password_command': the command was not found (exit status 127): is 'no-such-vault' "
     "installed, and in the PATH of the user and cron running this? Give its full path"),
    ({"password_command": "sleep 5"}, "did not finish within 0.5 s"),
    ({"password_file": "/nonexistent/pw"}, "cannot read"),
])
def test_password_source_failures(keys, needle):
    with pytest.raises(ConfigError) as caught:
        password_for(_account(**keys), label="a", timeout=0.5)
    assert needle in str(caught.value) and "secret-out" not in str(caught.value)


def test_a_password_command_that_is_not_executable_says_so(tmp_path):
    script = tmp_path / "vault"
    script.write_text("#!/bin/sh\necho secret-out\n")
    script.chmod(0o644)  # forgotten: chmod +x
    with pytest.raises(ConfigError) as caught:
        password_for(_account(password_command=f"{script} get helpdesk"), label="a", timeout=5)
    assert str(caught.value) == (
        f"account 'a': key 'password_command': the command is not executable (exit status "
        f"126): '{script}' cannot be run; fix: chmod +x {script}")


@pytest.mark.parametrize("content", ["", "\n", "\nsecret on the second line\n", "\ufeff\n"])
def test_a_password_file_with_an_empty_first_line_is_an_error(tmp_path, content):
    secret_file = tmp_path / "pw"
    secret_file.write_text(content, encoding="utf-8")
    secret_file.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        password_for(_account(password_file=str(secret_file)), label="a", timeout=5)
    assert str(caught.value) == (f"account 'a': key 'password_file': {secret_file}: the first "
                                 "line is empty (the password must be on the first line)")


def test_a_byte_order_mark_is_not_part_of_the_password(tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_bytes(b"\xef\xbb\xbfs3cret\r\n")  # as Windows Notepad saves it
    secret_file.chmod(0o600)
    assert password_for(_account(password_file=str(secret_file)), label="a",
                             timeout=5) == "s3cret"
    assert password_from(env=None, file=str(secret_file), command=None,
                              key_prefix="settings.database_", timeout=5) == "s3cret"


def test_password_file_readable_by_others_is_refused(tmp_path):
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    secret_file.chmod(0o640)
    with pytest.raises(ConfigError) as caught:
        password_for(_account(password_file=str(secret_file)), label="a", timeout=5)
    assert "chmod 600" in str(caught.value)


def test_password_file_of_another_user_is_refused(tmp_path, owned_by_another_user):
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    secret_file.chmod(0o600)
    owner, _ = owned_by_another_user(secret_file)
    with pytest.raises(ConfigError) as caught:
        password_for(_account(password_file=str(secret_file)), label="a", timeout=5)
    assert f"belongs to uid {owner}" in str(caught.value)
    assert f"chown root {secret_file}" in str(caught.value)
