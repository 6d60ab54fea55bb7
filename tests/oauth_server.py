"""An OAuth2 identity provider for the tests, on loopback: token endpoint (refresh tokens that
rotate on every use, client credentials with a secret or a signed certificate assertion, device
code, authorization code with PKCE), device-authorization and browser endpoints, and the
token-introspection endpoint (RFC 7662) that Dovecot's oauth2 passdb asks.

It is strict where real providers are strict: a used refresh token is revoked, a wrong client
secret or assertion is refused, PKCE is checked, an expired access token is inactive.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Client:
    secret: str | None = None
    certificate: Path | None = None  # PEM; its public key verifies client assertions


@dataclass
class Grant:
    user: str
    client_id: str
    scope: str


@dataclass
class Provider:
    """The state of the identity provider; tests read and change it directly."""

    clients: dict[str, Client] = field(default_factory=dict)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> user, expiry
    refresh: dict[str, Grant] = field(default_factory=dict)
    app_mailbox: dict[str, str] = field(default_factory=dict)  # client id -> mailbox (app-only)
    devices: dict[str, dict] = field(default_factory=dict)
    codes: dict[str, dict] = field(default_factory=dict)
    device_user: str | None = None  # who "signs in" at the device page
    device_answer: str = "approve"  # or an OAuth2 error such as "access_denied"
    browser_user: str | None = None
    lifetime: int = 3600
    rotate: bool = True
    requests: list[dict] = field(default_factory=list)  # every token request's form
    introspected: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # every token and code ever handed out

    def issue(self, user: str, client_id: str, scope: str = "", *,
              with_refresh: bool = True) -> dict:
        access = "at-" + secrets.token_urlsafe(24)
        self.issued.append(access)
        self.access[access] = (user, time.time() + self.lifetime)
        answer = {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime,
                  "scope": scope}
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self.issued.append(refresh)
            self.refresh[refresh] = Grant(user, client_id, scope)
            answer["refresh_token"] = refresh
        return answer

    def expire_access_tokens(self) -> None:
        self.access = {k: (user, 0.0) for k, (user, _) in self.access.items()}

    def revoke(self, user: str) -> None:
        """What an administrator's "revoke sessions" does: every token of *user* dies."""
        self.refresh = {k: g for k, g in self.refresh.items() if g.user != user}
        self.access = {k: v for k, v in self.access.items() if v[0] != user}


class OAuthServer:
    def __init__(self, *, certificate: tuple[Path, Path] | None = None) -> None:
        """*certificate*: (cert, key) to serve https instead of http."""
        self.provider = Provider()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        # A client that gives up between the server's select() and its accept() would leave a
        # blocking accept() waiting for the next client, and stop() waiting for ever.
        self.httpd.socket.setblocking(False)
        scheme = "http"
        if certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*certificate)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.lock = threading.Lock()

    def start(self) -> OAuthServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the endpoints -----------------------------------------------------------------------
    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        p = self.provider
        p.requests.append(form)
        grant = form.get("grant_type")
        client_id = form.get("client_id", "")
        if client_id not in p.clients:
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        if not self._client_ok(p.clients[client_id], form, grant):
            return 401, {"error": "invalid_client", "error_description": "bad credentials"}
        if grant == "refresh_token":
            return self._refresh(form, client_id)
        if grant == "client_credentials":
            mailbox = p.app_mailbox.get(client_id)
            if mailbox is None:
                return 400, {"error": "unauthorized_client"}
            return 200, p.issue(mailbox, client_id, form.get("scope", ""), with_refresh=False)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device_poll(form, client_id)
        if grant == "authorization_code":
            return self._code(form, client_id)
        return 400, {"error": "unsupported_grant_type"}

    def _client_ok(self, client: Client, form: dict, grant: str | None) -> bool:
        if client.certificate is not None and "client_assertion" in form:
            return _assertion_ok(form["client_assertion"], client.certificate, self.url +
                                 "/token", form["client_id"])
        if client.secret is not None:
            return form.get("client_secret") == client.secret
        return "client_secret" not in form  # a public client

    def _refresh(self, form: dict, client_id: str) -> tuple[int, dict]:
        p = self.provider
        grant = p.refresh.get(form.get("refresh_token", ""))
        if grant is None or grant.client_id != client_id:
            return 400, {"error": "invalid_grant",
                         "error_description": "AADSTS70008: The refresh token has expired or "
                                              "was revoked.\r\nTrace ID: 1234"}
        answer = p.issue(grant.user, client_id, grant.scope, with_refresh=p.rotate)
        if p.rotate:
            del p.refresh[form["refresh_token"]]
        return 200, answer

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict]:
        code = "dc-" + secrets.token_urlsafe(16)
        self.provider.issued.append(code)
        user_code = secrets.token_hex(4).upper()
        self.provider.devices[code] = {"client_id": form.get("client_id"), "polls": 0,
                                       "scope": form.get("scope", ""), "user_code": user_code}
        return 200, {"device_code": code, "user_code": user_code, "interval": 1,
                     "verification_uri": self.url + "/device", "expires_in": 60}

    def _device_poll(self, form: dict, client_id: str) -> tuple[int, dict]:
        p = self.provider
        device = p.devices.get(form.get("device_code", ""))
        if device is None:
            return 400, {"error": "expired_token"}
        device["polls"] += 1
        if device["polls"] < 2:  # the person is still typing the code
            return 400, {"error": "authorization_pending"}
        if p.device_answer != "approve":
            return 400, {"error": p.device_answer, "error_description": "the user said no"}
        del p.devices[form["device_code"]]
        return 200, p.issue(p.device_user, client_id, device["scope"])

    def authorize(self, query: dict[str, str]) -> str:
        """The browser page: signs *browser_user* in and sends the browser back with a code."""
        code = "ac-" + secrets.token_urlsafe(16)
        self.provider.codes[code] = dict(query)
        answer = {"code": code, "state": query.get("state", "")}
        return query["redirect_uri"] + "?" + urllib.parse.urlencode(answer)

    def _code(self, form: dict, client_id: str) -> tuple[int, dict]:
        request = self.provider.codes.pop(form.get("code", ""), None)
        if request is None or request["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if challenge.decode() != request.get("code_challenge"):
            return 400, {"error": "invalid_grant", "error_description": "PKCE mismatch"}
        return 200, self.provider.issue(self.provider.browser_user, client_id,
                                        request.get("scope", ""))

    def introspect(self, form: dict[str, str]) -> dict:
        token = form.get("token", "")
        self.provider.introspected.append(token)
        user, expires = self.provider.access.get(token, (None, 0.0))
        if user is None or expires < time.time():
            return {"active": False}
        return {"active": True, "username": user}


def _handler(server: OAuthServer):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in urllib.parse.parse_qs(
                self.rfile.read(length).decode(), keep_blank_values=True).items()}
            with server.lock:
                if self.path == "/token":
                    status, answer = server.token(form)
                elif self.path == "/devicecode":
                    status, answer = server.device_authorization(form)
                elif self.path == "/introspect":
                    status, answer = 200, server.introspect(form)
                else:
                    status, answer = 404, {"error": "not_found"}
            self._json(status, answer)

        def do_GET(self) -> None:  # noqa: N802
            parts = urllib.parse.urlsplit(self.path)
            if parts.path != "/authorize":
                return self._json(404, {"error": "not_found"})
            query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
            with server.lock:
                location = server.authorize(query)
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _json(self, status: int, answer: dict) -> None:
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


def _assertion_ok(assertion: str, certificate: Path, audience: str, client_id: str) -> bool:
    """Verify an RS256 client assertion (RFC 7523) against *certificate*, with openssl."""
    try:
        head, body, signature = assertion.split(".")
        header, claims = json.loads(_unb64(head)), json.loads(_unb64(body))
    except ValueError:
        return False
    der = ssl.PEM_cert_to_DER_cert(certificate.read_text())
    if header.get("alg") != "RS256" or header.get("x5t") != _b64(hashlib.sha1(der).digest()):
        return False
    if (claims.get("aud"), claims.get("iss"), claims.get("sub")) != (audience, client_id,
                                                                     client_id):
        return False
    if not claims.get("exp", 0) > time.time() >= claims.get("nbf", 0) - 5:
        return False
    with tempfile.TemporaryDirectory() as scratch:
        key, sig = Path(scratch) / "key.pem", Path(scratch) / "sig"
        key.write_bytes(subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in",
                                        str(certificate)], capture_output=True,
                                       check=True).stdout)
        sig.write_bytes(_unb64(signature))
        done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(key), "-signature",
                               str(sig)], input=f"{head}.{body}".encode(), capture_output=True)
    return done.returncode == 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
