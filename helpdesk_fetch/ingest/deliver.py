"""``deliver``: one message from an MTA pipe (Postfix ``pipe``, procmail, a monitoring system).

The same Pipeline as ``fetch``. What the MTA learns is the exit status (spec §3): 0 stored (or
stored before); 75 try again later — the database is locked, read-only or unreachable, the
configuration is broken, ingest is disabled: nothing was consumed and the MTA keeps the message;
65 never ingestible as it is — only after the message has been written to the quarantine Maildir
and recorded, so that ``errors list`` shows it and ``errors retry`` takes it once the cause is
fixed. Nothing is lost in any case.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from helpdesk_fetch import state
from helpdesk_fetch.config import Config
from helpdesk_fetch.errors import ConfigError, DatabaseError, HelpdeskError, QuarantineError
from helpdesk_fetch.ingest.pipeline import FAILED, STORED, Outcome, Pipeline, Source
from helpdesk_fetch.store import db, failures

log = logging.getLogger(__name__)


class IngestDisabled(HelpdeskError):
    """The ingest switch is off on this machine: the MTA should keep the message."""


@dataclass
class Delivery:
    source: str  # the account, or deliver:<resource>
    outcome: Outcome
    quarantined: Path | None = None  # where a message that failed was kept


def source_for(config: Config, *, resource: str | None, account: str | None) -> Source:
    """The source a piped message is filed under: an account's, or ``deliver:<resource>``."""
    if account is not None:
        a = config.account(account)
        return Source(a.name, a.resource, a.automail)
    if config.resource(resource) is None:
        known = ", ".join(r.name for r in config.resources) or "none defined"
        raise ConfigError(f"no resource {resource!r} (resources: {known})", path=config.path)
    return Source(f"{failures.DELIVER_PREFIX}{resource}", resource)


_OBSOLETE_FROM = re.compile(rb"From[ \t]*:")


def strip_envelope(raw: bytes) -> bytes:
    """Drop the mbox ``From `` line procmail and Postfix's ``F`` flag put before the headers;
    not a From header in the obsolete syntax, with space before its colon (``From  : John``)."""
    if raw.startswith(b"From ") and not _OBSOLETE_FROM.match(raw):
        _, _, rest = raw.partition(b"\n")
        return rest
    return raw


def deliver(config: Config, raw: bytes, *, resource: str | None = None,
            account: str | None = None) -> Delivery:
    """Ingest one piped message; quarantine and record it when it can never be ingested.

    Under the shared delivery lock, with the ingest switch read inside it: ``db copy`` (which
    needs ingest off and takes the lock exclusively) never misses a message stored here."""
    source = source_for(config, resource=resource, account=account)
    with state.delivery_lock(config.settings.state_dir):
        switch = state.ingest_switch(config.settings.state_dir)
        if switch is not None:
            raise IngestDisabled("ingest is disabled on this machine "
                                 f"({switch.get('reason') or 'no reason given'}); it tries "
                                 "again later")
        return _deliver(config, source, strip_envelope(raw))


def _deliver(config: Config, source: Source, raw: bytes) -> Delivery:
    pipeline = Pipeline(config)
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        outcome = pipeline.ingest(source, raw, f"{failures.DELIVER_PREFIX}{sha256}")
    finally:
        pipeline.close()
    if outcome.kind == STORED:
        send_automails_after_commit(config)
    if outcome.kind != FAILED:
        _prune(config)
        return Delivery(source.name, outcome)
    path = keep_in_quarantine(config.settings.state_dir, raw, sha256)
    try:
        pipeline.record_failure(source, outcome, raw=raw, size=len(raw),
                                location=f"kept in the quarantine Maildir {path.parent.parent}")
    except DatabaseError:
        path.unlink(missing_ok=True)  # the MTA keeps it: exit 75, not 65
        raise
    return Delivery(source.name, outcome, path)


PRUNED_FILE = "deliver-pruned"
PRUNE_EVERY = 3600  # seconds


def _prune(config: Config) -> None:
    """Keep the run history and ignored mail to their days, as every fetch does: an
    installation that only pipes mail in has no fetch to do it. At most once an hour (a stamp
    file in state_dir): the deletes take the write lock, and a flood of mail must not pay for
    them each time. A failure is only logged: the message is stored, and a later one prunes."""
    from helpdesk_fetch.store import write

    stamp = Path(config.settings.state_dir) / PRUNED_FILE
    try:
        if time.time() - stamp.stat().st_mtime < PRUNE_EVERY:
            return
    except OSError:
        pass  # never pruned here (or unreadable: prune, and say why below if it fails)
    try:
        stamp.touch()
    except OSError as exc:
        log.warning("cannot write %s (%s); pruning at every delivery", stamp, exc.strerror)
    try:
        with db.errors("cannot prune the history and ignored mail"):
            write.prune_history(config.settings.history_days)
            write.prune_ignored(config.settings.ignored_days)
    except DatabaseError as exc:
        log.warning("%s", exc)


def send_automails_after_commit(config: Config) -> None:
    """Send the auto-mails and run the hook events the stored messages queued, as ``fetch``
    does after its accounts: an installation that only pipes mail in has no other run.

    The messages are stored whatever happens here: a failure is logged and the queues wait for
    the next run (SMTP and hook trouble never raises; it defers the mails and events)."""
    from helpdesk_fetch.ingest.run import run_hooks, send_automails

    deadline = time.monotonic() + config.settings.run_budget_seconds
    try:
        send_automails(config, deadline=deadline, news=False)  # said here, recorded nowhere
        run_hooks(config, deadline=deadline)
    except DatabaseError as exc:
        log.warning("auto-mails and hook events stay queued for the next run: %s", exc)


def keep_in_quarantine(state_dir: str | Path, raw: bytes, sha256: str) -> Path:
    """Write *raw* durably into the quarantine Maildir (once per content) and say where."""
    root = failures.quarantine_dir(state_dir)
    try:
        return _write_durably(root, raw, f"deliver-{sha256}")
    except OSError as exc:
        raise QuarantineError(f"cannot keep the message in the quarantine Maildir {root}: "
                              f"{exc.strerror or exc}") from None


def _write_durably(root: Path, raw: bytes, name: str) -> Path:
    """Maildir delivery: write into tmp, fsync, rename into new; no half file stays behind."""
    for sub in ("tmp", "new", "cur"):
        state.private_directory(root / sub)
    temp = root / "tmp" / f"{name}.{os.getpid()}.{time.time_ns()}"
    final = root / "new" / name
    try:
        with open(temp, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except OSError:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return final


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
