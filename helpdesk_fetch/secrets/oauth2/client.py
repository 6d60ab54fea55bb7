"""Talking to an OAuth2 endpoint: one form POST, one JSON answer (RFC 6749 §5), over verified TLS.

The system's CAs are trusted, and the account's ``ca_file`` as well (for a private identity
provider). A refusal by the endpoint (``{"error": ...}``) becomes ``Refused`` for the caller to
explain; everything else that goes wrong is a ConnectError naming the account and the address.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from helpdesk_fetch import __version__
from helpdesk_fetch.config.oauth2 import is_loopback
from helpdesk_fetch.errors import ConnectError
from helpdesk_fetch.secrets.redact import redact
from helpdesk_fetch.tls import tls_context, untrusted

MAX_ANSWER = 1024 * 1024


class Refused(Exception):
    """The endpoint answered with an OAuth2 error (``invalid_grant``, ``authorization_pending``)."""

    def __init__(self, error: str, description: str = "") -> None:
        self.error, self.description = error, description
        super().__init__(f"{error}: {description}" if description else error)

    def text(self) -> str:
        """``error: first line of the description`` (Microsoft's run long), redacted."""
        first = self.description.strip().splitlines()[0] if self.description.strip() else ""
        return redact(f"{self.error}: {first[:300]}" if first else self.error)


def _opener(url: str, context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """The environment's proxy settings apply, except to a token helper on this machine: a
    proxy would see its refresh token and client secret (plain http is allowed only there)."""
    handlers: list[urllib.request.BaseHandler] = (
        [urllib.request.HTTPSHandler(context=context)] if context is not None else [])
    if is_loopback(urllib.parse.urlsplit(url).hostname):
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def post_form(url: str, fields: Mapping[str, str | None], *, account: str, timeout: float,
              ca_file: str | None = None) -> dict[str, Any]:
    """POST *fields* (those not None) form-encoded to *url*; the JSON object it answers with."""
    body = urllib.parse.urlencode({k: v for k, v in fields.items() if v is not None}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        "User-Agent": f"helpdesk-fetch/{__version__}"})
    context = tls_context(account, ca_file) if url.startswith("https:") else None
    try:
        with _opener(url, context).open(request, timeout=timeout) as response:
            return _object(response.read(MAX_ANSWER), url, account)
    except urllib.error.HTTPError as exc:
        answer = _try_object(exc.read(MAX_ANSWER))
        if answer is not None and isinstance(answer.get("error"), str):
            raise Refused(answer["error"], str(answer.get("error_description") or "")) from None
        raise ConnectError(account, f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ConnectError(account, f"{url}: {_reason(exc.reason, timeout, ca_file)}") from None
    except http.client.HTTPException:  # something answered, but not in HTTP
        raise ConnectError(account, f"{url}: not an HTTP answer; is this the token "
                           "endpoint's address?") from None
    except TimeoutError:
        raise ConnectError(account, f"{url}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ConnectError(account, f"{url}: {exc.strerror or exc}") from None


def _reason(reason: str | BaseException, timeout: float, ca_file: str | None) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return untrusted(reason, ca_file=ca_file, what="the TLS certificate",
                         host_key="the endpoint's address")
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError):
        return reason.strerror or str(reason)
    return str(reason)


def _object(data: bytes, url: str, account: str) -> dict[str, Any]:
    answer = _try_object(data)
    if answer is None:
        raise ConnectError(account, f"{url}: the answer is not a JSON object")
    if isinstance(answer.get("error"), str):
        raise Refused(answer["error"], str(answer.get("error_description") or ""))
    return answer


def _try_object(data: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None
