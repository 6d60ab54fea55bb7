"""Maildir end to end (spec §4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mails import message

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


def make_maildir(path: Path, messages: list[bytes]) -> Path:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(messages):
        (path / "new" / f"17643{index:05d}.M{index}P1.test").write_bytes(raw)
    return path


def test_maildir_mail_becomes_tickets(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Disk full"), message("Backup failed")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert list((box / "new").iterdir()) == []
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Disk full", "Backup failed"]


def test_relative_maildir_path_is_relative_to_the_accounts_file(tmp_path, write_config, run):
    make_maildir(tmp_path / "mail", [message("Relative")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "mail"}])

    assert run("fetch", config=config).exit_code == 0
    assert len(run.json("tickets", "list", config=config)) == 1


def test_failed_message_moves_to_the_error_maildir(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Fine"), b"", message("Also fine")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])

    result = run("fetch", config=config)

    assert result.exit_code == 0
    assert "message is empty" in result.stderr
    errors = list((box / ".HD Error Messages" / "cur").iterdir())
    assert len(errors) == 1 and errors[0].read_bytes() == b""
    assert len(run.json("tickets", "list", config=config)) == 2


def test_missing_maildir_fails_the_account(tmp_path, write_config, run):
    config = write_config([{"name": "local", "protocol": "maildir", "path": "nowhere"}])

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert "not a Maildir" in result.stderr
