"""The command line as a separate process: for crash points, exit codes seen by an MTA, other
users, and terminals."""

from __future__ import annotations

import os
import subprocess
import sys
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
