"""Crash consistency (spec §4.1, §4.2): `fetch` killed with SIGKILL at every named crash point of
helpdesk_fetch.faults (inside an open commit group too: ``in_group``), over IMAP (with MOVE, and
without it: COPY + delete) and POP3 on every server of the matrix, and at random moments over
many rounds (Dovecot, and Courier for a server without MOVE). After the crash nothing is lost;
after the next clean run every good message is exactly one ticket message, the mailbox is empty
and only the bad messages are set aside (each once)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpdesk_fetch.faults import POINTS
from tests import hostile_shapes
from tests.chaos import (
    KILLED,
    LIMIT,
    Load,
    assert_exactly_once,
    assert_nothing_lost,
    failed_count,
    fetch,
    final_state,
    mixed_load,
    on_server,
    start_fetch,
)
from tests.conftest import IMAP_SERVERS, POP3_SERVERS

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow


def interleaved(load: Load) -> list[bytes]:
    """The bad messages among the good ones, so that the run must step over them."""
    good, bad = load.good, load.bad
    return good[:3] + bad[:1] + good[3:7] + bad[1:] + good[7:]


# (server, protocol, crash point), on every server of the matrix (tests/SERVERS.md): each point
# the server's way passes. Without MOVE (dovecot-nomove, courier) a set-aside is COPY, then
# \Deleted, then an expunge, so there the copy's points come in too, and some points twice, to
# die both in a set-aside and in deleting a batch.
WITHOUT_MOVE = ("dovecot-nomove", "courier")
CASES = [
    *((server, "imap", point) for server in IMAP_SERVERS
      for point in ("after_fetch:4", "mid_transaction:4", "in_group:4", "after_commit:4",
                    "after_flag_deleted")),
    ("dovecot", "imap", "after_commit:1"),
    *((server, "imap", point) for server in WITHOUT_MOVE
      for point in ("after_copy:1",  # setting aside the oversized message
                    "after_copy:2",  # setting aside the empty message
                    "after_flag_deleted:2",  # the empty message, copied and flagged
                    "after_flag_deleted:3")),  # deleting the first batch
    *((server, "pop3", point) for server in POP3_SERVERS
      for point in ("after_fetch:4", "mid_transaction:4", "in_group:4", "after_commit:4",
                    "after_pop3_dele")),
]


def test_every_crash_point_is_tested():
    assert {point.split(":")[0] for _, _, point in CASES} == set(POINTS)


@pytest.mark.parametrize(("name", "protocol", "point"), CASES,
                         ids=[f"{s}-{p}-{c}" for s, p, c in CASES])
def test_crash_then_clean_run(name, protocol, point, request, mail_user, write_config,
                              tmp_path):
    server = request.getfixturevalue(name.replace("-", "_"))
    load = mixed_load(mail_user)
    server.append(mail_user, interleaved(load))
    config = write_config([server.account("box", mail_user, protocol=protocol)],
                          settings={"max_message_bytes": LIMIT})
    database = tmp_path / "helpdesk.db"

    crashed = fetch(config, crash_at=point)

    assert crashed.returncode == KILLED, f"the crash point was not reached: {crashed.stderr}"
    assert_nothing_lost(load, database, on_server(server, mail_user), f"after {point}")

    clean = fetch(config)

    assert clean.returncode == 0, clean.stderr
    assert_exactly_once(load, database, *final_state(server, mail_user, protocol), point)
    assert failed_count(database) == len(load.bad)
    again = fetch(config)
    assert (again.returncode, again.stderr) == (0, "")
    assert_exactly_once(load, database, *final_state(server, mail_user, protocol), point)


def test_random_sigkills_lose_and_double_nothing(dovecot, courier, mail_user, write_config,
                                                 tmp_path, capsys):
    """SIGKILL at a random moment, round after round, with new mail arriving in between.

    Bounded: HELPDESK_FETCH_CHAOS_ROUNDS rounds (default 15) and HELPDESK_FETCH_CHAOS_SECONDS
    (default 45) of rounds; HELPDESK_FETCH_CHAOS_SEED replays a run (the seed is printed)."""
    seed = int(os.environ.get("HELPDESK_FETCH_CHAOS_SEED") or random.randrange(2**32))
    rounds = int(os.environ.get("HELPDESK_FETCH_CHAOS_ROUNDS", "15"))
    seconds = float(os.environ.get("HELPDESK_FETCH_CHAOS_SECONDS", "45"))
    with capsys.disabled():
        print(f"\nrandom SIGKILL test: seed {seed} (HELPDESK_FETCH_CHAOS_SEED={seed} replays it)")
    rng = random.Random(seed)
    boxes = {"imap": (dovecot, "imap"), "copy": (courier, "imap"),  # Courier has no MOVE
             "pop": (dovecot, "pop3")}
    users = {name: f"{mail_user}-{name}" for name in boxes}
    loads = {name: Load() for name in boxes}
    config = write_config([server.account(name, users[name], protocol=protocol)
                           for name, (server, protocol) in boxes.items()],
                          settings={"max_message_bytes": LIMIT})
    database = tmp_path / "helpdesk.db"
    outcomes: list[int] = []
    typical = 2.0  # seconds a whole run takes; kept up to date by the runs that finish
    started = time.monotonic()
    for number in range(rounds):
        if time.monotonic() - started > seconds:
            break
        for name, (server, _) in boxes.items():
            new = mixed_load(f"{users[name]}-r{number}", good=rng.randint(1, 8),
                             bad=rng.random() < 0.3)
            loads[name] += new
            if new.all:
                server.append(users[name], rng.sample(new.all, len(new.all)))
        begun = time.monotonic()
        proc = start_fetch(config)
        with contextlib.suppress(subprocess.TimeoutExpired):  # a random moment of the run
            proc.wait(rng.uniform(0.05, typical))
        proc.kill()
        _, stderr = proc.communicate()
        outcomes.append(proc.returncode)
        assert proc.returncode in (0, KILLED), f"seed {seed}, round {number}: {stderr}"
        if proc.returncode == 0:
            typical = time.monotonic() - begun
        for name, (server, _) in boxes.items():
            assert_nothing_lost(loads[name], database, on_server(server, users[name]),
                                f"seed {seed}, round {number}, account {name}", account=name)

    clean = fetch(config)

    note = f"seed {seed} after {len(outcomes)} rounds"
    assert clean.returncode == 0, f"{note}: {clean.stderr}"
    for name, (server, protocol) in boxes.items():
        assert_exactly_once(loads[name], database, *final_state(server, users[name], protocol),
                            f"{note}, {name}", account=name)
    assert outcomes.count(KILLED) >= len(outcomes) // 2, f"{note}: too few kills: {outcomes}"
    with capsys.disabled():
        print(f"random SIGKILL test: {len(outcomes)} rounds, {outcomes.count(KILLED)} killed "
              f"mid-run, seed {seed}")


def _workers_of(pid: int) -> list[int]:
    """The parse workers that process *pid* started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"helpdesk_fetch.message.worker" in cmdline:
            found.append(int(entry.name))
    return found


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has died; only its parent's reaping is left


def test_a_killed_run_leaves_no_parse_worker_behind(dovecot, mail_user, write_config):
    """SIGKILL gives a process no chance to stop its children: the worker dies with it."""
    dovecot.append(mail_user, [hostile_shapes.many_parts(10_000_000)])  # parsed for seconds
    config = write_config([dovecot.account("box", mail_user)], settings={"parse_seconds": 300})
    proc = start_fetch(config)
    deadline = time.monotonic() + 60
    while not (workers := _workers_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers, "no parse worker started"
    while _cpu_seconds(workers[0]) < 1 and time.monotonic() < deadline:  # busy with the message
        time.sleep(0.05)

    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)

    assert not any(map(_alive, workers))
