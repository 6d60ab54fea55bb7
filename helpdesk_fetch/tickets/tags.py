"""Ticket tags (spec §4.5): ``<prefix><keyword> <number><four check letters><suffix>``, e.g.
``[TicketID 1042QKXP]``. The letters are an HMAC of the number under the installation's secret,
so a guessed or mistyped number never threads a stranger's mail into someone else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string

from helpdesk_fetch.config import Settings
from helpdesk_fetch.errors import TagSecretLost
from helpdesk_fetch.store import db


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
        """Ticket numbers of the valid tags in *subject*, in order; forged ones are left out."""
        found = []
        for number, letters in self._pattern.findall(subject):
            number = number.lstrip("0") or "0"
            if hmac.compare_digest(letters.upper(), self.letters(number)):
                found.append(number)
        return found

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
