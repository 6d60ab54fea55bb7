"""TLS contexts for every connection the tool makes (IMAP, POP3, SMTP, OAuth2 endpoints): the
certificate and host name are always verified (spec §7); ``ca_file`` adds a private CA."""

from __future__ import annotations

import functools
import os
import re
import ssl

from helpdesk_fetch.errors import ConfigError


def tls_context(account: str, ca_file: str | None) -> ssl.SSLContext:
    """A context that verifies the certificate and host name; *ca_file* adds a private CA."""
    context = ssl.create_default_context(capath=system_ca_dir())
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or "not a PEM certificate file"
            raise ConfigError(f"cannot load {ca_file}: {reason}", account=account,
                              key="ca_file") from None
    return context


_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.\d+")


@functools.cache
def system_ca_dir() -> str | None:
    """The system's trusted CAs as a hashed directory, where it has one (Debian, Ubuntu:
    /etc/ssl/certs), else None.

    The default trust store loads the whole CA bundle file when a context is made: 40-50 ms
    here, a third of a cron run that finds no mail. OpenSSL looks certificates up in a hashed
    directory only as it needs them, and on such systems the directory holds the same
    certificates as the bundle. Without one (or with $SSL_CERT_FILE set), the default store is
    used as before."""
    paths = ssl.get_default_verify_paths()
    if os.environ.get(paths.openssl_cafile_env) or not paths.capath:
        return None
    try:
        with os.scandir(paths.capath) as entries:
            hashed = any(_HASHED_NAME.fullmatch(entry.name) for entry in entries)
    except OSError:
        return None
    return paths.capath if hashed else None
