"""Files that steer the tool are the administrator's (spec §2, issue 20.2): an accounts file,
password file, templates directory or token store that group or others can write, or that another
user owns (root excepted), is refused with exit 2 and the fix, whether or not it holds a secret;
so is one in a directory others can write, unless that directory is sticky."""

from __future__ import annotations

import os

import pytest

from tests.mails import message
from tests.test_ingest_maildir import make_maildir
from tests.test_oauth2 import oauth_account, signed_in, token_file


def _me() -> str:
    """The running user's name, as a fix names it (chown NAME FILE)."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def maildir_config(write_config, tmp_path, **settings):
    make_maildir(tmp_path / "box", [message("Hello")])
    return write_config([{"name": "local", "protocol": "maildir", "path": "box"}],
                        settings=settings or None)


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_an_accounts_file_others_can_write_is_refused_without_a_secret(tmp_path, write_config,
                                                                       run, mode):
    config = maildir_config(write_config, tmp_path)
    config.chmod(mode)

    result = run("fetch", config=config)

    assert result.exit_code == 2
    assert (f"{config}: can be written by group or others (mode {mode:o}), who could make "
            f"helpdesk-fetch run their commands; fix: chmod go-w {config}") in result.stderr
    assert run("tickets", "list", config=config).exit_code == 2  # every command refuses it
    config.chmod(0o644)  # readable is fine without a secret
    assert run("fetch", config=config).exit_code == 0


def test_an_accounts_file_of_another_user_is_refused_without_a_secret(tmp_path, write_config,
                                                                      run, owned_by_another_user):
    config = maildir_config(write_config, tmp_path)
    owner, _ = owned_by_another_user(config)

    result = run("accounts", "list", config=config)

    assert result.exit_code == 2
    assert f"belongs to uid {owner}" in result.stderr
    assert f"fix: chown {_me()} {config}" in result.stderr


def test_a_directory_others_can_write_is_refused_unless_it_is_sticky(tmp_path, write_config,
                                                                     run):
    shared = tmp_path / "shared"
    shared.mkdir()
    config = maildir_config(write_config, tmp_path)
    config = config.rename(shared / "accounts.toml")
    (shared / "box").symlink_to(tmp_path / "box")
    shared.chmod(0o777)  # anyone may rename accounts.toml and put theirs in its place

    result = run("fetch", config=config)

    assert result.exit_code == 2
    assert (f"is in the directory {shared}, which group or others can write (mode 777) and so "
            f"put another file in its place; fix: chmod go-w {shared}") in result.stderr
    shared.chmod(0o1777)  # sticky, like /tmp: only the owner may rename or remove the file
    assert run("fetch", config=config).exit_code == 0


def test_a_symlink_is_followed_to_where_the_file_lives(tmp_path, write_config, run):
    config = maildir_config(write_config, tmp_path)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    real = config.rename(shared / "real.toml")
    config.symlink_to(real)

    result = run("fetch", config=config)

    assert result.exit_code == 2 and f"the directory {shared}" in result.stderr


def test_a_directory_of_another_user_is_refused(tmp_path, write_config, run, monkeypatch):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    config = maildir_config(write_config, tmp_path)
    if os.geteuid() == 0:  # give the directory away
        config = config.rename(theirs / "accounts.toml")
        os.chown(theirs, 65534, 65534)
    else:  # only root can: be someone else, beside a file that passes (root's own)
        config = theirs / "accounts.toml"
        config.symlink_to("/etc/passwd")
        monkeypatch.setattr(os, "geteuid", lambda: 4242)
    owner = theirs.stat().st_uid

    result = run("status", config=config)

    assert result.exit_code == 2
    assert f"is in the directory {theirs}, which belongs to uid {owner}" in result.stderr


def test_a_password_file_others_can_write_fails_its_account(tmp_path, write_config, run):
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "pw").chmod(0o602)  # they cannot read it, but they can point the login elsewhere
    config = write_config([{"name": "a", "protocol": "imap", "host": "127.0.0.1", "port": 1,
                            "username": "u", "password_file": "pw"}])

    result = run("accounts", "test", config=config)

    assert result.exit_code == 2  # the accounts file's fault, as for fetch (spec §2)
    assert (f"{tmp_path / 'pw'}: holds a secret but can be written by others "
            f"(mode 602); fix: chmod 600 {tmp_path / 'pw'}") in result.output


@pytest.mark.parametrize("victim", ["directory", "template"])
def test_templates_others_can_write_are_refused(tmp_path, write_config, run, victim):
    templates = tmp_path / "templates"
    templates.mkdir(mode=0o755)
    (templates / "new_ticket.txt").write_text("Subject: {subject}\n\nWe have it.\n")
    config = maildir_config(write_config, tmp_path, templates_dir="templates")
    target = templates if victim == "directory" else templates / "new_ticket.txt"
    target.chmod(0o777 if victim == "directory" else 0o666)

    result = run("fetch", config=config)

    assert result.exit_code == 2 and f"fix: chmod go-w {target}" in result.stderr
    target.chmod(0o755 if victim == "directory" else 0o644)
    assert run("fetch", config=config).exit_code == 0


def test_a_token_store_others_can_write_is_refused(oauth_dovecot, idp, mail_user, write_config,
                                                   run):
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    store = token_file(config, "o").parent
    store.chmod(0o777)

    result = run("fetch", config=config)

    assert result.exit_code == 2
    assert f"{store}: can be written by group or others (mode 777)" in result.stderr
    assert f"fix: chmod go-w {store}" in result.stderr
    assert idp.provider.requests == []  # the tokens were not used
