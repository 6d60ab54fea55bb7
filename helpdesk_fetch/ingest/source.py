"""Where a message comes from (an account, ``deliver``), as far as tickets care: a module of its
own so that a run that finds no mail need not import what decides about messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """Where a message comes from, as far as tickets care."""

    name: str  # the account (or "deliver"): source keys and duplicates are per source
    resource: str | None
    automail: bool = True
