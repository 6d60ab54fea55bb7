"""The accounts file: its schema (frozen dataclasses), loading and validation, and the
comment-keeping edits that ``accounts add/remove/enable/disable`` make.

The public names are re-exported here: ``from helpdesk_fetch.config import Account, load``.
"""

from helpdesk_fetch.config.load import ENV_VAR, config_path, load, parse, require_accounts
from helpdesk_fetch.config.private import check_private
from helpdesk_fetch.config.schema import (
    BARE_ADDRESS_RE,
    DATABASE_PASSWORD_KEYS,
    DEFAULT_PORTS,
    LANGUAGES,
    NAME_RE,
    PASSWORD_KEYS,
    PROTOCOLS,
    SECURITIES,
    Account,
    Alerts,
    Automail,
    Config,
    Hooks,
    OAuth2Keys,
    Resource,
    Rule,
    Settings,
    Smtp,
)

__all__ = [
    "BARE_ADDRESS_RE", "DATABASE_PASSWORD_KEYS", "DEFAULT_PORTS", "ENV_VAR", "LANGUAGES",
    "NAME_RE", "PASSWORD_KEYS", "PROTOCOLS", "SECURITIES", "Account", "Alerts", "Automail",
    "Config", "Hooks", "OAuth2Keys", "Resource", "Rule", "Settings", "Smtp", "check_private",
    "config_path", "load", "parse", "require_accounts",
]
