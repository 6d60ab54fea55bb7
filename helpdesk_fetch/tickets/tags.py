"""Ticket tags (spec §4.5): ``<prefix><keyword> <number><four check letters><suffix>``, e.g.
``[TicketID 1042QKXP]``. The letters are an HMAC of the number under the installation's secret,
so a guessed or mistyped number never threads a stranger's mail into someone else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import re
import string

from helpdesk_fetch.config import Settings
from helpdesk_fetch.errors import TagSecretLost
from helpdesk_fetch.store import db

# Tags of a subject that are checked. A reply's subject carries one (or two after a forward);
# checking every tag let one mail try 58 guesses in 998 characters (issue 20.3).
MAX_TAGS = 3
FORGERY_LINES = 5  # messages with forged tags logged one by one; after that, only counts

log = logging.getLogger(__name__)


def installation_tagger(settings: Settings) -> Tagger:
    """The Tagger of the open database's installation secret; TagSecretLost when it has none
    (never an empty or a new key: spec §4.5)."""
    return Tagger(db.setting("tag_secret") or "", settings)


class Tagger:
    """Writes and reads ticket tags for one installation's secret and settings."""

    def __init__(self, secret: str, settings: Settings) -> None:
        if not secret:
            raise TagSecretLost()
        self._secret = secret.encode()
        self.forgeries = ForgeryLog()
        self.keyword = settings.ticket_keywords[0]
        self.prefix, self.suffix = settings.tag_prefix, settings.tag_suffix
        keywords = "|".join(re.escape(k) for k in settings.ticket_keywords)
        self._pattern = re.compile(
            # ASCII digits and letters only: under IGNORECASE, [A-Za-z] would also match the
            # Kelvin sign and a dotted capital I, which no tag of ours contains
            rf"(?<![A-Za-z0-9])(?:{keywords}) ?([0-9]{{1,18}})((?-i:[A-Za-z]{{4}}))"
            r"(?![A-Za-z0-9])", re.IGNORECASE)

    def letters(self, number: str) -> str:
        digest = hmac.new(self._secret, number.encode(), hashlib.sha256).digest()
        return "".join(string.ascii_uppercase[b % 26] for b in digest[:4])

    def tag(self, number: str) -> str:
        """The tag as written into subjects: ``[TicketID 1042QKXP]``."""
        return f"{self.prefix}{self.keyword} {number}{self.letters(number)}{self.suffix}"

    def numbers_in(self, subject: str) -> list[str]:
        """Ticket numbers of the valid tags among the first MAX_TAGS in *subject*, in order."""
        return self.scan(subject)[0]

    def scan(self, subject: str) -> tuple[list[str], list[str]]:
        """(ticket numbers of the valid tags, the forged tags as written) among the first
        MAX_TAGS tags of *subject*; the tags after those are not looked at."""
        valid, forged = [], []
        for tag in itertools.islice(self._pattern.finditer(subject), MAX_TAGS):
            number = tag.group(1).lstrip("0") or "0"
            if hmac.compare_digest(tag.group(2).upper(), self.letters(number)):
                valid.append(number)
            else:
                forged.append(tag.group(0))
        return valid, forged

    def signature(self, purpose: str, text: str) -> str:
        """*text* signed for *purpose* with the installation's secret (HMAC-SHA256, 32 hex
        digits): what only this installation can write, e.g. a canary's marker (spec §11.3).
        The purpose keeps each use apart from the others and from the tags' letters."""
        digest = hmac.new(self._secret, f"{purpose}:{text}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def subject_with_tag(self, subject: str, number: str) -> str:
        """*subject* carrying the ticket's tag exactly once."""
        if number in self.numbers_in(subject):
            return subject
        return f"{self.tag(number)} {subject}".strip()


class ForgeryLog:
    """Logs messages whose tags have wrong check letters (a guess, or another installation's
    tag): the first FORGERY_LINES one by one, then a line at every tenfold count, so that a flood
    of guesses cannot fill the log."""

    def __init__(self) -> None:
        self.count = 0

    def report(self, tags: list[str], label: str, sender: str) -> None:
        self.count += 1
        if self.count <= FORGERY_LINES:
            log.info("%s from %s: a ticket tag with wrong check letters (%s), ignored",
                     label, sender, ", ".join(tags))
        elif str(self.count).rstrip("0") == "1":  # 10, 100, 1000, ...
            log.info("%d messages with forged ticket tags so far (only the first %d are logged "
                     "one by one)", self.count, FORGERY_LINES)
