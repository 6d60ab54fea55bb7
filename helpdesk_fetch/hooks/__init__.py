"""Hooks (spec §12): ticket events queued in the ticket's own transaction (``queue``) and run
after commit, one process per event (``runner``)."""
