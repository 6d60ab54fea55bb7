"""``errors list/show/retry`` end to end: a poison message lands in its error place, is listed
with its reason, the cause is fixed, retry ingests it, the error place is empty, nothing doubles."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.mails import message, message_id_of
from tests.proc import environment, helpdesk_fetch
from tests.test_ingest_maildir import make_maildir

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

ERROR_FOLDER = "HD Error Messages"
BLANK = b"\r\n \r\n"  # nothing in it at all: no version of the tool can ingest it


def move_by_hand(client, uids: list[int], folder: str) -> None:
    """What a mail client does: MOVE, or COPY + delete where the server has no MOVE."""
    if client.has_capability("MOVE"):
        return client.move(uids, folder)
    client.copy(uids, folder)
    client.delete_messages(uids)
    client.expunge()


def test_imap_error_folder_retry_after_raising_the_limit(imap_server, mail_user, write_config, run):
    errors = imap_server.folder(ERROR_FOLDER)  # inside the server's namespace
    account = imap_server.account("helpdesk", mail_user)
    config = write_config([account], settings={"max_message_bytes": 5000})
    big = message("Huge log file", body="x" * 8000)
    imap_server.append(mail_user, [message("Small"), big, BLANK])
    assert run("fetch", config=config).exit_code == 0
    assert imap_server.messages(mail_user, errors) == [big, BLANK]

    listed = run.json("errors", "list", config=config)
    assert [(e["account"], e["place"], e["subject"]) for e in listed] == [
        ("helpdesk", "imap", "Huge log file"), ("helpdesk", "imap", "")]  # by its header
    assert "over max_message_bytes (5000)" in listed[0]["reason"]
    assert "empty" in listed[1]["reason"] and listed[1]["copy_in_database"] is True
    assert run("errors", "show", str(listed[0]["id"]), "--raw", config=config).stdout_bytes == big
    shown = run("errors", "show", str(listed[0]["id"]), config=config).output
    assert "  sha256:      (not downloaded)\n" in shown  # too large: read by its header alone
    assert all(line == line.rstrip() for line in shown.splitlines())
    text = run("errors", "list", config=config).output
    assert "helpdesk" in text and "max_message_bytes" in text

    write_config([account], settings={"max_message_bytes": 50000})  # the fix
    result = run("errors", "retry", "--all", config=config)

    assert result.exit_code == 1  # the blank message still fails
    assert f"{listed[0]['id']} (helpdesk): ingested -> ticket" in result.output
    assert (f"{listed[1]['id']} (helpdesk): still fails: cannot be parsed: the message is "
            "empty") in result.output
    assert f"(what no fix will make ingestible: helpdesk-fetch errors dismiss " \
           f"{listed[1]['id']})" in result.output
    assert imap_server.messages(mail_user, errors) == [BLANK]
    tickets = run.json("tickets", "list", config=config)
    assert [t["subject"] for t in tickets] == ["Small", "Huge log file"]
    waiting = run.json("errors", "list", config=config)
    assert [(e["id"], e["attempts"]) for e in waiting] == [(listed[1]["id"], 2)]

    again = run("errors", "retry", str(listed[0]["id"]), config=config)
    assert again.exit_code == 0 and "already stored" in again.output
    assert run("fetch", config=config).exit_code == 0
    assert len(run.json("tickets", "list", config=config)) == 2
    assert run.json("status", config=config)["error_messages"] == 1


def test_imap_retry_killed_after_commit_doubles_nothing(imap_server, mail_user, write_config, run):
    errors = imap_server.folder(ERROR_FOLDER)  # inside the server's namespace
    account = imap_server.account("helpdesk", mail_user)
    config = write_config([account], settings={"max_message_bytes": 3000})
    big = message("Crash test", body="y" * 4000)
    imap_server.append(mail_user, [big])
    run("fetch", config=config)
    write_config([account], settings={"max_message_bytes": 30000})

    killed = helpdesk_fetch("errors", "retry", "--all", config=config,
                            env=environment(HELPDESK_FETCH_CRASH_AT="after_commit"))

    assert killed.returncode == -9
    assert imap_server.messages(mail_user, errors) == [big]  # stored, not yet removed
    assert run("errors", "retry", "--all", config=config).exit_code == 0
    assert imap_server.messages(mail_user, errors) == []
    tickets = run.json("tickets", "list", config=config)
    assert len(tickets) == 1 and tickets[0]["message_count"] == 1
    assert run.json("errors", "list", config=config) == []


def test_imap_message_found_again_when_moved_back_by_hand(imap_server, mail_user, write_config,
                                                          run):
    """UIDs change on every move; the recorded hash still finds the message, not a look-alike."""
    errors = imap_server.folder(ERROR_FOLDER)  # inside the server's namespace
    config = write_config([imap_server.account("helpdesk", mail_user)])
    imap_server.append(mail_user, [BLANK])
    run("fetch", config=config)
    [before] = run.json("errors", "list", config=config)
    look_alike = b"\r\n\t\r\n"  # the same size, other bytes, a lower UID
    imap_server.append(mail_user, [look_alike], folder=errors)
    client = imap_server.imap(mail_user)
    client.select_folder(errors)
    move_by_hand(client, client.search(["LARGER", 0])[:1], "INBOX")
    client.select_folder("INBOX")
    move_by_hand(client, client.search("ALL"), errors)
    client.logout()
    assert imap_server.messages(mail_user, errors) == [look_alike, BLANK]

    result = run("errors", "retry", "--all", config=config)

    assert "still fails: cannot be parsed" in result.output
    [after] = run.json("errors", "list", config=config)
    assert after["attempts"] == 2 and after["sha256"] == before["sha256"]
    assert imap_server.messages(mail_user, errors) == [look_alike, BLANK]


def test_an_error_folder_deleted_by_hand_leaves_retry_the_copies(imap_server, mail_user,
                                                                   write_config, run):
    """An administrator tidying up deletes the whole error folder in a mail program: retry
    works from the copies in the database, and dismiss gives up on the others."""
    errors = imap_server.folder(ERROR_FOLDER)  # inside the server's namespace
    config = write_config([imap_server.account("helpdesk", mail_user)],
                          settings={"max_message_bytes": 3000})
    imap_server.append(mail_user, [BLANK, message("Too big to keep", body="w" * 5000)])
    assert run("fetch", config=config).exit_code == 0
    big, blank = sorted(run.json("errors", "list", config=config), key=lambda e: e["subject"],
                        reverse=True)
    assert (blank["copy_in_database"], big["copy_in_database"]) == (True, False)
    client = imap_server.imap(mail_user)
    client.delete_folder(errors)
    client.logout()

    retried = run("errors", "retry", str(blank["id"]), config=config)
    dismissed = run("errors", "dismiss", str(big["id"]), config=config)

    assert "still fails: cannot be parsed: the message is empty" in retried.output  # the copy
    assert dismissed.exit_code == 0, dismissed.output
    assert (f"{big['id']} (helpdesk): dismissed: no longer in the IMAP error folder; its "
            "record is kept") in dismissed.output
    assert [e["id"] for e in run.json("errors", "list", config=config)] == [blank["id"]]


def test_pop3_remembered_uidl_retry(pop3_server, mail_user, write_config, run):
    account = pop3_server.account("pop", mail_user, protocol="pop3")
    config = write_config([account], settings={"max_message_bytes": 6000})
    big = message("Too big for POP3", body="z" * 9000)
    pop3_server.append(mail_user, [message("Small one"), big])
    run("fetch", config=config)
    assert pop3_server.messages(mail_user) == [big]
    [failed] = run.json("errors", "list", config=config)
    assert failed["place"] == "pop3" and "max_message_bytes" in failed["reason"]

    write_config([account], settings={"max_message_bytes": 60000})
    result = run("errors", "retry", str(failed["id"]), config=config)

    assert result.exit_code == 0, result.output
    assert pop3_server.messages(mail_user) == []
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Small one", "Too big for POP3"]
    assert run("errors", "retry", "--all", config=config).exit_code == 0
    assert run("fetch", config=config).exit_code == 0
    assert len(run.json("tickets", "list", config=config)) == 2
    assert run.json("status", config=config)["error_messages"] == 0


def test_maildir_error_folder_retry(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [message("Fine"), message("Big", body="b" * 7000),
                                              b""])
    account = {"name": "local", "protocol": "maildir", "path": str(box)}
    config = write_config([account], settings={"max_message_bytes": 4000})
    run("fetch", config=config)
    error_dir = box / f".{ERROR_FOLDER}" / "cur"
    assert len(list(error_dir.iterdir())) == 2
    assert [e["place"] for e in run.json("errors", "list", config=config)] == ["maildir"] * 2

    write_config([account], settings={"max_message_bytes": 40000})
    result = run("errors", "retry", "--all", config=config)

    assert "ingested -> ticket" in result.output and "still fails" in result.output
    assert [p.read_bytes() for p in error_dir.iterdir()] == [b""]
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Fine", "Big"]
    run("errors", "retry", "--all", config=config)
    assert len(run.json("tickets", "list", config=config)) == 2
    history = run.json("errors", "list", "--all", config=config)
    assert sorted(e["state"] for e in history) == ["pending", "resolved"]


def test_retry_with_an_accounts_file_that_lost_its_accounts_is_a_configuration_error(
        tmp_path, write_config, run):
    """A file that defines no account (cut short, the wrong file): retry says so for each
    mailbox failure, not "no such account" (what deliver set aside would still be retried)."""
    box = make_maildir(tmp_path / "Maildir", [message("Big", body="b" * 7000)])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 4000})
    run("fetch", config=config)
    write_config([], settings={"max_message_bytes": 40000})

    result = run("errors", "retry", "--all", config=config)

    assert result.exit_code == 1, result.output
    assert "defines no [[accounts]] table" in result.output
    assert len(run.json("errors", "list", config=config)) == 1


def test_a_retried_copy_of_a_stored_mail_is_named_as_one(tmp_path, write_config, run):
    """The same mail through a second account (spec §4.1), too large there for the first run
    (a relay's long header): retried, it is said to be a copy of the message stored, not just
    "stored before"."""
    date = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    mail = message("Printer broken", message_id="<m1@example.org>", date=date)
    relayed = mail.replace(b"Subject:", b"X-Relay-Trace: " + b"r" * 5000 + b"\r\nSubject:")
    boxes = [make_maildir(tmp_path / name, [raw]) for name, raw in (("a", mail), ("b", relayed))]
    accounts = [{"name": name, "protocol": "maildir", "path": str(box)}
                for name, box in zip("ab", boxes, strict=True)]
    config = write_config(accounts, settings={"max_message_bytes": 4000})
    run("fetch", config=config)
    write_config(accounts, settings={"max_message_bytes": 40000})

    result = run("errors", "retry", "--all", config=config)

    assert ("a copy of a message on ticket 1001, stored before through this or another account"
            in " ".join(result.output.split()))
    assert len(run.json("tickets", "list", config=config)) == 1


def test_message_removed_from_the_error_folder_by_hand_comes_from_the_copy(
        tmp_path, write_config, run):
    """A copy kept in the database is enough: nothing the sender wrote is lost."""
    box = make_maildir(tmp_path / "Maildir", [b"\n\n"])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])
    run("fetch", config=config)
    [failed] = run.json("errors", "list", config=config)
    for path in (box / f".{ERROR_FOLDER}" / "cur").iterdir():
        path.unlink()

    shown = run("errors", "show", str(failed["id"]), "--raw", config=config)

    assert shown.exit_code == 0 and shown.stdout_bytes == b"\n\n"


def test_errors_show_and_usage(tmp_path, write_config, run):
    raw = message("Broken", body="k" * 3000)
    box = make_maildir(tmp_path / "Maildir", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 1000})
    run("fetch", config=config)
    [failed] = run.json("errors", "list", config=config)

    shown = run("errors", "show", str(failed["id"]), config=config)
    data = run.json("errors", "show", str(failed["id"]), config=config)

    assert "max_message_bytes" in shown.output and "errors retry" in shown.output
    assert data["account"] == "local" and data["state"] == "pending"
    assert run("errors", "show", str(failed["id"]), "--raw", config=config).stdout_bytes == raw
    assert run("errors", "show", "999", config=config).exit_code == 2
    assert run("errors", "retry", config=config).exit_code == 2
    assert run("errors", "retry", "999", config=config).exit_code == 2


def test_retry_refuses_while_ingest_is_disabled(tmp_path, write_config, run):
    box = make_maildir(tmp_path / "Maildir", [b""])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}])
    run("fetch", config=config)
    run("ingest", "disable", config=config)

    result = run("errors", "retry", "--all", config=config)

    assert result.exit_code == 1 and "ingest is disabled" in result.stderr
    assert len(list((box / f".{ERROR_FOLDER}" / "cur").iterdir())) == 1


def test_message_ids_are_what_errors_list_shows(tmp_path, write_config, run):
    raw = message("Tagged", body="m" * 3000)
    box = make_maildir(tmp_path / "Maildir", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                          settings={"max_message_bytes": 1000})
    run("fetch", config=config)
    assert run.json("errors", "list", config=config)[0]["message_id"] == message_id_of(raw)
    write_config([{"name": "local", "protocol": "maildir", "path": str(box)}],
                 settings={"max_message_bytes": 10000})
    run("errors", "retry", "--all", config=config)
    ticket = run.json("tickets", "list", config=config)[0]
    shown = run.json("tickets", "show", ticket["number"], config=config)
    assert shown["messages"][0]["message_id"] == message_id_of(raw)


def test_dismiss_keeps_a_copy_and_clears_the_pop3_server(pop3_server, mail_user, write_config,
                                                          run):
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")],
                          settings={"max_message_bytes": 3000})
    big = message("Spam with a video", body="v" * 5000)
    pop3_server.append(mail_user, [BLANK, big])
    run("fetch", config=config)
    waiting = run.json("errors", "list", config=config)
    [big_id] = [e["id"] for e in waiting if "max_message_bytes" in e["reason"]]
    [blank_id] = [e["id"] for e in waiting if "empty" in e["reason"]]

    result = run("errors", "dismiss", str(blank_id), str(big_id), config=config)

    assert result.exit_code == 0, result.output
    assert "dismissed: removed from the POP3 server; its copy is kept for 90 days" in \
        result.output
    assert pop3_server.messages(mail_user) == []
    assert run.json("errors", "list", config=config) == []
    history = run.json("errors", "list", "--all", config=config)
    assert [e["state"] for e in history] == ["dismissed", "dismissed"]
    assert run("errors", "show", str(big_id), "--raw", config=config).stdout_bytes == big
    assert run("fetch", config=config).exit_code == 0
    assert run.json("errors", "list", config=config) == []
    again = run("errors", "retry", str(big_id), config=config)
    assert again.exit_code == 0 and "dismissed earlier" in again.output
    assert run.json("tickets", "list", config=config) == []


def test_dismiss_from_the_imap_error_folder(imap_server, mail_user, write_config, run):
    errors = imap_server.folder(ERROR_FOLDER)  # inside the server's namespace
    config = write_config([imap_server.account("helpdesk", mail_user)],
                          settings={"max_message_bytes": 3000})
    big = message("Too big to keep", body="w" * 5000)
    imap_server.append(mail_user, [big])
    run("fetch", config=config)
    [failed] = run.json("errors", "list", config=config)
    assert failed["copy_in_database"] is False

    assert run("errors", "dismiss", str(failed["id"]), config=config).exit_code == 0

    assert imap_server.messages(mail_user, errors) == []
    [dismissed] = run.json("errors", "list", "--all", config=config)
    assert dismissed["copy_in_database"] is True
    [row] = run("errors", "list", "--all", config=config).stdout.splitlines()[1:]
    assert "dismissed" in row and "imap" not in row  # it waits nowhere now
    assert run("errors", "show", str(failed["id"]), "--raw", config=config).stdout_bytes == big


def test_the_quarantine_lock_is_this_machines_not_an_account_named_quarantine(
        tmp_path, database_url, write_config, run):
    """An account may be called "quarantine"; its run must not hold up `errors retry` of the
    quarantine of `deliver`, which is local to each machine anyway."""
    from helpdesk_fetch import state
    from helpdesk_fetch.store import db
    from tests.pgserver import PASSWORD

    config = write_config([], settings={"max_message_bytes": 2000})
    big = message("Core dump attached", body="c" * 5000)
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=big).returncode == 65
    write_config([], settings={"max_message_bytes": 20000})
    other = db.connect(database_url, password=PASSWORD if "postgresql" in database_url else None)

    with state.account_lock("quarantine", state_dir=tmp_path, database=other):
        result = run("errors", "retry", "--all", config=config)

    other.close()
    assert "ingested -> ticket" in result.output, result.output
    assert state.quarantine_lock() != "quarantine" and "@" in state.quarantine_lock()
