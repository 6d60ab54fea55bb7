"""The accounts file (spec §2): find it, load it, validate it into the dataclasses of ``schema``.

Validation is done once, here, and every error names the file, the account and the key. Writing
the file lives in ``edit``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
import tomllib
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from helpdesk_fetch.config import dburl
from helpdesk_fetch.config import oauth2 as oauth2_settings
from helpdesk_fetch.config import rules as rule_checks
from helpdesk_fetch.config.private import check_private
from helpdesk_fetch.config.schema import (
    BARE_ADDRESS_RE,
    DATABASE_PASSWORD_KEYS,
    DEFAULT_PORTS,
    KEYWORD_RE,
    LANGUAGES,
    MAILDIR_KEYS,
    NAME_RE,
    PASSWORD_KEYS,
    PROTOCOLS,
    SECURITIES,
    Account,
    Alerts,
    Automail,
    Config,
    Hooks,
    Resource,
    Rule,
    Settings,
    Smtp,
)
from helpdesk_fetch.enums import EventKind
from helpdesk_fetch.errors import ConfigError, ConfigPlace, ConfigUnreadable, did_you_mean

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Table = TypeVar("Table", bound=DataclassInstance)  # one of schema's dataclasses

ENV_VAR = "HELPDESK_FETCH_CONFIG"
MAX_MESSAGE_BYTES = 2**30  # a message is held in memory whole, parsed, stored (INTEGER sizes)


def config_path(option: str | os.PathLike[str] | None = None) -> Path:
    """Where the accounts file is: ``--config``, else ``$HELPDESK_FETCH_CONFIG``, else
    ``$XDG_CONFIG_HOME/helpdesk-fetch/accounts.toml`` (``~/.config/...`` when that is unset)."""
    if option:
        return Path(option)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "helpdesk-fetch" / "accounts.toml"


def _whose(path: Path) -> str:
    """Whose the file is and who asks, for an unreadable one: " (owned by root, mode 600;
    this runs as helpdesk)" (nothing when even that cannot be looked at)."""
    from helpdesk_fetch.users import user_or_uid

    try:
        info = path.stat()
    except OSError:
        return ""
    owner, me = user_or_uid(info.st_uid), user_or_uid(os.geteuid())
    mode = stat.S_IMODE(info.st_mode)
    if owner == me:
        return f" (mode {mode:o}); fix: chmod u+r {path}"
    return f" (owned by {owner}, mode {mode:o}; this runs as {me}); fix: chown {me} {path}"


def load(path: Path) -> Config:
    """Read and validate the accounts file at *path*."""
    try:
        _check_regular(path)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigUnreadable(
            "accounts file not found; `helpdesk-fetch accounts add NAME` creates it (or "
            "copy sample-accounts.toml from the source directory), or point --config or "
            f"${ENV_VAR} at the file", path=path) from None
    except PermissionError as exc:
        raise ConfigUnreadable(f"cannot read the accounts file: {exc.strerror}"
                               f"{_whose(path)}", path=path) from None
    except OSError as exc:
        raise ConfigUnreadable(f"cannot read the accounts file: {exc.strerror}",
                               path=path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(_not_utf8(raw, exc), path=path) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    config = parse(data, path)
    check_private(path, holds_secret=_holds_inline_secret(config))
    _check_templates(config.settings.templates_dir)
    return config


def require_accounts(config: Config) -> Config:
    """*config*, if it defines at least one account (spec §2); else the ConfigError that every
    command reading mail stops with. Under cron an empty, cut-short or wrong file must not pass
    for "nothing to do": ingestion would stop without a word. Accounts that are all disabled
    are a decision, and pass."""
    if not config.accounts:
        raise ConfigError(
            "defines no [[accounts]] table, so there is no mailbox to read: is it empty, cut "
            "short, or the wrong file? Add one with `helpdesk-fetch accounts add NAME`, or point "
            f"--config or ${ENV_VAR} at the accounts file", path=config.path)
    return config


def _check_regular(path: Path) -> None:
    """Refuse what is not a regular file (/dev/null, a FIFO, a directory) before it is read:
    /dev/null reads as an empty file, and the database would be created beside it, in /dev."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a device" if stat.S_ISCHR(mode)
                or stat.S_ISBLK(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a socket")
        raise ConfigError(f"is {kind}, not an accounts file; point --config or ${ENV_VAR} at "
                          "the accounts file", path=path)


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    """Where a file that is not UTF-8 goes wrong, as an editor shows it: line and column."""
    line = raw.count(b"\n", 0, exc.start) + 1
    column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
    return (f"line {line}, column {column}: byte 0x{raw[exc.start]:02x} is not UTF-8 (TOML "
            "files are UTF-8; the file was probably saved as Latin-1 or Windows-1252: "
            "save it again as UTF-8)")


def parse(data: dict[str, Any], path: Path) -> Config:
    """Validate already-decoded TOML *data* that came from *path*."""
    top = ConfigPlace(path=path)
    _reject_unknown(data, {"settings", "smtp", "automail", "resources", "accounts", "rules",
                           "alerts", "hooks"}, top, "")
    settings = _settings(_table(data, "settings", path), path)
    smtp_data = data.get("smtp")
    smtp = _smtp(_table(data, "smtp", path), path) if smtp_data is not None else None
    automail = _build(Automail, _table(data, "automail", path), top, "automail.")
    resources = tuple(_resource(r, _where(r, path, "resource", n))
                      for n, r in enumerate(_array(data, "resources", path), 1))
    accounts = tuple(_account(a, path, _where(a, path, "account", n))
                     for n, a in enumerate(_array(data, "accounts", path), 1))
    rules = tuple(_rule(r, _where(r, path, "rule", n))
                  for n, r in enumerate(_array(data, "rules", path), 1))
    alerts = _alerts(_table(data, "alerts", path), path, smtp) if "alerts" in data else None
    hooks = _hooks(_table(data, "hooks", path), path) if "hooks" in data else None
    config = Config(path, settings, automail, smtp, resources, accounts, rules=rules,
                    alerts=alerts, hooks=hooks)
    _check_references(config)
    rule_checks.check_references(config)
    return config


def _check_templates(directory: str) -> None:
    """The administrator's auto-mail texts decide what the helpdesk mails: their directory and
    every text in it must be as private as the accounts file (private.py)."""
    if not directory or not Path(directory).is_dir():
        return  # none: the built-in texts are used
    check_private(Path(directory), holds_secret=False)
    for text in sorted(Path(directory).glob("*.txt")):
        check_private(text, holds_secret=False)


def _holds_inline_secret(config: Config) -> bool:
    return (any(a.password for a in config.accounts) or bool(config.smtp and config.smtp.password)
            or dburl.password(config.settings.database) is not None)


def _table(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"must be a table ([{name}])", path=path, key=name)
    return value


def _array(data: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"must be an array of tables ([[{name}]])", path=path, key=name)
    return value


def _settings(data: dict[str, Any], path: Path) -> Settings:
    settings = _build(Settings, data, ConfigPlace(path=path), "settings.")
    directory = path.parent
    database = settings.database or f"sqlite:///{directory / 'helpdesk.db'}"
    _check_sqlite_url(database, path)
    if database[:7].lower() == "sqlite:":  # the scheme in any case, as urlsplit reads it
        database = "sqlite:" + database[7:]
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        relative = database[len("sqlite:///"):]
        if relative and relative != ":memory:":
            _check_not_meant_absolute(relative, directory, path)
            database = f"sqlite:///{(directory / relative).resolve()}"
    state_dir = str(directory / (settings.state_dir or "."))
    for key in ("escalation_hours", "max_message_bytes", "timeout_seconds", "run_budget_seconds",
                "parse_seconds", "automail_per_sender_per_hour", "canary_max_minutes"):
        if getattr(settings, key) <= 0:
            raise ConfigError("must be greater than 0", path=path, key=f"settings.{key}")
    if settings.max_message_bytes > MAX_MESSAGE_BYTES:  # a message is held in memory whole
        raise ConfigError(f"must be at most {MAX_MESSAGE_BYTES} (1 GiB)", path=path,
                          key="settings.max_message_bytes")
    for key in ("reactivation_days", "history_days", "bounce_hold_days", "ignored_days"):
        if getattr(settings, key) < 0:
            raise ConfigError("must be 0 or more", path=path, key=f"settings.{key}")
    keywords = settings.ticket_keywords
    if not keywords or not all(KEYWORD_RE.match(k) for k in keywords):
        raise ConfigError("must be a non-empty list of words such as \"TicketID\"",
                          path=path, key="settings.ticket_keywords")
    if not settings.error_folder.strip():
        raise ConfigError("must not be empty", path=path, key="settings.error_folder")
    _check_choice(settings.language, LANGUAGES, ConfigPlace(path=path), "settings.language")
    templates = _templates_dir(directory, settings.templates_dir, path)
    return dataclasses.replace(settings, database=database, state_dir=os.path.normpath(state_dir),
                               templates_dir=templates,
                               **_database_password(settings, database, path))


def _check_sqlite_url(url: str, path: Path) -> None:
    """A SQLite URL is ``sqlite:///`` and a path: ``sqlite://var/lib/helpdesk.db`` (two
    slashes, as in the other URLs) would read "var" as a host and open a file that nobody
    meant, relative to wherever the command runs."""
    if url.partition(":")[0].lower() != "sqlite" or url.lower().startswith("sqlite:///"):
        return
    rest = url.partition(":")[2].lstrip("/")
    host = urlsplit(url).netloc
    slip = f"names a host ({host!r}), which a SQLite URL has not" if host else \
        "is not a SQLite URL (sqlite:/// and a path)"
    raise ConfigError(f"{url!r} {slip}: write sqlite:////{rest} for the "
                      f"absolute path /{rest}, or sqlite:///{rest} for a path relative to the "
                      "accounts file's directory", path=path, key="settings.database")


def _check_not_meant_absolute(relative: str, directory: Path, path: Path) -> None:
    """``sqlite:///var/lib/helpdesk.db`` is relative (peewee's three slashes), yet reads like
    the absolute /var/lib/helpdesk.db. Where the relative reading's directory does not exist
    and the absolute one's does, or at least its first folder (/var: the directory may not be
    made yet), the database would be created where nobody looks: refused, with both right
    forms (``./`` says relative for sure). ``data/helpdesk.db`` (no /data) is a folder to make
    beside the accounts file."""
    parent = Path(relative).parent
    if relative.startswith(("./", "../")) or parent == Path(".") \
            or os.path.isdir(directory / parent) \
            or not os.path.isdir(Path("/") / parent.parts[0]):  # isdir: False where it may
        return  # not look
    there = f"/{parent} does" if os.path.isdir(Path("/") / parent) else \
        f"it reads like a path under /{parent.parts[0]}"
    raise ConfigError(f"'sqlite:///{relative}' is relative to the accounts file's directory, "
                      f"where {parent} does not exist, but {there}: write "
                      f"sqlite:////{relative} for the absolute path /{relative}, or "
                      f"sqlite:///./{relative} for {directory / relative}", path=path,
                      key="settings.database")


def _templates_dir(directory: Path, value: str, path: Path) -> str:
    """The directory of the administrator's auto-mail texts, which must exist: a mistyped
    one would send the built-in texts without a word."""
    if not value:
        return ""
    templates = directory / Path(value).expanduser()
    try:
        if not stat.S_ISDIR(templates.stat().st_mode):
            raise ConfigError(f"{templates} is not a directory", path=path,
                              key="settings.templates_dir")
    except OSError as exc:
        raise ConfigError(f"{templates}: {exc.strerror}", path=path,
                          key="settings.templates_dir") from None
    return str(templates)


def _database_password(settings: Settings, database: str, path: Path) -> dict[str, Any]:
    """Check the ``database_password_*`` keys: at most one, and only for PostgreSQL."""
    given = [k for k in DATABASE_PASSWORD_KEYS if getattr(settings, k) is not None]
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}", path=path,
                          key=f"settings.{given[1]}")
    if given and not database.startswith(("postgresql:", "postgres:")):
        raise ConfigError("only a PostgreSQL database has a password", path=path,
                          key=f"settings.{given[0]}")
    if settings.database_password_file:
        file = path.parent / Path(settings.database_password_file).expanduser()
        return {"database_password_file": str(file)}
    return {}


def _smtp(data: dict[str, Any], path: Path) -> Smtp:
    where = ConfigPlace(path=path)
    smtp = _build(Smtp, data, where, "smtp.")
    _check_choice(smtp.security, SECURITIES, where, "smtp.security")
    _check_one_password(smtp, where, "smtp.", required=False)
    _check_network_numbers(smtp, where, "smtp.")
    smtp = oauth2_settings.check(smtp, data, path, None, "smtp.", protocol="smtp")
    port = smtp.port if smtp.port is not None else {"ssl": 465, "starttls": 587,
                                                    "none": 25}[smtp.security]
    return dataclasses.replace(smtp, port=port, **_resolved_paths(smtp, path.parent))


def _alerts(data: dict[str, Any], path: Path, smtp: Smtp | None) -> Alerts:
    """``[alerts]``: bare addresses, mailed through ``[smtp]`` (so there must be one)."""
    where = ConfigPlace(path=path)
    alerts = _build(Alerts, data, where, "alerts.")
    if smtp is None:
        raise ConfigError("alerts are mailed through [smtp]; add an [smtp] section",
                          key="alerts.to", **where)
    return dataclasses.replace(alerts, to=_bare_addresses(alerts.to, where, "alerts.to"))


def _hooks(data: dict[str, Any], path: Path) -> Hooks:
    """``[hooks]``: an argv (no shell), known event names, limits above 0."""
    where = ConfigPlace(path=path)
    hooks = _build(Hooks, data, where, "hooks.")
    if not hooks.command or not hooks.command[0]:
        raise ConfigError("must name the program to run: a list such as "
                          '["/usr/local/bin/ticket-event"] (no shell is involved)',
                          key="hooks.command", **where)
    for event in hooks.events:
        _check_choice(event, tuple(EventKind), where, "hooks.events")
    for key in ("timeout_seconds", "max_attempts"):
        if getattr(hooks, key) <= 0:
            raise ConfigError("must be greater than 0", key=f"hooks.{key}", **where)
    program = _hook_program(hooks.command[0], path.parent, where)
    return dataclasses.replace(hooks, command=(program, *hooks.command[1:]),
                               events=tuple(dict.fromkeys(hooks.events)))


def _hook_program(given: str, directory: Path, where: ConfigPlace) -> str:
    """The hook's program as an absolute path (a relative one is relative to the accounts
    file's directory; a bare name is looked up in the PATH of the command reading the file,
    which under cron is cron's), checked now: a missing or non-executable program would
    otherwise show only at the first ticket event, as a failed attempt in `status`."""
    if "/" not in given and not given.startswith("~"):
        import shutil

        found = shutil.which(given)
        if found is None:
            raise ConfigError(f"no program {given!r} in the PATH ({os.environ.get('PATH', '')});"
                              f" give its absolute path, such as [\"/usr/local/bin/{given}\"] "
                              "(cron's PATH is not your shell's)", key="hooks.command", **where)
        return found
    program = directory / Path(given).expanduser()
    if not program.exists():
        raise ConfigError(f"the program {program} does not exist", key="hooks.command",
                          **where)
    if not program.is_file() or not os.access(program, os.X_OK):
        kind = "a directory" if program.is_dir() else "not executable"
        fix = "" if program.is_dir() else f"; fix: chmod +x {program}"
        raise ConfigError(f"the program {program} is {kind}{fix}", key="hooks.command",
                          **where)
    return str(program)


# The keys of an account (or [smtp]) that name a file or directory
FILE_KEYS = ("path", "ca_file", "password_file", "oauth2_certificate_file", "oauth2_token_file")


def _resolved_paths(obj: Account | Smtp, directory: Path) -> dict[str, Any]:
    """Relative file keys are relative to the accounts file's directory."""
    paths = {}
    for key in FILE_KEYS:
        value = getattr(obj, key, None)
        if value:
            paths[key] = str(directory / Path(value).expanduser())
    return paths


def _where(data: dict[str, Any], path: Path, kind: Literal["account", "resource", "rule"],
           index: int) -> ConfigPlace:
    """How errors name an ``[[accounts]]`` or ``[[resources]]`` table: by its name, else by its
    place in the file ("the 2nd [[accounts]] table")."""
    name = data.get("name")
    if isinstance(name, str):
        place = ConfigPlace(path=path)
        place[kind] = name
        return place
    suffix = "th" if 10 <= index % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(index % 10, "th")
    return ConfigPlace(path=path, table=f"the {index}{suffix} [[{kind}s]] table")


def _resource(data: dict[str, Any], where: ConfigPlace) -> Resource:
    resource = _build(Resource, data, where, "resources.")
    if not NAME_RE.match(resource.name):
        raise ConfigError("resource names are 1 to 64 of a-z 0-9 . _ -", key="resources.name",
                          **where)
    members = _bare_addresses(resource.members, where, "resources.members")
    notify = _bare_addresses(resource.notify, where, "resources.notify") or members
    return dataclasses.replace(resource, members=members, notify=notify)


def _rule(data: dict[str, Any], where: ConfigPlace) -> Rule:
    """A ``[[rules]]`` table: keys and types here, the rest in ``config.rules``."""
    return rule_checks.check(_build(Rule, rule_checks.lists(data), where, "rules."), where)


def _bare_addresses(entries: tuple[str, ...], where: ConfigPlace, key: str) -> tuple[str, ...]:
    """Each entry as the bare, lowercased address the rest of the code compares with
    ("Alice <Alice@Example.com>" -> "alice@example.com"); one without exactly one is refused."""
    bare = []
    for entry in entries:
        address = entry.strip().lower()
        if not BARE_ADDRESS_RE.match(address):  # the email package only for a display name
            from email.utils import getaddresses

            found = getaddresses([entry])
            address = found[0][1].strip().lower() if len(found) == 1 else ""
        if not BARE_ADDRESS_RE.match(address):
            raise ConfigError(f"{entry!r} is not one e-mail address", key=key, **where)
        bare.append(address)
    return tuple(dict.fromkeys(bare))


def _account(data: dict[str, Any], path: Path, where: ConfigPlace) -> Account:
    account = _build(Account, data, where, "")
    where = ConfigPlace(path=path, account=account.name)
    if not NAME_RE.match(account.name):
        raise ConfigError("account names are 1 to 64 of a-z 0-9 . _ -", key="name", **where)
    _check_choice(account.protocol, PROTOCOLS, where, "protocol")
    account = _with_address(account, where)
    if account.protocol == "maildir":
        return _maildir(account, data, where)
    _check_choice(account.security, SECURITIES, where, "security")
    for key in ("host", "username"):
        if not getattr(account, key):
            raise ConfigError(f"missing: an {account.protocol} account needs it", key=key, **where)
    if account.protocol == "pop3" and "folder" in data:
        raise ConfigError("POP3 has no folders; remove it", key="folder", **where)
    if "path" in data:
        raise ConfigError("only maildir accounts have a path", key="path", **where)
    _check_one_password(account, where, "", required=account.auth == "password")
    _check_network_numbers(account, where, "")
    account = oauth2_settings.check(account, data, path, account.name, "",
                                    protocol=account.protocol)
    port = (account.port if account.port is not None
            else DEFAULT_PORTS[(account.protocol, account.security)])
    return dataclasses.replace(account, port=port, **_resolved_paths(account, path.parent))


def _with_address(account: Account, where: ConfigPlace) -> Account:
    """``address`` as a bare address; by default the username when that is one."""
    if account.address is None:
        username = (account.username or "").strip().lower()
        return dataclasses.replace(account, address=username if BARE_ADDRESS_RE.match(username)
                                   else None)
    [address] = _bare_addresses((account.address,), where, "address")
    return dataclasses.replace(account, address=address)


def _maildir(account: Account, data: dict[str, Any], where: ConfigPlace) -> Account:
    """A local Maildir: a path, and none of the keys of a mail server."""
    for key in data:
        if key not in MAILDIR_KEYS:
            raise ConfigError("does not apply to a maildir account", key=key, **where)
    if not account.path:
        raise ConfigError("missing: a maildir account needs the Maildir's path", key="path",
                          **where)
    return dataclasses.replace(account, **_resolved_paths(account, where["path"].parent))


def _check_network_numbers(obj: Account | Smtp, where: ConfigPlace, prefix: str) -> None:
    """``port`` and ``timeout_seconds``, where given: a real port, a timeout above 0."""
    if obj.port is not None and not 0 < obj.port < 65536:
        raise ConfigError("must be between 1 and 65535", key=prefix + "port", **where)
    if obj.timeout_seconds is not None and obj.timeout_seconds <= 0:
        raise ConfigError("must be greater than 0", key=prefix + "timeout_seconds", **where)


def _check_one_password(obj: Account | Smtp, where: ConfigPlace, prefix: str, *,
                        required: bool) -> None:
    given = [k for k in PASSWORD_KEYS if getattr(obj, k) is not None]
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}", key=prefix + given[1], **where)
    if required and not given:
        raise ConfigError(f"missing: one of {', '.join(PASSWORD_KEYS)}",
                          key=prefix + "password_env", **where)


def _check_choice(value: str, choices: tuple[str, ...], where: ConfigPlace, key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{value!r} is not one of {', '.join(choices)}", key=key, **where)


def _check_references(config: Config) -> None:
    seen: set[str] = set()
    for resource in config.resources:
        if resource.name in seen:
            raise ConfigError("two resources have this name", path=config.path,
                              resource=resource.name, key="resources.name")
        seen.add(resource.name)
    names: set[str] = set()
    for account in config.accounts:
        if account.name in names:
            raise ConfigError("two accounts have this name", path=config.path,
                              account=account.name, key="name")
        names.add(account.name)
        if account.resource is not None and account.resource not in seen:
            known = ", ".join(sorted(seen)) or "none defined"
            raise ConfigError(f"no resource {account.resource!r} (resources: {known})",
                              path=config.path, account=account.name, key="resource")


def _build(cls: type[Table], data: dict[str, Any], where: ConfigPlace, prefix: str) -> Table:
    """Make a *cls* from the TOML table *data*, checking keys and types against its fields;
    errors name the file and table of *where* (ConfigError's keywords). A field's key is its
    name, or its metadata's "key" where the name cannot be (``from``)."""
    hints = _type_hints(cls)
    keys = {f.name: f.metadata.get("key", f.name) for f in dataclasses.fields(cls)}
    _reject_unknown(data, set(keys.values()), where, prefix)
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        key = keys[f.name]
        if key in data:
            values[f.name] = _coerce(data[key], hints[f.name], where, prefix + key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError("missing (required)", key=prefix + key, **where)
    return cls(**values)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """*cls*'s field types, worked out once per process, not once per table: each is a string
    to evaluate (``from __future__ import annotations``). Loading a file of 20 accounts: 14 ->
    4.5 ms."""
    return typing.get_type_hints(cls)


def _reject_unknown(data: dict[str, Any], known: set[str], where: ConfigPlace,
                    prefix: str) -> None:
    for key in data:
        if key not in known:
            raise ConfigError(f"unknown key{did_you_mean(key, sorted(known))}",
                              key=prefix + key, **where)


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _coerce(value: object, hint: Any, where: ConfigPlace, key: str) -> object:
    """Check *value* against the type *hint*; lists become tuples."""
    args = typing.get_args(hint)
    if type(None) in args:  # "X | None": None is never written in TOML, so X it must be
        hint = next(a for a in args if a is not type(None))
    if hint == tuple[tuple[str, str], ...]:  # a table of strings, e.g. headers = { ... }
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return tuple(value.items())
        raise ConfigError(f"expected a table of strings, got {_shown(value)}", key=key,
                          **where)
    if typing.get_origin(hint) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"expected a list of strings, got {_shown(value)}", key=key,
                          **where)
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"expected {_TYPE_NAMES[hint]}, got {_shown(value)}", key=key,
                          **where)
    return value


def _shown(value: object) -> str:
    """The kind of *value*, never the value itself: it may be a secret."""
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
