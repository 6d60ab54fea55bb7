"""Where a message comes from (an account, ``deliver``), as far as tickets care: a module of its
own so that a run that finds no mail need not import what decides about messages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """Where a message comes from, as far as tickets care."""

    name: str  # the account (or "deliver"): source keys and duplicates are per source
    resource: str | None
    automail: bool = True
    # Mail that may have waited in a mailbox since its account was last read (fetch), not mail
    # handed over as it arrives (deliver): a reply to a closed ticket counts from when it
    # arrived, as far as can be told (spec §5.4, ``Decider.arrived``)
    waited: bool = False
    # When it was read from its mailbox already, if it was (``errors retry``: when it first
    # failed): it arrived by then, however late it is stored
    seen_by: dt.datetime | None = None
