"""Maildir end to end (spec §4)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from tests.mails import message, message_id_of

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


def test_a_maildir_that_does_not_exist_is_a_configuration_error_of_its_account(
        tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Disk full")])
    gone = tmp_path / "Mailbox"  # a slip for Maildir
    config = write_config([{"name": "typo", "protocol": "maildir", "path": "Mailbox"},
                           {"name": "local", "protocol": "maildir", "path": str(box)}])

    result = run("fetch", config=config)

    assert result.exit_code == 2  # a configuration error, spec §3
    assert (f"{config}: account 'typo': key 'path': the Maildir {gone} does not exist; correct "
            f"the path, or create it: mkdir -p {gone}/cur {gone}/new {gone}/tmp"
            ) in result.stderr
    assert not gone.exists()  # nothing is created for it
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Disk full"]
    tested = run("accounts", "test", "typo", config=config)
    assert tested.exit_code == 2 and "key 'path': the Maildir" in tested.stdout  # as fetch
    as_json = run("accounts", "test", "--json", config=config)
    assert as_json.exit_code == 2
    assert [(a["account"], a["ok"], a["config_error"]) for a in json.loads(as_json.stdout)] == [
        ("typo", False, True), ("local", True, False)]


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


def test_a_message_too_large_is_named_by_its_header_alone(tmp_path, write_config, run):
    huge = message("Huge", body="x" * 8000)
    box = make_maildir(tmp_path / "Maildir", [huge, message("Fine")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 5000})

    assert run("fetch", config=config).exit_code == 0

    [failed] = run.json("errors", "list", config=config)
    assert (failed["from"], failed["subject"], failed["message_id"]) == (
        "carol@example.org", "Huge", message_id_of(huge))
    assert "max_message_bytes" in failed["reason"]


def test_a_directory_that_is_no_maildir_fails_the_account(tmp_path, write_config, run):
    (tmp_path / "mail" / "new").mkdir(parents=True)  # no cur, no tmp: no Maildir (yet)
    config = write_config([{"name": "local", "protocol": "maildir", "path": "mail"}])

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert f"{tmp_path / 'mail'} is not a Maildir (no cur, tmp directory)" in result.stderr


def test_hostile_tags_and_references_are_filed_like_any_mail(tmp_path, write_config, run):
    """A look-alike letter in a tag (the Kelvin sign matches [A-Z] when case is ignored) and a
    reply naming 260,000 References (more than SQLite or PostgreSQL take as the parameters of
    one query): neither stops the run; the reply threads by its newest References."""
    first = message("Printer broken")
    box = make_maildir(tmp_path / "Maildir", [first])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])
    assert run("fetch", config=config).exit_code == 0
    flood = " ".join([f"<r{i}@example.org>" for i in range(260_000)]
                     + [f"<{message_id_of(first)}>"])
    (box / "new" / "2.M2P2.test").write_bytes(message("TicketID 1\u212aKKK toner"))
    (box / "new" / "3.M3P3.test").write_bytes(
        f"From: carol@example.org\r\nSubject: Re: Printer broken\r\nReferences: {flood}"
        "\r\n\r\nStill broken.\r\n".encode())

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    tickets = run.json("tickets", "list", config=config)
    assert sorted((t["subject"], t["message_count"]) for t in tickets) == [
        ("Printer broken", 2), ("TicketID 1\u212aKKK toner", 1)]


def test_a_bug_met_by_one_message_sets_it_aside_and_spares_the_rest(tmp_path, write_config, run,
                                                                     monkeypatch):
    from helpdesk_fetch.ingest import decide

    def find_ticket(parsed, tagger, **kwargs):  # a bug of ours that only this message meets
        if parsed.subject == "boom":
            raise KeyError("boom")
        return real(parsed, tagger, **kwargs)

    real = decide.find_ticket
    monkeypatch.setattr(decide, "find_ticket", find_ticket)
    box = make_maildir(tmp_path / "Maildir", [message("boom"), message("Backup failed")])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert "unexpected error (please report it): 'boom'" in result.stderr
    assert "KeyError" not in result.stderr  # a user reads what happened, not Python's names
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Backup failed"]
    [failed] = run.json("errors", "list", config=config)
    assert failed["reason"] == "unexpected error (please report it): 'boom'"
    assert len(list((box / ".HD Error Messages" / "cur").iterdir())) == 1


def test_an_error_maildir_that_cannot_be_made_blocks_nothing(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Huge", body="x" * 8000), message("Fine")])
    (box / ".HD Error Messages").write_text("a file where the folder should be")
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 5000})

    result = run("fetch", config=config)

    assert result.exit_code == 1, result.output
    assert "cannot move" in result.stderr and "stays in the mailbox" in result.stderr
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Fine"]
    assert len(list((box / "new").iterdir())) == 1
    [failed] = run.json("errors", "list", config=config)
    assert failed["place"] == "mailbox" and failed["location"].startswith("left in the mailbox")


def left_in_the_mailbox(tmp_path, write_config, run) -> tuple[Path, Path, dict]:
    """A Maildir whose error folder cannot be made, and a message too large that a run could
    not set aside: the Maildir, the accounts file, and the failure as `errors list` has it."""
    box = make_maildir(tmp_path / "Maildir", [message("Huge", body="x" * 8000)])
    (box / ".HD Error Messages").write_text("a file where the folder should be")
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 5000})
    assert run("fetch", config=config).exit_code == 1
    [failed] = run.json("errors", "list", config=config)
    return box, config, failed


def test_a_failure_left_in_the_mailbox_is_acted_on_only_if_it_is_the_message(tmp_path,
                                                                            write_config, run):
    """errors dismiss/retry/show of a message the mailbox refused to set aside find it by its
    key where it came from, and make sure it is that message (its size, or its hash): another
    under the same key is left alone."""
    box, config, failed = left_in_the_mailbox(tmp_path, write_config, run)
    [path] = (box / "new").iterdir()
    assert run("errors", "show", str(failed["id"]), "--raw", config=config).stdout_bytes == \
        path.read_bytes()  # read where it was left
    path.write_bytes(message("Someone else's"))  # not the message any more

    dismissed = run("errors", "dismiss", str(failed["id"]), config=config)

    assert path.exists() and b"Someone else's" in path.read_bytes()
    assert "no longer in the mailbox it came from" in dismissed.output, dismissed.output


def test_a_failure_whose_message_is_stored_after_all_waits_no_more(tmp_path, write_config, run,
                                                                   open_db):
    """A message left in the mailbox whose key is stored (an older version stored it and kept
    the failure pending, or a run died between storing and deleting): the run that deletes
    it as stored resolves its failure."""
    from helpdesk_fetch.store import write

    box, config, failed = left_in_the_mailbox(tmp_path, write_config, run)
    open_db()
    write.remember_key("local", failed["source_key"], None)

    assert run("fetch", config=config).exit_code == 0

    assert list((box / "new").iterdir()) == []
    assert run.json("errors", "list", config=config) == []


def test_ingest_disabled_during_a_run_stops_it_at_the_next_account(tmp_path, write_config,
                                                                   run):
    """A run that started before `ingest disable` takes no further account (db copy relies
    on it): the switch is read again under each account's lock."""
    from helpdesk_fetch import config as config_module
    from helpdesk_fetch import state
    from helpdesk_fetch.ingest import run as ingest

    make_maildir(tmp_path / "one", [message("Before the switch")])
    make_maildir(tmp_path / "two", [message("After the switch")])
    path = write_config([{"name": "one", "protocol": "maildir", "path": "one"},
                         {"name": "two", "protocol": "maildir", "path": "two"}])
    loaded = config_module.load(path)

    class SwitchOffAfterTheFirst(ingest.Progress):
        def account_finished(self, report):
            state.disable_ingest(loaded.settings.state_dir, "moving")

    report = ingest.fetch(loaded, progress=SwitchOffAfterTheFirst())

    assert [a.outcome for a in report.accounts] == ["ok", "busy"]
    assert [t["subject"] for t in run.json("tickets", "list", config=path)] == [
        "Before the switch"]
    assert len(list((tmp_path / "two" / "new").iterdir())) == 1


def test_a_symbolic_link_is_set_aside_unread(tmp_path, write_config, run):
    """Whoever can deliver into the Maildir could link a file only this user may read: it must
    not become a ticket (issue 20.7)."""
    private = tmp_path / "private.txt"
    private.write_text("Subject: stolen\n\nTOP SECRET of the service user\n")
    private.chmod(0o600)
    box = make_maildir(tmp_path / "Maildir", [message("Real mail")])
    (box / "new" / "2.M1P1.link").symlink_to(private)
    (box / "cur" / "3.M1P1.link:2,S").symlink_to(private)
    (box / "new" / "4.M1P1.dir").symlink_to(tmp_path)
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Real mail"]
    assert "TOP SECRET" not in result.output + run("tickets", "show", "1001", config=config).output
    aside = box / ".HD Error Messages" / "cur"
    assert sorted(p.name for p in aside.iterdir() if p.is_symlink()) == [
        "2.M1P1.link", "3.M1P1.link:2,S", "4.M1P1.dir"]
    assert private.read_text().startswith("Subject: stolen")  # untouched, still there
    failed = run.json("errors", "list", config=config)
    assert len(failed) == 3 and all("symbolic link" in f["reason"] for f in failed)
    assert [f["subject"] for f in failed] == ["", "", ""]  # not even a header read through one
    assert f"a symbolic link (to {private}), not a message: never read" in result.stderr
    retried = run("errors", "retry", "--all", config=config)
    assert retried.exit_code == 1 and "symbolic link" in retried.output
    assert "TOP SECRET" not in retried.output
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Real mail"]


def test_a_file_that_became_a_link_after_the_listing_is_not_read(tmp_path):
    from helpdesk_fetch.config import Account
    from helpdesk_fetch.sources.maildir import MaildirMailbox

    private = tmp_path / "private.txt"
    private.write_text("TOP SECRET")
    box = make_maildir(tmp_path / "Maildir", [message("One"), message("Two")])
    account = Account(name="local", protocol="maildir", path=str(box))
    with MaildirMailbox(account, password=None, timeout=5, error_folder="HD") as mailbox:
        refs = mailbox.list()
        refs[0].handle.unlink()
        refs[0].handle.symlink_to(private)  # swapped between listing and reading
        os.mkfifo(refs[1].handle.with_name("fifo"))
        fifo = dataclasses.replace(refs[1], key="maildir:fifo",
                                   handle=refs[1].handle.with_name("fifo"))

        read = list(mailbox.fetch([refs[0], fifo, refs[1]]))  # and a FIFO never blocks

    assert [raw.count(b"TOP SECRET") for _, raw in read] == [0]
    assert [ref.key for ref, _ in read] == [refs[1].key]
