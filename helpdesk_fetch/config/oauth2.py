"""The OAuth2 keys of an account or of ``[smtp]``: checked once when the file is loaded, with the
endpoints and scopes of ``provider = "microsoft"`` / ``"google"`` filled in.

An explicit key always wins over the preset, so a private identity provider (or the tests' own)
is configured with ``oauth2_token_url`` and friends and no provider.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import urllib.parse
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from helpdesk_fetch.errors import ConfigError, ConfigPlace

if TYPE_CHECKING:
    from helpdesk_fetch.config.schema import Account, OAuth2Keys, Smtp

    Keys = TypeVar("Keys", Account, Smtp)

PROVIDERS = ("microsoft", "google")
FLOWS = ("refresh_token", "client_credentials")
AUTHS = ("password", "oauth2")

MICROSOFT_LOGIN = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/{endpoint}"
OUTLOOK = "https://outlook.office365.com/"
MICROSOFT_SCOPES = {"imap": "IMAP.AccessAsUser.All", "pop3": "POP.AccessAsUser.All",
                    "smtp": "SMTP.Send"}
# Google's device flow does not allow the Gmail scope, so Gmail is authorized in a browser.
GOOGLE = {"oauth2_token_url": "https://oauth2.googleapis.com/token",
          "oauth2_authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
          "oauth2_scopes": ("https://mail.google.com/",)}
_MULTI_TENANT = ("common", "organizations", "consumers")


def oauth2_keys() -> tuple[str, ...]:
    """The OAuth2 keys (config.py imports this module, so config is imported late here)."""
    from helpdesk_fetch.config.schema import OAuth2Keys

    return tuple(f.name for f in dataclasses.fields(OAuth2Keys))


def _password_keys() -> tuple[str, ...]:
    from helpdesk_fetch.config.schema import PASSWORD_KEYS

    return PASSWORD_KEYS


def check(obj: Keys, data: dict[str, Any], path: Path, account: str | None, prefix: str, *,
          protocol: str) -> Keys:
    """*obj* (an Account or Smtp) with its auth keys checked and the provider preset applied."""
    where = ConfigPlace(path=path, account=account)
    given: list[str] = [k for k in oauth2_keys() if k in data and k != "auth"]
    if obj.auth not in AUTHS:
        raise ConfigError(f"{obj.auth!r} is not one of {', '.join(AUTHS)}", key=prefix + "auth",
                          **where)
    if obj.auth == "password":
        if given:
            raise ConfigError('applies only with auth = "oauth2"', key=prefix + given[0], **where)
        return obj
    if not obj.username:
        raise ConfigError("missing: an OAuth2 login needs the mailbox's user name",
                          key=prefix + "username", **where)
    if obj.oauth2_token_command is not None:
        extra: list[str] = [k for k in (*given, *_password_keys()) if k in data
                 and k != "oauth2_token_command"]
        if extra:
            raise ConfigError("does not apply with oauth2_token_command (the command gets the "
                              "token itself); remove it", key=prefix + extra[0], **where)
        return obj
    _check_choice(obj.provider, PROVIDERS, key=prefix + "provider", **where)
    _check_choice(obj.oauth2_flow, FLOWS, key=prefix + "oauth2_flow", **where)
    obj = _apply_preset(obj, data, protocol, prefix, where)
    _check_flow(obj, data, prefix, where)
    return obj


def _check_choice(value: str | None, choices: Collection[str], *, key: str,
                  **where: Unpack[ConfigPlace]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(f"{value!r} is not one of {', '.join(choices)}", key=key, **where)


def _apply_preset(obj: Keys, data: dict[str, Any], protocol: str, prefix: str,
                  where: ConfigPlace) -> Keys:
    """Fill in what the provider implies and the file did not say."""
    cc = obj.oauth2_flow == "client_credentials"
    if obj.oauth2_tenant is not None and obj.provider != "microsoft":
        raise ConfigError('applies only with provider = "microsoft"',
                          key=prefix + "oauth2_tenant", **where)
    preset: dict[str, Any] = {}  # OAuth2Keys' keys and values
    if obj.provider == "microsoft":
        tenant = obj.oauth2_tenant or "common"
        if cc and tenant in _MULTI_TENANT:
            raise ConfigError("the client-credentials flow needs your tenant's id or domain "
                              "(e.g. \"contoso.onmicrosoft.com\")", key=prefix + "oauth2_tenant",
                              **where)
        url = MICROSOFT_LOGIN.format
        preset = {"oauth2_tenant": tenant,
                  "oauth2_token_url": url(tenant=tenant, endpoint="token"),
                  "oauth2_device_url": url(tenant=tenant, endpoint="devicecode"),
                  "oauth2_authorize_url": url(tenant=tenant, endpoint="authorize"),
                  "oauth2_scopes": (OUTLOOK + ".default",) if cc else
                  (OUTLOOK + MICROSOFT_SCOPES[protocol], "offline_access")}
    elif obj.provider == "google":
        if cc:
            raise ConfigError("Google has no client-credentials flow for mail; use a service "
                              "account through oauth2_token_command",
                              key=prefix + "oauth2_flow", **where)
        preset = dict(GOOGLE)
    changes = {k: v for k, v in preset.items() if k not in data}
    return dataclasses.replace(obj, **changes)


def _check_flow(obj: OAuth2Keys, data: dict[str, Any], prefix: str, where: ConfigPlace) -> None:
    for key in ("oauth2_token_url", "oauth2_client_id"):
        if not getattr(obj, key):
            raise ConfigError("missing: the OAuth2 login needs it (or provider = \"microsoft\" "
                              "/ \"google\" for the endpoints)", key=prefix + key, **where)
    for key in ("oauth2_token_url", "oauth2_device_url", "oauth2_authorize_url"):
        if getattr(obj, key):
            _check_url(getattr(obj, key), key=prefix + key, **where)
    secrets = [k for k in _password_keys() if k in data]
    if obj.oauth2_flow == "client_credentials":
        if not secrets and not obj.oauth2_certificate_file:
            raise ConfigError("missing: the client-credentials flow needs the client secret "
                              "(password_env / password_file / password_command / password) "
                              "or oauth2_certificate_file", key=prefix + "password_env", **where)
        if secrets and obj.oauth2_certificate_file:
            raise ConfigError("give either a client secret or a certificate, not both",
                              key=prefix + "oauth2_certificate_file", **where)
    elif obj.oauth2_certificate_file:
        raise ConfigError('applies only with oauth2_flow = "client_credentials"',
                          key=prefix + "oauth2_certificate_file", **where)


def _check_url(url: str, *, key: str, **where: Unpack[ConfigPlace]) -> None:
    """https only: a token must never cross the network in the clear (http on loopback is fine,
    for a local token helper and for the tests)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConfigError("must be an https:// address (http:// only on this machine's loopback)",
                      key=key, **where)


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False
