"""Server processes that cannot outlive the tests (Courier, Cyrus).

A server's start-up script runs in a session of its own: it starts the daemons in the
background, then stays as a watchdog. ``stop()`` ends every process of that session, whatever
process group a daemon moved itself to (couriertcpd does); should pytest die without its
teardown, the watchdog sees its process gone within a second and does the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

# Runs after the server's own lines. In /proc/PID/stat the third field is the state (Z: dead,
# not yet reaped) and the sixth the session; the names of the processes here (python, sh,
# couriertcpd, master, ...) have no spaces, so `read` splits the line right.
_WATCHDOG = """
set +e
while read -r pid comm state rest < /proc/{parent}/stat 2>/dev/null && [ "$state" != Z ]; do
    sleep 1
done
for stat in /proc/[0-9]*/stat; do
    read -r pid comm state ppid pgrp session rest < "$stat" 2>/dev/null || continue
    if [ "$session" = "$$" ] && [ "$pid" != "$$" ]; then kill -TERM "$pid" 2>/dev/null; fi
done
"""


class Daemons:
    """*script* (sh, `set -e`) run in a new session, optionally in a private mount namespace."""

    def __init__(self, script: str, log: Path, *, env: dict[str, str] | None = None,
                 mount_namespace: bool = False) -> None:
        self.script = script
        self.log = log
        self.env = env
        self.mount_namespace = mount_namespace
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        text = "set -e\n" + self.script + _WATCHDOG.format(parent=os.getpid())
        argv = ["sh", "-c", text]
        if self.mount_namespace:
            argv = ["unshare", "--mount", "--propagation", "private", "--", *argv]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def members(self) -> list[int]:
        """The live processes of the session (zombies are gone in all but name)."""
        if self.process is None:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            if int(fields[3]) == self.process.pid and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """End every process of the session: SIGTERM, then SIGKILL after *timeout* seconds."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        signum = signal.SIGTERM
        while members := self.members():
            if time.monotonic() > deadline:
                signum = signal.SIGKILL
            for pid in members:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        self.process.wait()

    def describe_failure(self, what: str) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{what}; its output ({self.log}):\n{text[-4000:]}"
