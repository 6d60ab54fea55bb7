"""Secrets this process has handed out, scrubbed from any text that reaches an output.

A second line of defence: no secret is ever formatted into a log line or an error on purpose
(spec §7), and every secret handed out is remembered here, so that ``redact`` removes it from
whatever text is printed anyway (a server echoing the password back, a traceback).
"""

from __future__ import annotations

_SECRETS: set[str] = set()


def remember_secret(secret: str) -> str:
    """Note *secret* for redact() and return it."""
    if secret and len(secret) >= 3:
        _SECRETS.add(secret)
    return secret


def redact(text: str) -> str:
    """*text* with every secret this process has handed out replaced by ``***``."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def is_secret(value: str) -> bool:
    """Whether *value* is exactly one of the secrets this process has handed out."""
    return value in _SECRETS
