"""A command's start-up without the cyclic garbage collector (issue 18).

Starting a command imports a few hundred modules and builds ~100,000 objects that live as long as
the process (functions, classes, click's parameters, the loaded accounts file). Allocating them
triggers ~50 collections that find almost nothing: each walks the young objects again, 5-10 ms
of a cron run that finds no mail (README, Performance). The entry point (``__main__.py``) pauses
the collector before it imports the command line; it is resumed when the command is about to do
its work (the CLI's group callback for most commands, ``fetch`` once its run is imported), and
what exists then is frozen (``gc.freeze``): later collections, during a run of a thousand
messages, no longer walk it.

What freezing costs: the few hundred objects that are cyclic garbage by then (temporary functions
and classes of the imports), and whatever alive then becomes cyclic garbage later (the session of
the mailbox opened ahead, once its account is done), stay until the process exits. That is
bounded, once per process, and every command is a short-lived process. A full collection first
would walk all of start-up's objects: what pausing saves.
"""

from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """The collector back on, what exists now frozen; nothing unless ``pause_gc`` paused it (the
    CLI called in a test's process, a library user)."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
