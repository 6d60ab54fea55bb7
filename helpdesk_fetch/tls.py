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


# OpenSSL's verify codes (X509_V_ERR_*) whose fix is not a CA
_NOT_YET_VALID, _EXPIRED, _HOSTNAME_MISMATCH, _IP_MISMATCH = 9, 10, 62, 64


def untrusted(exc: ssl.SSLCertVerificationError, *, ca_file: str | None, what: str =
              "the server's TLS certificate", ca_key: str = "ca_file",
              host_key: str = "host") -> str:
    """Why *what* was refused, and the fix that fits: the name the host is set to (*host_key*)
    where the certificate is for another, a renewal where it expired, else the CA (*ca_key*,
    set to *ca_file* or not)."""
    said = (exc.verify_message or str(exc)).rstrip(".")
    if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
        return (f"{what} is issued to another name ({said}); set {host_key} to a name (or "
                "address) it is issued to")
    if exc.verify_code in (_NOT_YET_VALID, _EXPIRED):  # it, or a CA certificate above it
        where = f"on the server, or the CA in {ca_key}," if ca_file else "on the server"
        return (f"{what} is not valid now ({said}); it must be renewed {where} or this "
                "machine's clock is wrong")
    if ca_file:
        return f"{what} is not trusted ({said}); is {ca_key} ({ca_file}) the CA that issued it?"
    return f"{what} is not trusted ({said}); for a private CA set {ca_key}"


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
