"""Named crash points, so that tests can kill a run at any instant of the ingest path.

``HELPDESK_FETCH_CRASH_AT=after_commit`` kills the process with SIGKILL the first time the point is
passed; ``after_commit:3`` the third time. Unset (always, outside tests), a crash point costs one
comparison.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_fetch", "mid_transaction", "in_group", "after_commit", "after_flag_deleted",
          "after_pop3_dele", "after_copy")  # the ingest path (tests/test_crash.py)
HOOK_POINTS = ("after_hook_run",)  # a hook exited 0, not yet recorded (tests/test_hooks.py)

_name, _, _nth = os.environ.get("HELPDESK_FETCH_CRASH_AT", "").partition(":")
_remaining = int(_nth or 1)


# In fetch's commit groups (store/group.py) ``in_group`` is passed as each message is stored in
# the open group, and ``after_commit`` once per message of a group after its commit, before that
# message's delete is asked for; elsewhere ``after_commit`` is passed after each message's commit.


def crashpoint(name: str) -> None:
    """Die here, at once and without cleanup, if the environment names this point."""
    global _remaining
    if name != _name:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
