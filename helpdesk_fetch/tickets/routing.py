"""``[[rules]]`` (spec §10): compiled once per run, tried in file order against each message; the
first rule whose conditions all hold decides. Within a condition a list means any of.

- ``accounts``: the account the mail was fetched through;
- ``to``: any recipient in To, Cc, Delivered-To or X-Original-To, a glob without case. A
  recipient with a ``+extension`` also counts without it (``sales@example.com`` holds for
  ``sales+eu@example.com``, as the MTA delivers it), and a glob ending in ``@`` means any domain
  (``helpdesk+billing@``); ``*+sales@example.com`` holds for every sub-address ``+sales``;
- ``from``: the sender's address, a glob without case;
- ``subject``: a regex, searched, without case; its named groups are what ``correlate`` and
  ``resolve`` read (§10.2);
- ``headers``: header name -> regex, searched in each of its values, without case.

Header values are searched up to ``MAX_SEARCHED`` characters: a rule's regex meets untrusted mail.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpdesk_fetch.config import Rule

if TYPE_CHECKING:
    from helpdesk_fetch.message.parse import ParsedMessage

MAX_SEARCHED = 4096


@dataclass(frozen=True)
class Match:
    """The rule that decided a message, the named groups its subject regex found, and whether
    the message is an alert's recovery (its ``resolve`` groups match, §10.2)."""

    rule: Rule
    groups: dict[str, str | None]
    resolves: bool = False

    @property
    def correlation(self) -> str | None:
        """The key of the alert's ticket (spec §10.2): the rule and the values of its
        ``correlate`` groups, without case; None when the rule correlates nothing."""
        if not self.rule.correlate:
            return None
        values = [(self.groups.get(group) or "").lower() for group in self.rule.correlate]
        return json.dumps([self.rule.name, *values], ensure_ascii=False)


class CompiledRule:
    """One rule with its globs and regexes compiled."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.accounts = frozenset(rule.accounts)
        self.to = _globs(p + "*" if p.endswith("@") else p for p in rule.to)
        self.senders = _globs(rule.senders)
        self.subject = re.compile(rule.subject, re.IGNORECASE) if rule.subject else None
        self.headers = tuple((name, re.compile(p, re.IGNORECASE)) for name, p in rule.headers)
        self.resolve = tuple((group, re.compile(p, re.IGNORECASE)) for group, p in rule.resolve)

    def match(self, account: str, parsed: ParsedMessage,
              recipients: Callable[[], list[str]]) -> Match | None:
        """The Match when every condition holds for *parsed*, else None; the cheap ones first.
        *recipients*: the message's recipients with their sub-address forms, made on demand."""
        if self.accounts and account not in self.accounts:
            return None
        if self.senders is not None and not self.senders.match(parsed.from_addr):
            return None
        if self.to is not None and not any(self.to.match(r) for r in recipients()):
            return None
        found = None
        if self.subject is not None:
            found = self.subject.search(parsed.subject)
            if found is None:
                return None
        for name, pattern in self.headers:
            if not any(pattern.search(v[:MAX_SEARCHED]) for v in parsed.header_values(name)):
                return None
        groups = found.groupdict() if found else {}
        return Match(self.rule, groups, resolves=bool(self.resolve) and all(
            (value := groups.get(group)) is not None and pattern.search(value)
            for group, pattern in self.resolve))


class Rules:
    """The rules of the accounts file, compiled once (per run, command or retry)."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.compiled = [CompiledRule(rule) for rule in rules]
        self.by_name = {c.rule.name: c for c in self.compiled}

    def first(self, account: str, parsed: ParsedMessage, *,
              requests_only: bool = False) -> Match | None:
        """The first rule whose conditions all hold for *parsed* from *account*, or None;
        *requests_only*: of the rules that do not ignore mail (it is a request whatever it is)."""
        cache: list[list[str]] = []

        def recipients() -> list[str]:
            if not cache:
                cache.append(recipients_of(parsed))
            return cache[0]

        for rule in self.compiled:
            if requests_only and rule.rule.action == "ignore":
                continue
            found = rule.match(account, parsed, recipients)
            if found is not None:
                return found
        return None


def recipients_of(parsed: ParsedMessage) -> list[str]:
    """Every recipient in To, Cc, Delivered-To and X-Original-To (bare, lower case), each also
    without its ``+extension``."""
    from helpdesk_fetch.message.parse import addresses

    found = [*parsed.to_addrs, *parsed.cc_addrs]
    for name in ("delivered-to", "x-original-to"):
        for value in parsed.headers.get(name, []):
            found.extend(a for _, a in addresses(value[:MAX_SEARCHED]))
    plain = [f"{a.split('@')[0].split('+')[0]}@{a.rpartition('@')[2]}" for a in found
             if "+" in a.split("@")[0]]
    return list(dict.fromkeys([*found, *plain]))


def _globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of globs (any of them, whole, without case), or None for none."""
    translated = [fnmatch.translate(p.strip().lower()) for p in patterns]
    if not translated:
        return None
    return re.compile("|".join(f"(?:{t})" for t in translated), re.IGNORECASE)
