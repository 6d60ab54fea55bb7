"""Access tokens for an OAuth2 login: from ``oauth2_token_command``, from the saved refresh token
(RFC 6749 §6), or from the client-credentials flow (§4.4; Microsoft 365 app-only access).

A refresh token that the provider rotates is saved (atomically, mode 0600) before the new access
token is used, so a crash can never lose the only refresh token that still works.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from helpdesk_fetch.clock import isoformat, utcnow
from helpdesk_fetch.config import PASSWORD_KEYS, Account, Smtp
from helpdesk_fetch.errors import AuthError, ConfigError, ProtocolError
from helpdesk_fetch.secrets.oauth2 import client, store
from helpdesk_fetch.secrets.passwords import password_for, run_secret_command
from helpdesk_fetch.secrets.redact import remember_secret

EARLY_SECONDS = 120  # an access token this close to its expiry is replaced first
DEFAULT_LIFETIME = 3600


class SavedTokens(TypedDict):
    """What the token file holds after a sign-in or a refresh (``token_data``)."""

    access_token: str
    expires_at: float  # time.time()
    token_url: str | None
    client_id: str | None
    scope: str
    updated_at: str | None
    refresh_token: NotRequired[str]  # none in the client-credentials flow


def access_token(source: Account | Smtp, *, label: str, state_dir: str, timeout: float) -> str:
    """A current access token for *source* (an account, or ``[smtp]`` with *label* "smtp")."""
    if source.oauth2_token_command is not None:
        account, prefix = _where(source, label)
        return remember_secret(run_secret_command(
            source.oauth2_token_command, account=account, key=prefix + "oauth2_token_command",
            timeout=timeout))
    path = store.token_path(source, label=label, state_dir=state_dir)
    with store.locked(path, account=_where(source, label)[0]):
        saved = _saved_for(source, label, path)
        if _fresh(saved):
            return remember_secret(saved["access_token"])
        if source.oauth2_flow == "client_credentials":
            answer = request_token(source, label, {"grant_type": "client_credentials"},
                                   timeout=timeout)
        else:
            answer = request_token(source, label, {"grant_type": "refresh_token",
                                                   "refresh_token": _refresh_token(
                                                       source, label, saved, path)},
                                   timeout=timeout)
        data = token_data(source, label, answer, saved)
        store.save(path, data, label=label)
        return data["access_token"]


def discard_access_token(source: Account | Smtp, *, label: str, state_dir: str) -> None:
    """Forget the saved access token after the server refused it: the next login gets a new one."""
    if source.oauth2_token_command is not None:
        return
    path = store.token_path(source, label=label, state_dir=state_dir)
    with store.locked(path, account=_where(source, label)[0]):
        saved = store.load(path, account=_where(source, label)[0])
        if saved.pop("access_token", None) is not None:
            saved.pop("expires_at", None)
            store.save(path, saved, label=label)


def request_token(source: Account | Smtp, label: str, fields: dict[str, str], *,
                  timeout: float) -> dict[str, Any]:
    """POST a refresh or client-credentials grant to the token endpoint; refusals become
    AuthErrors that say what to do."""
    scope = " ".join(source.oauth2_scopes) or None
    form = grant_fields(source, label, {**fields, "scope": scope}, timeout=timeout)
    try:
        return client.post_form(token_url(source, label), form, account=label, timeout=timeout,
                                ca_file=source.ca_file)
    except client.Refused as exc:
        raise AuthError(label, _refusal(source, label, exc, fields["grant_type"])) from None


def token_url(source: Account | Smtp, label: str) -> str:
    """The token endpoint of *source* (a preset's or the key's)."""
    return required(source.oauth2_token_url, source, label, "oauth2_token_url")


def required(value: str | None, source: Account | Smtp, label: str, key: str) -> str:
    """*value*, the OAuth2 key *key* of *source*, which loading the accounts file made sure of
    for every OAuth2 login without oauth2_token_command (oauth2.check)."""
    if value is None:
        account, prefix = _where(source, label)
        raise ConfigError("missing: the OAuth2 login needs it", account=account,
                          key=prefix + key)
    return value


def grant_fields(source: Account | Smtp, label: str, fields: Mapping[str, str | None], *,
                 timeout: float) -> dict[str, str | None]:
    """*fields* of a token request plus the client's id and credentials."""
    return {**fields, "client_id": source.oauth2_client_id,
            **client_credentials(source, label, timeout=timeout)}


def client_credentials(source: Account | Smtp, label: str, *, timeout: float) -> dict[str, str]:
    """How the client proves who it is: a secret, a signed assertion (certificate), or nothing
    (a public client, e.g. one registered for the device-code flow)."""
    if source.oauth2_certificate_file:
        from helpdesk_fetch.secrets.oauth2.assertion import client_assertion

        assertion = client_assertion(source.oauth2_certificate_file,
                                     client_id=required(source.oauth2_client_id, source, label,
                                                         "oauth2_client_id"),
                                     audience=token_url(source, label), account=label,
                                     timeout=timeout)
        return {"client_assertion_type":
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}
    if any(getattr(source, key) is not None for key in PASSWORD_KEYS):
        return {"client_secret": password_for(source, label=label, timeout=timeout)}
    return {}


def token_data(source: Account | Smtp, label: str, answer: dict[str, Any],
               saved: Mapping[str, Any]) -> SavedTokens:
    """What is saved from a token endpoint's *answer*; the refresh token is kept unless a new
    one came (rotation)."""
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(label, f"{source.oauth2_token_url} answered without an access token")
    if str(answer.get("token_type", "Bearer")).lower() != "bearer":
        raise ProtocolError(label, f"{source.oauth2_token_url} answered with a token of type "
                            f"{answer.get('token_type')!r}, not Bearer")
    try:
        lifetime = int(answer.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    data: SavedTokens = {
        "access_token": remember_secret(token), "expires_at": time.time() + lifetime,
        "token_url": source.oauth2_token_url, "client_id": source.oauth2_client_id,
        "scope": str(answer.get("scope") or " ".join(source.oauth2_scopes)),
        "updated_at": isoformat(utcnow())}
    refresh = answer.get("refresh_token") or saved.get("refresh_token")
    if isinstance(refresh, str) and refresh and source.oauth2_flow != "client_credentials":
        data["refresh_token"] = remember_secret(refresh)
    return data


def authorize_hint(source: Account | Smtp, label: str) -> str:
    """The command that signs *source* in again."""
    if isinstance(source, Smtp):
        return "helpdesk-fetch accounts authorize --smtp"
    return f"helpdesk-fetch accounts authorize {label}"


def _saved_for(source: Account | Smtp, label: str, path: Path) -> dict[str, Any]:
    """The saved tokens, unless they were issued by another token endpoint or to another
    client than the configured ones (the login moved to another tenant or app registration)."""
    saved = store.load(path, account=_where(source, label)[0])
    changed = [key for key, now in (("token_url", source.oauth2_token_url),
                                    ("client_id", source.oauth2_client_id))
               if key in saved and saved[key] != now]
    if not changed:
        return saved
    if source.oauth2_flow == "client_credentials":
        return {}  # no person signs in: the new client simply gets its own token
    raise AuthError(label, f"the OAuth2 configuration changed since the sign-in "
                    f"({' and '.join(changed)} in {path} differs): not signed in for it; run "
                    f"`{authorize_hint(source, label)}`")


def _fresh(saved: dict[str, Any]) -> bool:
    token, expires = saved.get("access_token"), saved.get("expires_at")
    return (isinstance(token, str) and bool(token) and isinstance(expires, (int, float))
            and expires - time.time() > EARLY_SECONDS)


def _refresh_token(source: Account | Smtp, label: str, saved: dict[str, Any],
                   path: Path) -> str:
    refresh = saved.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise AuthError(label, f"not signed in to OAuth2 yet (no refresh token in {path}); run "
                        f"`{authorize_hint(source, label)}` once")
    return remember_secret(refresh)


def _refusal(source: Account | Smtp, label: str, exc: client.Refused, grant: str) -> str:
    what = f"the token endpoint {source.oauth2_token_url} refused"
    if exc.error == "invalid_grant" and grant == "refresh_token":
        return (f"{what} the refresh token ({exc.text()}): it has expired or was revoked (a "
                f"password change, a sign-out, a policy). Sign in again: "
                f"`{authorize_hint(source, label)}`")
    if exc.error in ("invalid_client", "unauthorized_client"):
        return (f"{what} the client ({exc.text()}); check oauth2_client_id and the client "
                "secret or certificate")
    if exc.error == "invalid_scope":
        return f"{what} the scopes ({exc.text()}); check oauth2_scopes"
    return f"{what} the {grant} grant ({exc.text()})"


def _where(source: Account | Smtp, label: str) -> tuple[str | None, str]:
    """(account, key prefix) for ConfigErrors about *source*."""
    return (None, "smtp.") if isinstance(source, Smtp) else (label, "")
