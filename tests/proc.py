"""The command line as a separate process: for crash points, exit codes seen by an MTA, other
users, terminals, and what a run costs (the benchmark uses ``measured`` too)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def environment(**extra: str) -> dict[str, str]:
    """The test's environment, with this checkout importable and *extra* added."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("HELPDESK_FETCH_CRASH_AT", None)
    env.update(extra)
    return env


def helpdesk_fetch(*args: str, config: Path | None = None, input: bytes | None = None,
                   env: dict[str, str] | None = None, wrapper: tuple[str, ...] = (),
                   **kwargs) -> subprocess.CompletedProcess:
    """Run ``[WRAPPER] python -m helpdesk_fetch [--config PATH] ARGS`` to completion."""
    argv = [*wrapper, sys.executable, "-m", "helpdesk_fetch"]
    if config is not None:
        argv += ["--config", str(config)]
    return subprocess.run(argv + list(args), input=input, capture_output=True, cwd=ROOT,
                          env=env or environment(), timeout=300, **kwargs)


# A small parent for a measured process. Linux carries the peak RSS across fork and exec, so a
# child forked straight from pytest (or the benchmark) would report the parent's size as its own.
# wait4() gives the peak of the largest process of the tree, not of the tree; a thread samples
# the tree every 10 ms for what its processes hold together: the process's RSS, and its
# children's private memory (their file pages are the Python and libraries the process has mapped
# already: counting them twice would be counting what nobody pays for).
_MEASURE = """
import os, sys, threading, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
peak, done = [0], threading.Event()

def status(p):
    with open(f"/proc/{p}/status") as f:
        fields = (line.split(":", 1) for line in f)
        return {k: int(v.split()[0]) for k, v in fields if k in ("VmRSS", "RssAnon", "RssShmem")}

def children(p):
    found = []
    for task in os.listdir(f"/proc/{p}/task"):
        with open(f"/proc/{p}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found

def tree_kb():
    try:
        total, todo = status(pid)["VmRSS"], children(pid)
        while todo:
            child = todo.pop()
            s = status(child)
            total += s.get("RssAnon", 0) + s.get("RssShmem", 0)
            todo += children(child)
        return total
    except (OSError, KeyError, ValueError):
        return 0

def sample():
    while not done.wait(0.01):
        peak[0] = max(peak[0], tree_kb())

threading.Thread(target=sample, daemon=True).start()
_, status_, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
done.set()
with open(sys.argv[1], "w") as report:
    report.write(f"{seconds} {max(usage.ru_maxrss, peak[0])} "
                 f"{usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status_))
"""


@dataclass(frozen=True)
class Usage:
    seconds: float  # wall
    max_rss_mb: float  # peak memory of the process with its children (see _MEASURE)
    cpu: float  # user + system seconds, children included
    own_rss_mb: float = 0.0  # peak RSS of its largest process alone (wait4)


def measured(report: Path) -> tuple[str, ...]:
    """A *wrapper* for ``helpdesk_fetch()`` (or any argv) that writes the process's wall time,
    peak memory (with its children) and CPU time to *report*; read them with ``usage(report)``."""
    return (sys.executable, "-S", "-c", _MEASURE, str(report))


def usage(report: Path) -> Usage:
    seconds, max_rss_kb, cpu, own_kb = report.read_text().split()
    return Usage(float(seconds), int(max_rss_kb) / 1024, float(cpu), int(own_kb) / 1024)
