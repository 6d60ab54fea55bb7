"""Overlapping runs (spec §4.7): two `fetch` processes started together on the same accounts,
round after round with new mail in between, on every server of the matrix: no message is ingested
twice and none is lost. A run killed while it holds an account's lock never blocks the runs after
it (Dovecot: the lock is ours, not the server's)."""

from __future__ import annotations

import fcntl

import pytest

from tests.chaos import (
    KILLED,
    Load,
    assert_exactly_once,
    assert_nothing_lost,
    fetch,
    final_state,
    mixed_load,
    on_server,
    start_fetch,
)

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow

ROUNDS = {"dovecot": 8}  # rounds per server; 4 elsewhere (each round starts two processes)


def test_two_runs_started_together_share_the_work(imap_server, mail_user, write_config,
                                                  tmp_path):
    """On every server of the matrix: each also serves POP3 (Dovecot's variants differ only in
    IMAP)."""
    boxes = {"imap-a": "imap", "imap-b": "imap", "pop": "pop3"}
    users = {name: f"{mail_user}-{name}" for name in boxes}
    loads = {name: Load() for name in boxes}
    config = write_config([imap_server.account(name, users[name], protocol=protocol)
                           for name, protocol in boxes.items()],
                          settings={"max_message_bytes": 20_000})
    database = tmp_path / "helpdesk.db"
    skipped = 0
    for number in range(ROUNDS.get(imap_server.name, 4)):
        for name in boxes:
            new = mixed_load(f"{users[name]}-r{number}", good=4, bad=number % 3 == 0)
            loads[name] += new
            imap_server.append(users[name], new.all)

        runs = [start_fetch(config, verbose=True), start_fetch(config, verbose=True)]
        results = [(proc.wait(120), proc.communicate()[1]) for proc in runs]

        for code, stderr in results:
            assert code in (0, 75), f"round {number}: exit {code}: {stderr}"
            skipped += stderr.count("skipped, another run is processing it")
        for name in boxes:
            assert_nothing_lost(loads[name], database, on_server(imap_server, users[name]),
                                f"round {number}, {name}", account=name)

    assert skipped > 0, "the two runs never overlapped"
    assert fetch(config).returncode == 0
    for name, protocol in boxes.items():
        assert_exactly_once(loads[name], database,
                            *final_state(imap_server, users[name], protocol), name, account=name)


def test_a_killed_run_never_blocks_later_runs(dovecot, mail_user, write_config, tmp_path):
    load = mixed_load(mail_user, good=6)
    dovecot.append(mail_user, load.all)
    config = write_config([dovecot.account("box", mail_user)],
                          settings={"max_message_bytes": 20_000})

    assert fetch(config, crash_at="after_fetch:3").returncode == KILLED

    lock = tmp_path / "locks" / "box.lock"
    with open(lock, "a") as handle:  # the kernel dropped the dead run's lock with the process
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    result = fetch(config)
    assert result.returncode == 0, result.stderr
    assert_exactly_once(load, tmp_path / "helpdesk.db", *final_state(dovecot, mail_user, "imap"))
