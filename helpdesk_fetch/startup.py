"""The command's entry point: its start-up runs without the cyclic garbage collector (issue 18).

Starting a command imports a few hundred modules and builds ~100,000 objects that live as long as
the process (functions, classes, click's parameters, the loaded accounts file); none of them is
garbage, yet allocating them triggers ~50 collections, each walking the young ones again: 5-10 ms
of a cron run that finds no mail (README, Performance). The collector is paused until the
command is about to do its work (``resume_gc``: the CLI's group callback for most commands,
``fetch`` once its machinery is imported), and what start-up built is then frozen
(``gc.freeze``): later collections, during a run of a thousand messages, no longer walk it
either.
"""

from __future__ import annotations

import gc

_paused = False


def main() -> None:
    """The ``helpdesk-fetch`` console script and ``python -m helpdesk_fetch``."""
    pause_gc()
    from helpdesk_fetch.cli import main as cli_main

    cli_main()


def pause_gc() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """The collector back on, what exists now frozen; nothing unless ``pause_gc`` paused it (a
    test calling the CLI in its own process, a library user)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
