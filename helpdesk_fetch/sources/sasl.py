"""The XOAUTH2 SASL mechanism, as Google and Microsoft define it for IMAP, POP3 and SMTP.

The client sends ``user=<name>^Aauth=Bearer <token>^A^A``. A server that refuses the token answers
with a challenge holding a JSON error and waits for an empty response before it says NO.
"""

from __future__ import annotations

import base64
import json


def xoauth2(user: str, token: str) -> bytes:
    """The XOAUTH2 client response (before base64)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def xoauth2_base64(user: str, token: str) -> str:
    """The XOAUTH2 client response, base64-encoded as POP3 and SMTP send it."""
    return base64.b64encode(xoauth2(user, token)).decode("ascii")


class XOAuth2:
    """An imaplib/smtplib authobject: the response first; to an error challenge, the empty
    response that ends the exchange (the challenge is kept for the error message). It returns
    str, which smtplib requires and imaplib accepts."""

    def __init__(self, user: str, token: str) -> None:
        self._response = xoauth2(user, token).decode()
        self._sent = False
        self.error = ""

    def __call__(self, challenge: bytes | None = None) -> str:
        if not self._sent:
            self._sent = True
            return self._response
        self.error = describe_challenge(challenge or b"")
        return ""


def describe_challenge(challenge: bytes) -> str:
    """The server's error challenge for people: ``{"status": "401", ...}`` -> ``status 401``."""
    try:
        data = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return challenge.decode("ascii", "replace")[:200]
    if not isinstance(data, dict):
        return str(data)[:200]
    return ", ".join(f"{k} {v}" for k, v in data.items() if k in ("status", "scope", "schemes"))
