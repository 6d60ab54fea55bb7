"""``rules test``: what the rules and the classifier would do with messages read from files
(spec §10.1), through the same dry-run Pipeline as ``fetch --dry-run``: against the tickets in
the database (read-only), storing and sending nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from helpdesk_fetch.config import Account, Config
from helpdesk_fetch.ingest.deliver import strip_envelope
from helpdesk_fetch.ingest.pipeline import FAILED, Outcome, Pipeline
from helpdesk_fetch.ingest.source import Source


@dataclass
class Trial:
    """One message and what would happen to it."""

    name: str  # the file it was read from ("-": standard input)
    outcome: Outcome

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``rules test --json``."""
        o, verdict = self.outcome, self.outcome.verdict
        return {
            "file": self.name,
            "message_id": o.parsed.message_id if o.parsed else None,
            "subject": o.parsed.subject if o.parsed else None,
            "outcome": o.kind,  # planned | failed (| canary)
            "kind": str(o.message_kind) if o.message_kind else None,
            "rule": verdict.rule if verdict else None,
            "ignored": o.ignored,
            "ticket": o.ticket_number,
            "found_by": o.found_by,
            "resource": verdict.resource if verdict and not o.ticket_number else None,
            "decision": o.decision.why if o.decision else None,
            "automails": [{"kind": p.kind, "to": list(p.recipients)} for p in o.automails],
            "no_automail": o.held_back,  # why none (or none to the sender), or null
            "stored_already": o.stored_before is not None,  # judged as if it were new
            "reason": o.reason if o.kind == FAILED else None,
            "line": o.describe() if o.kind != FAILED else None,
        }


def source_for_test(config: Config, account: str | None) -> Source:
    """The account the messages are taken to come through: *account*, else the first enabled
    one, else the first; without any, a source of no account and no resource."""
    chosen: Account | None
    if account is not None:
        chosen = config.account(account)
    else:
        chosen = next((a for a in config.accounts if a.enabled),
                      config.accounts[0] if config.accounts else None)
    if chosen is None:
        return Source("rules-test", None)
    return Source(chosen.name, chosen.resource, chosen.automail)


def trial(config: Config, messages: list[tuple[str, bytes]], *,
          account: str | None = None) -> tuple[Source, list[Trial]]:
    """What would happen to each of *messages* ((name, raw bytes)) as mail of *account*."""
    source = source_for_test(config, account)
    pipeline = Pipeline(config, dry_run=True)
    trials = []
    for name, raw in messages:
        raw = strip_envelope(raw)  # one message of an mbox, as saved by many mail programs
        key = f"rules-test:{hashlib.sha256(raw).hexdigest()}"
        trials.append(Trial(name, pipeline.ingest(source, raw, key, trial=True)))
    return source, trials
