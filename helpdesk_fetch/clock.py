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

