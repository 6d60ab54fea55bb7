"""PostgreSQL URLs: libpq's connection parameters from one, and the URL fit to be shown.

``postgresql://user:password@host:port/dbname?key=value`` as libpq reads it: the query's keys
(``host=/run/postgresql``, ``port``, ``user``, ``password``, ``dbname``, ``sslmode`` …) take
precedence over the URL's parts. A password's ``/ # ? @`` must be percent-encoded; an unencoded
one is refused without being shown, and ``redact`` hides the whole user-info part however it
parses.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

from helpdesk_fetch.errors import ConfigError

KEY = "settings.database"
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&]*")


def parameters(url: str) -> dict[str, str | int]:
    """libpq's keyword parameters for the PostgreSQL *url* (ConfigError when it is malformed)."""
    parts = urlsplit(url)
    pairs = [p for p in parts.query.split("&") if p]
    if parts.fragment or "@" in parts.path or any("=" not in p for p in pairs):
        raise ConfigError("cannot read the PostgreSQL URL: percent-encode / # ? @ in the user "
                          "name, password or database name (%2F %23 %3F %40)", key=KEY)
    port = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2] or None
    params: dict[str, str | int | None] = {"dbname": unquote(parts.path.lstrip("/")) or None,
              "user": unquote(parts.username) if parts.username else None,
              "password": unquote(parts.password) if parts.password is not None else None,
              "host": unquote(parts.hostname) if parts.hostname else None, "port": port}
    params.update(parse_qsl(parts.query))  # the query wins, as with libpq
    if params["port"] is not None:
        params["port"] = _port(params["port"])
    return {key: value for key, value in params.items() if value is not None and value != ""}


def _port(value: str | int) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError("the port of the PostgreSQL URL is not a number", key=KEY) from None
    if not 0 < port < 65536:
        raise ConfigError(f"the port of the PostgreSQL URL is out of range ({port})", key=KEY)
    return port


def password(url: str) -> str | None:
    """The password written in *url* (user-info or query), however the URL parses; else None."""
    try:
        given = parameters(url).get("password")
        return given if isinstance(given, str) else None  # only the port is an int
    except ConfigError:
        pass
    userinfo = _userinfo(url)
    if userinfo is not None and ":" in userinfo:
        return unquote(userinfo.partition(":")[2])
    found = _QUERY_PASSWORD.search(url)
    return unquote(found.group(0).partition("=")[2]) if found else None


def redact(url: str) -> str:
    """*url* without any password, fit for any output."""
    url = _QUERY_PASSWORD.sub(r"\1***", url)
    userinfo = _userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return url
    scheme, _, rest = url.partition("://")
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:***@{rest[len(userinfo) + 1:]}"


def _userinfo(url: str) -> str | None:
    """Everything between ``://`` and the last ``@``: too much rather than too little."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    return rest.rpartition("@")[0]
