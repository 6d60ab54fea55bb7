"""The checks of ``[[rules]]`` tables (spec §10) beyond keys and types, made when the file loads:
each error names the file, the rule and the key, like any other (``load._build`` checks the keys
and types first). ``tickets.routing`` compiles the checked rules once per run.
"""

from __future__ import annotations

import re
from typing import Any

from helpdesk_fetch.config.schema import NAME_RE, RULE_ACTIONS, Config, Rule
from helpdesk_fetch.errors import ConfigError, ConfigPlace

LIST_KEYS = ("accounts", "to", "from")  # a single string is a list of one
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 field names: printable, no colon


def lists(data: dict[str, Any]) -> dict[str, Any]:
    """*data* with a single string given for a list condition made a list of one."""
    return {k: [v] if k in LIST_KEYS and isinstance(v, str) else v for k, v in data.items()}


def check(rule: Rule, where: ConfigPlace) -> Rule:
    """*rule* if its values make sense, else ConfigError naming the rule and the key."""
    if not NAME_RE.match(rule.name):
        raise ConfigError("rule names are 1 to 64 of a-z 0-9 . _ -", key="rules.name", **where)
    where = ConfigPlace(path=where["path"], rule=rule.name)
    if rule.action not in RULE_ACTIONS:
        raise ConfigError(f"{rule.action!r} is not one of {', '.join(RULE_ACTIONS)}",
                          key="rules.action", **where)
    for key, patterns in (("to", rule.to), ("from", rule.senders), ("accounts", rule.accounts)):
        if any(not p.strip() for p in patterns):
            raise ConfigError("an empty entry matches nothing; remove it", key=f"rules.{key}",
                              **where)
    subject = _regex(rule.subject, where, "rules.subject") if rule.subject is not None else None
    for name, pattern in rule.headers:
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"{name!r} is not a header name", key="rules.headers", **where)
        _regex(pattern, where, f"rules.headers.{name}")
    _check_correlation(rule, subject, where)
    if rule.action == "ignore":
        for key, given in (("resource", rule.resource is not None),
                           ("automail", rule.automail is not None),
                           ("correlate", bool(rule.correlate))):
            if given:
                raise ConfigError('does nothing with action = "ignore" (the mail opens no '
                                  'ticket); remove it', key=f"rules.{key}", **where)
    return rule


def _regex(pattern: str, where: ConfigPlace, key: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"not a valid regular expression: {exc}", key=key, **where) from None


def _check_correlation(rule: Rule, subject: re.Pattern[str] | None,
                       where: ConfigPlace) -> None:
    """``correlate`` names groups of the subject regex; ``resolve`` needs ``correlate``."""
    groups = set(subject.groupindex) if subject is not None else set()
    for group in rule.correlate:
        if subject is None:
            raise ConfigError("correlate needs a subject regex with these named groups",
                              key="rules.correlate", **where)
        if group not in groups:
            raise ConfigError(f"the subject regex defines no group (?P<{group}>...)"
                              + _known(groups), key="rules.correlate", **where)
    if rule.resolve and not rule.correlate:
        raise ConfigError("resolve closes a correlated ticket: it needs correlate",
                          key="rules.resolve", **where)
    for group, pattern in rule.resolve:
        if group not in groups:
            raise ConfigError(f"the subject regex defines no group (?P<{group}>...)"
                              + _known(groups), key="rules.resolve", **where)
        _regex(pattern, where, f"rules.resolve.{group}")


def _known(groups: set[str]) -> str:
    return f" (it defines: {', '.join(sorted(groups))})" if groups else " (it defines none)"


def check_references(config: Config) -> None:
    """Unique rule names; resources and accounts the rules name exist."""
    seen: set[str] = set()
    resources = {r.name for r in config.resources}
    accounts = {a.name for a in config.accounts}
    for rule in config.rules:
        where = ConfigPlace(path=config.path, rule=rule.name)
        if rule.name in seen:
            raise ConfigError("two rules have this name", key="rules.name", **where)
        seen.add(rule.name)
        if rule.resource is not None and rule.resource not in resources:
            known = ", ".join(sorted(resources)) or "none defined"
            raise ConfigError(f"no resource {rule.resource!r} (resources: {known})",
                              key="rules.resource", **where)
        for name in rule.accounts:
            if name not in accounts:
                known = ", ".join(sorted(accounts)) or "none defined"
                raise ConfigError(f"no account {name!r} (accounts: {known})",
                                  key="rules.accounts", **where)
