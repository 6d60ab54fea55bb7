"""The first sign-in of an OAuth2 login (``accounts authorize``): it ends with a refresh token in
the login's token file.

Two ways, both without a new dependency:

- the device-code flow (RFC 8628), where the provider offers it (Microsoft): the administrator
  opens a web page on any device and types a short code;
- the authorization-code flow with PKCE and a loopback redirect (RFC 8252), for providers whose
  device flow does not allow mail scopes (Google): the administrator opens an address in a
  browser, and the browser comes back to a listener on 127.0.0.1 of this machine (from another
  machine: through ``ssh -L PORT:127.0.0.1:PORT``).

What the administrator must read is handed to *say*; the CLI prints it.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpdesk_fetch.config import Account, Smtp
from helpdesk_fetch.errors import AuthError, UsageError
from helpdesk_fetch.secrets.oauth2 import client, store, tokens

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BROWSER_WAIT_SECONDS = 600
CONNECTION_SECONDS = 10  # one connection to the listener, for its whole request


def authorize(source: Account | Smtp, *, label: str, state_dir: str, timeout: float,
              say: Callable[[str], None], browser: bool = False, port: int = 0) -> Path:
    """Sign *source* in and save its refresh token; the token file's path."""
    if source.auth != "oauth2":
        raise UsageError(f"{label}: nothing to authorize: it logs in with a password "
                         "(auth = \"oauth2\" turns OAuth2 on)")
    if source.oauth2_token_command is not None:
        raise UsageError(f"{label}: nothing to authorize: oauth2_token_command gets the tokens")
    if source.oauth2_flow == "client_credentials":
        raise UsageError(f"{label}: nothing to authorize: the client-credentials flow signs in "
                         "without a person; `helpdesk-fetch accounts test` checks it")
    if browser or not source.oauth2_device_url:
        if not source.oauth2_authorize_url:
            raise UsageError(f"{label}: set oauth2_device_url or oauth2_authorize_url (or a "
                             "provider) to sign in")
        answer = _browser_flow(source, label, timeout, say, port, source.oauth2_authorize_url)
    else:
        answer = _device_flow(source, label, timeout, say, source.oauth2_device_url)
    data = tokens.token_data(source, label, answer, {})
    if "refresh_token" not in data:
        raise AuthError(label, "signed in, but the provider gave no refresh token (Microsoft: "
                        "add the offline_access scope; Google: the consent screen must be "
                        "shown again)")
    path = store.token_path(source, label=label, state_dir=state_dir)
    with store.locked(path, account=None if isinstance(source, Smtp) else label):
        store.save(path, data, label=label)
    return path


# -- device code (RFC 8628) ---------------------------------------------------------------------

def _device_flow(source: Account | Smtp, label: str, timeout: float,
                 say: Callable[[str], None], device_url: str) -> dict[str, Any]:
    fields = {"client_id": source.oauth2_client_id, "scope": " ".join(source.oauth2_scopes)}
    try:
        grant = client.post_form(device_url, fields, account=label,
                                 timeout=timeout, ca_file=source.ca_file)
    except client.Refused as exc:
        raise AuthError(label, f"{source.oauth2_device_url} refused to start the sign-in "
                        f"({exc.text()})") from None
    uri = grant.get("verification_uri") or grant.get("verification_url")
    if not grant.get("device_code") or not grant.get("user_code") or not uri:
        raise AuthError(label, f"{source.oauth2_device_url} answered without a code")
    say(f"Sign in as {source.username}: open {uri} in a browser on any device and enter "
        f"the code {grant['user_code']}")
    return _poll(source, label, grant, timeout)


def _poll(source: Account | Smtp, label: str, grant: dict[str, Any],
          timeout: float) -> dict[str, Any]:
    interval = max(1, int(grant.get("interval") or 5))
    deadline = time.monotonic() + int(grant.get("expires_in") or 900)
    fields = tokens.grant_fields(source, label, {"grant_type": DEVICE_GRANT,
                                                 "device_code": grant["device_code"]},
                                 timeout=timeout)
    while time.monotonic() < deadline:
        time.sleep(interval)
        try:
            return client.post_form(tokens.token_url(source, label), fields, account=label,
                                    timeout=timeout, ca_file=source.ca_file)
        except client.Refused as exc:
            if exc.error == "authorization_pending":
                continue
            if exc.error == "slow_down":
                interval += 5  # RFC 8628 §3.5
                continue
            raise AuthError(label, _device_refusal(exc)) from None
    raise AuthError(label, "the code expired before the sign-in was finished; run the command "
                    "again")


def _device_refusal(exc: client.Refused) -> str:
    if exc.error == "expired_token":
        return "the code expired before the sign-in was finished; run the command again"
    if exc.error in ("access_denied", "authorization_declined"):
        return f"the sign-in was declined ({exc.text()})"
    return f"the sign-in failed ({exc.text()})"


# -- authorization code with PKCE and a loopback redirect (RFC 7636, RFC 8252) ------------------

def _browser_flow(source: Account | Smtp, label: str, timeout: float,
                  say: Callable[[str], None], port: int, authorize_url: str) -> dict[str, Any]:
    verifier = secrets.token_urlsafe(64)
    state = secrets.token_urlsafe(24)
    with _Listener(port, label, state) as listener:
        redirect = f"http://127.0.0.1:{listener.port}/"
        say(f"Sign in as {source.username}: open this address in a browser:\n\n"
            f"  {_authorize_url(source, authorize_url, redirect, state, verifier)}\n\n"
            f"The browser then comes back to {redirect} on this machine. If the browser runs "
            f"elsewhere, first forward the port: ssh -L {listener.port}:127.0.0.1:"
            f"{listener.port} THIS-HOST (and use --port to keep it fixed).")
        answer = listener.wait(BROWSER_WAIT_SECONDS)
    if "error" in answer:
        raise AuthError(label, f"the sign-in failed ({answer['error']}: "
                        f"{answer.get('error_description', '')[:300]})")
    fields = tokens.grant_fields(source, label, {
        "grant_type": "authorization_code", "code": answer.get("code", ""),
        "redirect_uri": redirect, "code_verifier": verifier}, timeout=timeout)
    try:
        return client.post_form(tokens.token_url(source, label), fields, account=label,
                                timeout=timeout, ca_file=source.ca_file)
    except client.Refused as exc:
        raise AuthError(label, f"the sign-in failed ({exc.text()})") from None


def _authorize_url(source: Account | Smtp, authorize_url: str, redirect: str, state: str,
                   verifier: str) -> str:
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = {"response_type": "code", "client_id": source.oauth2_client_id,
             "redirect_uri": redirect, "scope": " ".join(source.oauth2_scopes), "state": state,
             "code_challenge": challenge.rstrip(b"=").decode(), "code_challenge_method": "S256",
             "login_hint": source.username}
    if source.provider == "google":  # a refresh token only with offline access and consent
        query.update(access_type="offline", prompt="consent")
    separator = "&" if "?" in authorize_url else "?"
    return authorize_url + separator + urllib.parse.urlencode(query)


class _Listener:
    """A one-shot HTTP listener on 127.0.0.1 for the browser's redirect. Only an answer that
    carries the *state* of this sign-in ends the wait: another local process, or a browser's
    prefetch, gets 400 and the real redirect is still taken. Connections are served each in a
    thread of its own, with a timeout: a local process that connects and sends nothing (or
    slowly) cannot keep the browser's redirect waiting."""

    def __init__(self, port: int, label: str, state: str) -> None:
        self.answer: dict[str, str] | None = None
        self.answered = threading.Event()
        self.label = label
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = CONNECTION_SECONDS

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                params = {k: v[0] for k, v in query.items()}
                status, body = _reply(params, state)
                if status == 200:
                    outer.take(params)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:  # the query holds the code: never log it
                pass

        try:
            self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
        self.server.daemon_threads = True  # a connection still open never holds up the exit
        self.port = self.server.server_address[1]
        self._lock = threading.Lock()

    def __enter__(self) -> _Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.server_close()

    def take(self, params: dict[str, str]) -> None:
        """The first answer with the right state wins."""
        with self._lock:
            if self.answer is None:
                self.answer = params
                self.answered.set()

    def wait(self, seconds: float) -> dict[str, str]:
        deadline = time.monotonic() + seconds
        while not self.answered.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AuthError(self.label, "no answer from the browser in time; start again")
            self.server.timeout = min(left, 0.2)
            self.server.handle_request()  # accepts one connection and hands it to a thread
        assert self.answer is not None
        return self.answer


def _reply(params: dict[str, str], state: str) -> tuple[int, bytes]:
    """The listener's HTTP status and page for a request with the query *params*."""
    if "code" not in params and "error" not in params:
        return 404, b"helpdesk-fetch: waiting for the sign-in.\n"
    if not secrets.compare_digest(params.get("state", "").encode(), state.encode()):
        return 400, b"helpdesk-fetch: not this sign-in (wrong or missing state); still waiting.\n"
    return 200, b"helpdesk-fetch: signed in; you can close this window.\n"
