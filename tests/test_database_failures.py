"""The database (spec §4.1): a message is committed to disk before the server is told to delete
it, and a database that cannot be written — a full disk, a read-only file or file system — makes
the run fail cleanly: exit 1, a message that says what happened and what to do, and nothing
deleted from the mailbox.

The disks are real: a small tmpfs the test mounts (as root; CI runs as root), filled with a
file or remounted read-only, or the database file made immutable with chattr +i (root ignores
mode bits, so chmod would prove nothing). Durability is watched with strace: every write to the
write-ahead log must be fsynced before the command that deletes on the server is sent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.chaos import (
    assert_exactly_once,
    assert_nothing_lost,
    fetch,
    mixed_load,
)
from tests.mails import message
from tests.proc import helpdesk_fetch

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow


@pytest.fixture
def disk(tmp_path):
    """A fresh 8 MiB tmpfs of the test's own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs (these tests run as root): {done.stderr}"
    yield mount
    subprocess.run(["chattr", "-R", "-i", str(mount)], capture_output=True)
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory, *, leave: int) -> None:
    """Fill the file system of *directory* until about *leave* bytes are free."""
    with open(directory / "filler", "wb") as handle:
        try:
            while shutil.disk_usage(directory).free > leave:
                handle.write(b"\0" * min(65536, max(4096, shutil.disk_usage(directory).free
                                                      - leave)))
                handle.flush()
        except OSError:
            pass


def attachment_load(tag: str, count: int, size: int):
    load = mixed_load(tag, good=0, bad=False)
    load.good = [message(f"{tag} {i}", attachments=[(f"a{i}.bin", "application/octet-stream",
                                                     os.urandom(size))]) for i in range(count)]
    return load


@pytest.fixture
def mailbox_on(dovecot, mail_user, write_config):
    """An account over *protocol* whose database lives in *directory*; the database is created
    by a first run with an empty mailbox."""

    def make(directory, protocol="imap"):
        config = write_config([dovecot.account("box", mail_user, protocol=protocol)],
                              settings={"database": f"sqlite:///{directory}/helpdesk.db"})
        assert fetch(config).returncode == 0
        return config

    return make


def check_clean_failure(result, dovecot, user, load, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    for text in ("helpdesk-fetch: ", *expected, "messages not stored stay on their server"):
        assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert dovecot.messages(user) == load.all  # all there, none even flagged \Deleted


def assert_leads_with_the_disk(result, disk) -> None:
    """The full disk comes first, right after what was being done; SQLite's own words (often
    about a rollback, or a "disk I/O error") only after it."""
    said = re.search(r"helpdesk-fetch: cannot [a-z ]+(sqlite:///\S+)?: (.*)", result.stderr)
    assert said and said.group(2).startswith(f"the disk holding {disk} is full"), result.stderr
    assert "(SQLite: " in said.group(2)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_disk_fills_up_during_the_run(disk, dovecot, mail_user, mailbox_on, protocol):
    config = mailbox_on(disk, protocol)
    load = attachment_load(mail_user, count=6, size=300_000)
    dovecot.append(mail_user, load.all)
    fill(disk, leave=900_000)  # room for a message or two, not for six

    result = fetch(config)

    check_clean_failure(result, dovecot, mail_user, load, "full", "free some space")
    assert_leads_with_the_disk(result, disk)
    assert_nothing_lost(load, disk / "helpdesk.db", dovecot.messages(mail_user))
    os.remove(disk / "filler")
    assert fetch(config).returncode == 0
    assert_exactly_once(load, disk / "helpdesk.db", dovecot.messages(mail_user), [])


def test_full_disk_before_the_run(disk, dovecot, mail_user, mailbox_on):
    config = mailbox_on(disk)
    load = mixed_load(mail_user, good=3, bad=False)
    dovecot.append(mail_user, load.all)
    fill(disk, leave=0)

    result = fetch(config)

    check_clean_failure(result, dovecot, mail_user, load, "is full", "free some space")
    assert_leads_with_the_disk(result, disk)
    os.remove(disk / "filler")
    assert fetch(config).returncode == 0
    assert_exactly_once(load, disk / "helpdesk.db", dovecot.messages(mail_user), [])


@pytest.mark.parametrize("how", ["immutable file", "read-only mount"])
def test_read_only_database(how, disk, dovecot, mail_user, mailbox_on):
    config = mailbox_on(disk)
    load = mixed_load(mail_user, good=3, bad=False)
    dovecot.append(mail_user, load.all)
    if how == "immutable file":
        subprocess.run(["chattr", "+i", str(disk / "helpdesk.db")], check=True)
        expected = "writable"
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        expected = "mounted read-only"

    result = fetch(config)

    check_clean_failure(result, dovecot, mail_user, load, expected)
    subprocess.run(["chattr", "-i", str(disk / "helpdesk.db")], capture_output=True)
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert fetch(config).returncode == 0
    assert_exactly_once(load, disk / "helpdesk.db", dovecot.messages(mail_user), [])


# -- durability: the commit is on disk before the server deletes --------------------------------

_CALL = re.compile(r"^(?:\d+ +)?(\w+)\((\d+)<([^>]*)>(.*)$")


def traced_fetch(config, log):
    """fetch under strace: WAL writes and syncs, and what is sent over the network."""
    done = helpdesk_fetch("fetch", config=config, text=True, wrapper=(
        "strace", "-f", "-qq", "-yy", "-s", "256", "-o", str(log), "-e",
        "trace=pwrite64,write,fsync,fdatasync,sendto"))
    assert done.returncode == 0, done.stderr
    events = []
    for line in log.read_text().splitlines():
        found = _CALL.match(line)
        if found:
            call, _, target, rest = found.groups()
            events.append((call, target, rest))
    return events


@pytest.mark.parametrize(("protocol", "deleting"), [("imap", ("Deleted", "EXPUNGE")),
                                                    ("pop3", ("DELE ", "QUIT"))],
                         ids=["imap", "pop3"])
def test_commit_is_on_disk_before_the_server_deletes(dovecot, mail_user, write_config, tmp_path,
                                                     protocol, deleting):
    load = mixed_load(mail_user, good=5, bad=False)
    dovecot.append(mail_user, load.all)
    config = write_config([dovecot.account("box", mail_user, protocol=protocol,
                                           security="none")])

    events = traced_fetch(config, tmp_path / "strace.log")

    unsynced = synced = deletes = 0
    for call, target, rest in events:
        if target.endswith("helpdesk.db-wal"):
            if call in ("fsync", "fdatasync"):
                unsynced, synced = 0, synced + 1
            elif call in ("pwrite64", "write"):
                unsynced += 1
        elif target.startswith("TCP:") and any(command in rest for command in deleting):
            deletes += sum(rest.count(command) for command in deleting)  # POP3: pipelined
            assert unsynced == 0, f"{deleting} sent with {unsynced} WAL writes not yet synced"
            assert synced > 0, f"{deleting} sent before any commit reached the disk"
    assert deletes >= (2 if protocol == "imap" else len(load.good) + 1)
    assert_exactly_once(load, tmp_path / "helpdesk.db", dovecot.messages(mail_user), [])
