"""What the reliability tests share: `helpdesk-fetch fetch` as a real process (so it can be killed),
mailboxes loaded with good and bad mail, and the promise of spec §4.1 checked against the
database and the server.

The promise, as checked here:
- at any instant every good message is stored (once) or still on the server, or both;
- after a clean run every good message is exactly one ticket message (or one ignored message),
  the mailbox is empty, and the error folder (POP3: the server) holds exactly the bad messages,
  each once.

Good mail includes mail that is not a request (spec §9): an auto-reply and a bounce that name
no ticket (kept as ignored mail), a bounce of one of the load's own requests (appended to its
ticket, or ignored when it is read before the request), and a second copy of a request with the
same Message-ID, From, Date and Subject (§4.1): of a request and its copy exactly one is stored,
whichever comes first; the other is recorded by its source key and deleted.
"""

from __future__ import annotations

import hashlib
import itertools
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.mails import message, message_id_of
from tests.proc import ROOT, environment, helpdesk_fetch

ERROR_FOLDER = "HD Error Messages"
LIMIT = 20_000  # max_message_bytes in these tests: the oversized message is over it


def sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _env(crash_at: str | None) -> dict[str, str]:
    return environment(**({"HELPDESK_FETCH_CRASH_AT": crash_at} if crash_at else {}))


def start_fetch(config: Path, *args: str, crash_at: str | None = None,
                verbose: bool = False) -> subprocess.Popen:
    """`helpdesk-fetch --config CONFIG [-v] fetch ARGS` in a process of its own, left running."""
    options = ["--config", str(config)] + (["-v"] if verbose else [])
    return subprocess.Popen(
        [sys.executable, "-m", "helpdesk_fetch", *options, "fetch", *args],
        cwd=ROOT, env=_env(crash_at), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def fetch(config: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    """`helpdesk-fetch fetch` run to its end (tests/proc.py's timeout only guards against a hang;
    no test asserts speed)."""
    return helpdesk_fetch("fetch", *args, config=config, env=_env(crash_at), text=True)


KILLED = -signal.SIGKILL
_blanks = itertools.count(1)


@dataclass
class Load:
    """The mail put into one mailbox: what must be stored (on a ticket or as ignored mail) and
    what must be set aside. *copy_of*: the SHA-256 of a copy -> that of the mail it copies; of
    the two exactly one is stored."""

    good: list[bytes] = field(default_factory=list)
    bad: list[bytes] = field(default_factory=list)
    copy_of: dict[str, str] = field(default_factory=dict)

    def __iadd__(self, other: Load) -> Load:
        self.good += other.good
        self.bad += other.bad
        self.copy_of.update(other.copy_of)
        return self

    @property
    def all(self) -> list[bytes]:
        return self.good + self.bad

    def groups(self) -> dict[str, list[str]]:
        """The good mail as groups of SHA-256s, each group to be stored exactly once."""
        found: dict[str, list[str]] = {}
        for raw in self.good:
            digest = sha(raw)
            found.setdefault(self.copy_of.get(digest, digest), []).append(digest)
        return found


def mixed_load(tag: str, good: int = 10, *, bad: bool = True, kinds: bool = True) -> Load:
    """*good* distinct messages — every fourth without Message-ID, two sharing one — plus, with
    *kinds*, mail that is not a request (see the module's docstring), and with *bad* a message
    of nothing but line breaks (cannot be parsed; their count makes it unique) and one over
    LIMIT (too large)."""
    load = Load()
    shared = f"<shared-{tag}@example.org>"
    for index in range(good):
        message_id = None if index % 4 == 3 else shared if index in (1, 2) else "auto"
        load.good.append(message(f"{tag} request {index}", body=f"{tag} body {index}\n" * 20,
                                 message_id=message_id))
    if kinds and good:
        load += not_requests(tag, load.good[0])
    if bad:
        load.bad.append(b"\r\n" * next(_blanks))
        load.bad.append(message(f"{tag} huge", body=("z" * 70 + "\n") * (LIMIT // 60)))
    return load


def not_requests(tag: str, request: bytes) -> Load:
    """An auto-reply and a bounce that name no ticket, a bounce of *request* and a copy of it."""
    copy = b"Received: from relay.example.org by mx.example.org; " \
           b"Mon, 30 Nov 2026 09:00:00 +0000\r\n" + request
    mails = [message(f"{tag} out of office", sender="Away <away@example.org>",
                     headers={"Auto-Submitted": "auto-replied"}, body=f"{tag}: back Monday.\n"),
             _bounce(tag, f"never-sent-{tag}@example.com"),
             _bounce(tag, message_id_of(request)), copy]
    return Load(good=mails, copy_of={sha(copy): sha(request)})


def _bounce(tag: str, original_id: str) -> bytes:
    """A non-standard bounce (Postfix's words, X-Failed-Recipients) quoting *original_id*."""
    body = (f"This is the mail system at host mx.example.org.\n\nI'm sorry to have to inform "
            f"you that your message could not\nbe delivered to one or more recipients.\n\n"
            f"<gone-{tag}@example.net>: user unknown\n\n"
            f"Message-ID: <{original_id}>\nSubject: {tag}\n")
    return message("Undelivered Mail Returned to Sender",
                   sender="MAILER-DAEMON@mx.example.org (Mail Delivery System)", body=body,
                   headers={"Auto-Submitted": "auto-replied",
                            "X-Failed-Recipients": f"gone-{tag}@example.net"})


def on_server(server, user: str) -> list[bytes]:
    """Everything the server still holds for *user*, \\Deleted or not, error folder included."""
    return (server.messages(user, include_deleted=True)
            + server.messages(user, ERROR_FOLDER, include_deleted=True))


def final_state(server, user: str, protocol: str) -> tuple[list[bytes], list[bytes]]:
    """(what is left in the mailbox, what is set aside). POP3 sets aside by leaving it."""
    inbox = server.messages(user, include_deleted=True)
    if protocol == "pop3":
        return [], inbox
    return inbox, server.messages(user, ERROR_FOLDER, include_deleted=True)


def stored(database: Path, account: str | None = None) -> Counter:
    """SHA-256 -> how many inbound ticket messages and ignored messages (of *account*) hold
    exactly these bytes."""
    if not database.exists():
        return Counter()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "message" not in tables:
            return Counter()  # a run was killed while it created the database
        query = ("SELECT m.sha256, m.account FROM message m JOIN ticket t "
                 "ON t.id = m.ticket_id WHERE m.direction = 'in'")
        if "ignored_message" in tables:  # else killed between two migrations: nothing there yet
            query += " UNION ALL SELECT sha256, account FROM ignored_message"
        rows = conn.execute(query).fetchall()
    return Counter(digest for digest, owner in rows if account in (None, owner))


def failed_count(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM failed_message").fetchone()[0]


def assert_nothing_lost(load: Load, database: Path, on_server: list[bytes], note: str = "", *,
                        account: str | None = None) -> None:
    """Every good message is stored or on the server; none is stored twice; bad ones are on
    the server (inbox or error folder)."""
    in_db = stored(database, account)
    there = Counter(sha(raw) for raw in on_server)
    groups = load.groups()
    lost = [group for group, members in groups.items()
            if sum(in_db[d] + there[d] for d in members) == 0]
    assert not lost, f"{note}: lost {len(lost)} messages: {lost}"
    doubled = {k: n for k, n in in_db.items() if n > 1}
    doubled.update({group: n for group, members in groups.items()
                    if (n := sum(in_db[d] for d in members)) > 1})
    assert not doubled, f"{note}: stored twice: {doubled}"
    gone = [raw[:200] for raw in load.bad if there[sha(raw)] == 0]
    assert not gone, f"{note}: a bad message left the server: {gone}"


def assert_exactly_once(load: Load, database: Path, inbox: list[bytes],
                        set_aside: list[bytes], note: str = "", *,
                        account: str | None = None) -> None:
    """After a clean run: each good message one ticket message (or ignored message), of a
    message and its copy exactly one; inbox empty, error folder (or POP3 server) exactly the
    bad messages."""
    in_db = stored(database, account)
    groups = load.groups()
    assert set(in_db) <= {d for members in groups.values() for d in members}, note
    assert {group: sum(in_db[d] for d in members) for group, members in groups.items()} == (
        dict.fromkeys(groups, 1)), note
    assert inbox == [], f"{note}: {len(inbox)} messages left in the mailbox"
    assert Counter(set_aside) == Counter(load.bad), (
        f"{note}: error folder {len(set_aside)} messages, expected {len(load.bad)}")
