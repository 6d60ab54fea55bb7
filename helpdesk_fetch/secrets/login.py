"""What an account logs in with: a password from its source, or an OAuth2 access token."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from helpdesk_fetch.config import Account, Smtp
from helpdesk_fetch.errors import AuthError, HelpdeskError
from helpdesk_fetch.secrets.passwords import password_for


@contextlib.contextmanager
def login_secret(source: Account | Smtp, *, label: str, state_dir: str,
                 timeout: float) -> Iterator[str | None]:
    """What *source* logs in with: its password, or (``auth = "oauth2"``) a current access
    token. A token that the server refuses is forgotten, so the next attempt gets a new one.
    A Maildir needs nothing (None)."""
    if getattr(source, "protocol", None) == "maildir":
        yield None
        return
    if source.auth != "oauth2":
        yield password_for(source, label=label, timeout=timeout)
        return
    from helpdesk_fetch.secrets.oauth2 import tokens

    token = tokens.access_token(source, label=label, state_dir=state_dir, timeout=timeout)
    try:
        yield token
    except AuthError:
        with contextlib.suppress(HelpdeskError):  # the server's refusal is the news, not this
            tokens.discard_access_token(source, label=label, state_dir=state_dir)
        raise
