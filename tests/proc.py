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
_MEASURE = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{time.perf_counter() - started} {usage.ru_maxrss} "
                 f"{usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Usage:
    seconds: float  # wall
    max_rss_mb: float  # peak resident set size
    cpu: float  # user + system seconds


def measured(report: Path) -> tuple[str, ...]:
    """A *wrapper* for ``helpdesk_fetch()`` (or any argv) that writes the process's wall time,
    peak RSS and CPU time to *report*; read them with ``usage(report)``."""
    return (sys.executable, "-S", "-c", _MEASURE, str(report))


def usage(report: Path) -> Usage:
    seconds, max_rss_kb, cpu = report.read_text().split()
    return Usage(float(seconds), int(max_rss_kb) / 1024, float(cpu))
