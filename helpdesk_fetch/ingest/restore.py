"""``ignored restore``: make a request of mail that opened no ticket (spec §9.4), when a rule
misfired or an auto-reply carried a real question after all.

The kept bytes go through the same Pipeline as ``fetch``, as mail of the account they came
from, with ``restore``: whatever its kind, it is never ignored again (a bounce or auto-reply
that names no ticket opens one; a rule's ``action = "ignore"`` does not apply; the rest of the
rules, the threading and the auto-mail rules do). It is stored under the source key
``restored:<id>``, so a second restore (or two at once) finds the first and stores nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from helpdesk_fetch import state
from helpdesk_fetch.clock import utcnow
from helpdesk_fetch.config import Config
from helpdesk_fetch.errors import HelpdeskError
from helpdesk_fetch.ingest.pipeline import DUPLICATE, STORED, Pipeline
from helpdesk_fetch.ingest.source import Source
from helpdesk_fetch.store import ignored


@dataclass
class Restored:
    """What restoring one ignored message did."""

    id: int
    outcome: str  # restored | already restored | already stored
    ticket_number: str | None
    detail: str


def restore(config: Config, ident: str) -> Restored:
    """Ingest the ignored message *ident* as a request; its auto-mails are sent after commit.

    Under the shared delivery lock with the ingest switch read inside it, as ``deliver``:
    ``db copy`` never misses what is stored here."""
    with state.delivery_lock(config.settings.state_dir):
        if state.ingest_switch(config.settings.state_dir) is not None:
            raise HelpdeskError("ingest is disabled on this machine; `helpdesk-fetch ingest "
                                "enable` first")
        pipeline = Pipeline(config)
        row = pipeline.call_db(ignored.get_ignored, ident)
        raw = ignored.raw_of(row)
        # it arrived by the time it was kept, however late it is restored (spec §5.4)
        source = dataclasses.replace(source_named(config, row.account), seen_by=row.received_at)
        outcome = pipeline.ingest(source, raw, ignored.restored_key(row), restore=True)
        if outcome.kind not in (STORED, DUPLICATE):
            raise HelpdeskError(f"ignored message {row.id} could not be restored: "
                                f"{outcome.reason}")
        first = row.restored_at
        pipeline.call_db(ignored.mark_restored, row, utcnow())
    if outcome.kind == STORED:
        from helpdesk_fetch.ingest.deliver import send_automails_after_commit

        send_automails_after_commit(config)
        return Restored(row.id, "restored", outcome.ticket_number, outcome.describe())
    number = pipeline.call_db(ignored.restored_to, row)
    if number is None and first is None:  # these very bytes came in again and were stored
        return Restored(row.id, "already stored", None,
                        "the same message is stored already; nothing was stored again")
    when = f" on {first:%Y-%m-%d %H:%M} UTC" if first else ""
    where = f" to ticket {number}" if number else ""
    return Restored(row.id, "already restored", number,
                    f"it was restored before{when}{where}; nothing was stored again")


def source_named(config: Config, name: str) -> Source:
    """The source mail of *name* is filed under: the account's resource and auto-mail setting,
    ``deliver:<resource>``'s resource, or none for an account no longer configured."""
    from helpdesk_fetch.store.failures import DELIVER_PREFIX

    if name.startswith(DELIVER_PREFIX):
        return Source(name, name[len(DELIVER_PREFIX):])
    account = next((a for a in config.accounts if a.name == name), None)
    if account is None:
        return Source(name, None)
    return Source(account.name, account.resource, account.automail)
