"""Time as the program sees it: the system clock, stored as naive UTC, shown as ISO 8601.

There is deliberately no private time source: tests and operators shift time with standard tools
(libfaketime, or the system clock itself).
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, from the system clock, as the naive UTC the tables store."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def from_timestamp(timestamp: float) -> dt.datetime:
    """A ``time.time()`` value as stored naive UTC."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(tzinfo=None)


def isoformat(value: dt.datetime | None) -> str | None:
    """A stored time as ISO 8601 with its offset, for JSON."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).isoformat(timespec="seconds")



MAX_RETRY_DELAY = dt.timedelta(hours=6)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the *attempts*-th failure before trying again (auto-mails, hook
    events): 2, 4, 8 ... minutes, at most 6 hours."""
    return min(dt.timedelta(minutes=2 ** min(attempts, 16)), MAX_RETRY_DELAY)
