"""A client assertion (RFC 7523 §2.2): a JWT the client signs with its certificate's private key,
which Microsoft Entra ID accepts instead of a client secret.

The standard library cannot make RSA signatures, so the ``openssl`` command signs (it is on every
server that has TLS); no new Python dependency is needed. The certificate file holds the PEM
certificate and its unencrypted private key, and must be mode 600 like any file with a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import ssl
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from helpdesk_fetch.config import check_private
from helpdesk_fetch.errors import ConfigError

LIFETIME_SECONDS = 300
_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
KEY = "oauth2_certificate_file"


def client_assertion(cert_file: str, *, client_id: str, audience: str, account: str | None,
                     timeout: float) -> str:
    """A signed JWT saying "I am *client_id*" to the token endpoint *audience*."""
    path = Path(cert_file)
    der = _certificate(path, account)
    header = {"alg": "RS256", "typ": "JWT", "x5t": _b64(hashlib.sha1(der).digest()),
              "x5t#S256": _b64(hashlib.sha256(der).digest())}
    now = int(time.time())
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "iat": now, "nbf": now, "exp": now + LIFETIME_SECONDS}
    signing_input = f"{_b64(_json(header))}.{_b64(_json(claims))}"
    return f"{signing_input}.{_b64(_sign(path, signing_input.encode(), account, timeout))}"


def _certificate(path: Path, account: str | None) -> bytes:
    """The DER bytes of the certificate in *path* (which must be private: it holds the key)."""
    try:
        check_private(path)
        text = path.read_text(encoding="ascii")
    except ConfigError as exc:
        raise ConfigError(str(exc), account=account, key=KEY) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a PEM file"
        raise ConfigError(f"cannot read {path}: {reason}", account=account, key=KEY) from None
    found = _CERT_RE.search(text)
    if not found or "PRIVATE KEY-----" not in text:
        raise ConfigError(f"{path} must hold the PEM certificate and its private key",
                          account=account, key=KEY)
    return ssl.PEM_cert_to_DER_cert(found.group(0))


def _sign(path: Path, data: bytes, account: str | None, timeout: float) -> bytes:
    """RS256: an RSASSA-PKCS1-v1_5 signature over SHA-256, made by ``openssl``."""
    if shutil.which("openssl") is None:
        raise ConfigError("signing with a certificate needs the openssl command; install it "
                          "(Debian: apt-get install openssl) or use a client secret",
                          account=account, key=KEY)
    try:
        done = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(path), "-passin",
                               "pass:"], input=data, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"openssl did not sign within {timeout:g} s", account=account,
                          key=KEY) from None
    if done.returncode != 0 or not done.stdout:
        raise ConfigError(f"openssl cannot sign with the key in {path} (it must be an "
                          "unencrypted RSA key)", account=account, key=KEY)
    return done.stdout


def _json(data: Mapping[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
