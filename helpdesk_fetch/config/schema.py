"""The accounts file's schema (spec §2): each frozen dataclass *is* one TOML table. Its fields are
the keys, their type hints the types, their defaults the defaults; ``load`` checks a file against
them and fills in what depends on where the file is.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpdesk_fetch.enums import EventKind
from helpdesk_fetch.errors import ConfigError, did_you_mean

PROTOCOLS = ("imap", "pop3", "maildir")
SECURITIES = ("ssl", "starttls", "none")
LANGUAGES = ("en", "de")
DEFAULT_PORTS = {("imap", "ssl"): 993, ("imap", "starttls"): 143, ("imap", "none"): 143,
                 ("pop3", "ssl"): 995, ("pop3", "starttls"): 110, ("pop3", "none"): 110}
NAME_RE = re.compile(r"^[a-z0-9._-]{1,64}$")  # a lock, a file and a column hold it
BARE_ADDRESS_RE = re.compile(r"^[^\s<>@,;\"]+@[^\s<>@,;\"]+$")
MAILDIR_KEYS = ("name", "protocol", "path", "resource", "automail", "enabled", "address")
KEYWORD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
PASSWORD_KEYS = ("password_env", "password_file", "password_command", "password")
DATABASE_PASSWORD_KEYS = tuple(f"database_{key}" for key in PASSWORD_KEYS[:3])


@dataclass(frozen=True)
class Settings:
    """``[settings]``: how every run behaves."""

    database: str = ""  # filled in by load(): a SQLite file beside the accounts file
    database_password_env: str | None = None  # PostgreSQL: the password, never in the URL
    database_password_file: str | None = None
    database_password_command: str | None = None
    state_dir: str = ""  # filled in by load(): the accounts file's directory
    error_folder: str = "HD Error Messages"
    reactivation_days: int = 14
    no_status_change_from_members: bool = False
    escalation_hours: int = 24
    max_message_bytes: int = 26214400
    timeout_seconds: int = 60
    run_budget_seconds: int = 600
    parse_seconds: int = 10  # per message; a message that takes longer is set aside (§4.4)
    history_days: int = 90  # run history and resolved error records are kept this long; 0: forever
    ticket_keywords: tuple[str, ...] = ("TicketID",)
    tag_prefix: str = "["
    tag_suffix: str = "]"
    language: str = "en"  # of the built-in auto-mail texts: en | de
    templates_dir: str = ""  # the administrator's own auto-mail texts, if any
    automail_per_sender_per_hour: int = 10
    authserv_id: str = ""  # trust a member's From only with an Authentication-Results from it
    bounce_hold_days: int = 7  # no auto-mail to an address a bounce reported failed; 0: none held
    ignored_days: int = 30  # mail that opened no ticket is kept this long (spec §9.4); 0: forever
    canary_max_minutes: int = 30  # `check` is CRITICAL when a canary is older and not arrived


@dataclass(frozen=True, kw_only=True)
class OAuth2Keys:
    """The keys of an OAuth2 login (spec §7), shared by ``[[accounts]]`` and ``[smtp]``.

    Checked and completed (provider presets) by ``oauth2.settings.check``. With auth = "oauth2"
    the password keys, when given, hold the OAuth2 client secret."""

    auth: str = "password"
    provider: str | None = None
    oauth2_flow: str = "refresh_token"
    oauth2_token_command: str | None = None
    oauth2_client_id: str | None = None
    oauth2_tenant: str | None = None
    oauth2_scopes: tuple[str, ...] = ()
    oauth2_token_url: str | None = None
    oauth2_device_url: str | None = None
    oauth2_authorize_url: str | None = None
    oauth2_certificate_file: str | None = None
    oauth2_token_file: str | None = None


@dataclass(frozen=True)
class Smtp(OAuth2Keys):
    """``[smtp]``: the outgoing server for auto-mails (spec §6)."""

    host: str
    from_address: str
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout_seconds: int | None = None


@dataclass(frozen=True)
class Automail:
    """``[automail]``: which auto-mails are sent (spec §6)."""

    new_ticket: bool = True
    new_ticket_resource: bool = True
    customer_reply: bool = True
    ticket_closed: bool = True


@dataclass(frozen=True)
class Resource:
    """``[[resources]]``: a queue or team, its staff and where its auto-mails go."""

    name: str
    members: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()  # empty: its members


@dataclass(frozen=True)
class Alerts:
    """``[alerts]``: who is mailed (through ``[smtp]``) when an account starts failing and when
    it recovers (spec §11.2)."""

    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hooks:
    """``[hooks]``: the command run once per ticket event, with the event as JSON on stdin
    (spec §12)."""

    command: tuple[str, ...]  # argv: no shell is involved
    events: tuple[str, ...] = tuple(EventKind)  # EventKind values
    timeout_seconds: int = 30
    max_attempts: int = 10


@dataclass(frozen=True)
class Account(OAuth2Keys):
    """``[[accounts]]``: one mailbox."""

    name: str
    protocol: str
    host: str | None = None
    port: int | None = None  # filled in by load() from protocol and security
    security: str = "ssl"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    password: str | None = field(default=None, repr=False)
    folder: str = "INBOX"
    path: str | None = None
    resource: str | None = None
    automail: bool = True
    enabled: bool = True
    ca_file: str | None = None
    timeout_seconds: int | None = None
    address: str | None = None  # where `probe send` mails its canary; default: the username

    @property
    def server(self) -> str:
        """Where the mail comes from, for humans: ``host:port`` or the Maildir path."""
        if self.protocol == "maildir":
            return self.path or ""
        return f"{self.host}:{self.port}"

    def public_dict(self) -> dict[str, Any]:
        """The account's settings without any secret (for ``accounts list``)."""
        data = dataclasses.asdict(self)
        data["password"] = "(set)" if self.password else None
        return data


RULE_ACTIONS = ("ticket", "ignore")


@dataclass(frozen=True)
class Rule:
    """``[[rules]]``: conditions on mail and what to do with the mail they hold for (spec §10).
    Each condition given must hold; within one, a list means any of. ``from`` is a keyword in
    Python: the field is ``senders``, the key ``from`` (the field's metadata)."""

    name: str
    # conditions
    accounts: tuple[str, ...] = ()  # fetched through one of these accounts
    to: tuple[str, ...] = ()  # globs on To, Cc, Delivered-To, X-Original-To; no case
    senders: tuple[str, ...] = field(default=(), metadata={"key": "from"})  # globs on From
    subject: str | None = None  # a regex, searched, no case
    headers: tuple[tuple[str, str], ...] = ()  # (header name, regex): a TOML table
    # actions
    resource: str | None = None  # new tickets go to this resource
    automail: bool | None = None  # None: as the account says
    action: str = "ticket"  # ticket | ignore (spec §9.4)
    correlate: tuple[str, ...] = ()  # named groups of subject: one open ticket per value (§10.2)
    resolve: tuple[tuple[str, str], ...] = ()  # (group, regex): a TOML table; closes the ticket


@dataclass(frozen=True)
class Config:
    """The whole accounts file, validated."""

    path: Path
    settings: Settings
    automail: Automail
    smtp: Smtp | None = None
    resources: tuple[Resource, ...] = ()
    accounts: tuple[Account, ...] = ()
    rules: tuple[Rule, ...] = ()
    alerts: Alerts | None = None
    hooks: Hooks | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    def account(self, name: str) -> Account:
        """The account called *name*; ConfigError naming the known ones when there is none."""
        for account in self.accounts:
            if account.name == name:
                return account
        names = [a.name for a in self.accounts]
        raise ConfigError(f"no such account{did_you_mean(name, names)} (known: "
                          f"{', '.join(names) or 'none'})", path=self.path, account=name)

    def selected_accounts(self, names: list[str] | None) -> list[Account]:
        """The named accounts (even disabled ones: naming them is asking), else the enabled
        ones."""
        if names:
            return [self.account(name) for name in dict.fromkeys(names)]
        return [a for a in self.accounts if a.enabled]

    def resource(self, name: str | None) -> Resource | None:
        return next((r for r in self.resources if r.name == name), None)

    def outgoing(self) -> Smtp:
        """``[smtp]``, for what is only sent when it is given (auto-mails, canaries)."""
        if self.smtp is None:
            raise ConfigError("sending mail needs an [smtp] section", path=self.path, key="smtp")
        return self.smtp

    def timeout_for(self, account: Account | Smtp) -> int:
        if account.timeout_seconds is not None:
            return account.timeout_seconds
        return self.settings.timeout_seconds
