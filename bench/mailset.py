"""The benchmark's seeded message set (issue 7): the same bytes on every run and every machine.

Mixed like a helpdesk mailbox: half plain text (~2 KB), half multipart/alternative (~20 KB), every
20th with a 200 KB attachment, every 10th a reply (In-Reply-To and References) to an earlier one.
"""

from __future__ import annotations

import datetime as dt
import random

from tests.mails import message

SEED = 7
WORDS = ("printer", "network", "password", "laptop", "screen", "mail", "server", "broken", "slow",
         "please", "help", "urgent", "the", "is", "not", "working", "since", "yesterday", "again",
         "office", "floor", "VPN", "ticket", "user", "account", "update", "error", "message")
START = dt.datetime(2025, 3, 3, 8, 0, tzinfo=dt.UTC)


def words(rng: random.Random, size: int) -> str:
    """About *size* characters of text in lines of ~70."""
    out, line, width, total = [], [], 0, 0
    for word in rng.choices(WORDS, k=size // 5):
        line.append(word)
        width += len(word) + 1
        if width > 70:
            out.append(" ".join(line))
            total += width
            line, width = [], 0
            if total >= size:
                break
    out.append(" ".join(line))
    return "\n".join(out) + "\n"


def generate(count: int = 1000, *, seed: int = SEED, prefix: str = "bench") -> list[bytes]:
    """*count* messages; Message-IDs carry *prefix* so that two sets never collide."""
    rng = random.Random(seed)
    state = random.getstate()
    random.seed(seed)  # the stdlib's MIME boundaries come from the global generator
    try:
        return _generate(rng, count, prefix)
    finally:
        random.setstate(state)


def _generate(rng: random.Random, count: int, prefix: str) -> list[bytes]:
    ids: list[str] = []
    subjects: list[str] = []
    result = []
    for i in range(count):
        msg_id = f"<{prefix}.{i}.{rng.getrandbits(48):012x}@example.org>"
        kwargs: dict = {"message_id": msg_id, "date": START + dt.timedelta(seconds=37 * i),
                        "sender": f"User {i % 97} <user{i % 97}@example.org>"}
        subject = " ".join(rng.choice(WORDS) for _ in range(4)).capitalize()
        if i % 10 == 9 and ids:
            parent = rng.randrange(len(ids))
            kwargs.update(in_reply_to=ids[parent], references=[ids[parent]])
            subject = f"Re: {subjects[parent]}"
        if i % 2 == 0:
            kwargs["body"] = words(rng, 2000)
        else:
            kwargs["body"] = words(rng, 6000)
            paragraphs = "".join(f"<p>{line}</p>\n" for line in words(rng, 12000).splitlines())
            kwargs["html"] = f"<html><body>\n{paragraphs}</body></html>\n"
        if i % 20 == 19:
            kwargs["attachments"] = [(f"report-{i}.pdf", "application/pdf",
                                      rng.randbytes(200 * 1024))]
        ids.append(msg_id)
        subjects.append(subject)
        result.append(message(subject, **kwargs))
    return result


def big(size: int = 25_000_000, *, seed: int = SEED) -> bytes:
    """One message with an attachment of *size* bytes (base64 makes the message ~1.35x that)."""
    rng = random.Random(seed)
    random.seed(seed)
    return message("The big scan", body="Scan attached.\n", message_id="<bench.big@example.org>",
                   attachments=[("scan.tiff", "image/tiff", rng.randbytes(size))])
