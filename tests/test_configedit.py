"""Commands that write the accounts file keep the administrator's comments and layout."""

from __future__ import annotations

import os
import stat
import tomllib

import pytest

from helpdesk_fetch.config.edit import add_account, remove_account, set_account_key
from helpdesk_fetch.errors import ConfigError

COMMENTED = """\
# Our helpdesk. Ask Dana before changing anything!

[settings]
reactivation_days = 7   # legal says a week

[[resources]]
name = "it-support"
members = ["alice@example.com"]

# The main mailbox
[[accounts]]
name = "helpdesk"
protocol = "maildir"
path = "/var/mail/helpdesk"   # delivered by postfix
enabled = true   # keep on

# Alerts from Nagios
[[accounts]]
name = "monitoring"
protocol = "maildir"
path = "/var/mail/monitoring"
automail = false

# end of file
"""


@pytest.fixture
def commented(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text(COMMENTED)
    path.chmod(0o644)
    return path


def test_add_appends_a_block_and_keeps_everything_else(commented):
    add_account(commented, {"name": "pop", "protocol": "pop3", "host": "pop.example.com",
                            "username": "u", "password_env": "POP_PW", "port": None})
    text = commented.read_text()
    assert text.startswith(COMMENTED)
    assert text.endswith('[[accounts]]\nname = "pop"\nprotocol = "pop3"\n'
                         'host = "pop.example.com"\nusername = "u"\npassword_env = "POP_PW"\n')
    assert stat.S_IMODE(commented.stat().st_mode) == 0o600


def test_remove_takes_the_block_and_its_comment_only(commented):
    remove_account(commented, "helpdesk")
    text = commented.read_text()
    assert "# The main mailbox" not in text and 'name = "helpdesk"' not in text
    assert "# Alerts from Nagios\n[[accounts]]" in text
    assert "# Our helpdesk. Ask Dana" in text and "legal says a week" in text
    assert [a["name"] for a in tomllib.loads(text)["accounts"]] == ["monitoring"]


def test_add_then_remove_gives_back_the_file_as_it_was(commented):
    add_account(commented, {"name": "pop", "protocol": "pop3", "host": "pop.example.com",
                            "username": "u", "password_env": "POP_PW", "port": None})
    remove_account(commented, "pop")
    assert commented.read_text() == COMMENTED  # no blank line left at its end


def test_disable_changes_one_value_in_place(commented):
    set_account_key(commented, "helpdesk", "enabled", False)
    set_account_key(commented, "monitoring", "enabled", False)
    text = commented.read_text()
    assert "enabled = false   # keep on" in text
    assert 'name = "monitoring"\nenabled = false\n' in text
    assert text.replace("enabled = false   # keep on", "enabled = true   # keep on").replace(
        'name = "monitoring"\nenabled = false\n', 'name = "monitoring"\n') == COMMENTED


def test_an_invalid_result_is_never_written(commented):
    with pytest.raises(ConfigError, match="no resource 'nope'"):
        add_account(commented, {"name": "x", "protocol": "maildir", "path": "/x",
                                "resource": "nope"})
    with pytest.raises(ConfigError, match="two accounts have this name"):
        add_account(commented, {"name": "helpdesk", "protocol": "maildir", "path": "/x"})
    assert commented.read_text() == COMMENTED


def test_accounts_in_another_form_are_left_to_the_administrator(tmp_path):
    path = tmp_path / "accounts.toml"
    path.write_text('accounts = [{name = "a", protocol = "maildir", path = "/x"}]\n')
    with pytest.raises(ConfigError, match="edit"):
        set_account_key(path, "a", "enabled", False)
    with pytest.raises(ConfigError, match="edit it by hand"):
        add_account(path, {"name": "b", "protocol": "maildir", "path": "/y"})


def test_root_editing_keeps_the_owner(commented, owned_by_another_user, monkeypatch):
    owner = owned_by_another_user(commented)
    given = []  # the new file is given to the owner: the only step a non-root run cannot see
    fchown = os.fchown
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: (given.append((uid, gid)),
                                                            fchown(fd, uid, gid)))

    set_account_key(commented, "helpdesk", "enabled", False)
    add_account(commented, {"name": "x", "protocol": "maildir", "path": "/x"})

    st = commented.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (*owner, 0o600)
    assert given == [owner, owner]
    assert 'name = "x"' in commented.read_text()


def test_a_symlinked_file_is_edited_where_it_lives(commented, tmp_path):
    link = tmp_path / "link.toml"
    link.symlink_to(commented)
    remove_account(link, "helpdesk")
    assert link.is_symlink() and link.resolve() == commented
    assert 'name = "helpdesk"' not in commented.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accounts.toml", "link.toml"]


WITH_RULES = COMMENTED.replace("# end of file\n", """\
# Rules: Nagios first, then spam. Keep in this order!
[[rules]]
name = "nagios"
accounts = ["monitoring"]   # only there
subject = '(?P<state>PROBLEM|RECOVERY).*?Alert: (?P<host>[^/ ]+)'
correlate = ["host"]
resolve = { state = "RECOVERY" }

[[rules]]
name = "spam"
action = "ignore"
[rules.headers]             # a sub-table: a header line inside the block
"X-Spam-Flag" = "^yes$"

# end of file
""")


def test_the_account_commands_keep_rules_blocks_as_written(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_text(WITH_RULES)
    path.chmod(0o600)
    rules = WITH_RULES[WITH_RULES.index("# Rules:"):]

    for argv in (["add", "pop", "--protocol", "pop3", "--host", "pop.example.com",
                  "--username", "u", "--password-env", "POP_PW"],
                 ["disable", "monitoring"], ["enable", "monitoring"], ["disable", "pop"],
                 ["remove", "helpdesk"]):
        result = run("accounts", *argv, config=path)
        assert result.exit_code == 0, (argv, result.output)
        assert rules in path.read_text(), argv

    data = tomllib.loads(path.read_text())
    assert [r["name"] for r in data["rules"]] == ["nagios", "spam"]
    assert [a["name"] for a in data["accounts"]] == ["monitoring", "pop"]


def test_an_account_a_rule_names_is_not_removed(tmp_path, run):
    path = tmp_path / "accounts.toml"
    path.write_text(WITH_RULES)
    path.chmod(0o600)

    result = run("accounts", "remove", "monitoring", config=path)

    assert result.exit_code == 2
    assert "rule 'nagios': key 'rules.accounts': no account 'monitoring'" in result.stderr
    assert path.read_text() == WITH_RULES
