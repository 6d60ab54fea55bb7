"""The project's own collection of hostile and real-world-shaped mail, built in code.

Each case is one message as bytes, with a line on the breakage of real mail it imitates and what
a parser must recover from it (``Expect``). The cases are grouped by what they break:
``headers`` (8-bit bytes, encoded words, addresses, dates, 100,000-character lines),
``structure`` (boundaries, nesting, line ends, the header block), ``encodings`` (transfer
encodings and charsets) and ``shapes`` (ordinary mail, Outlook/Exchange, S/MIME, PGP, calendar
invitations, delivery reports).

Nothing here is copied from any mail collection; the shared corpus beside the checkout is an
extra run (``make test-corpus``), never needed by ``make test``.
"""

from __future__ import annotations

from tests.mailset import encodings, headers, shapes, structure  # noqa: F401 - they register
from tests.mailset.base import CASES, NOT_CHECKED, Case, Expect, View

__all__ = ["CASES", "NOT_CHECKED", "Case", "Expect", "View"]
