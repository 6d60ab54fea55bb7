"""``accounts test``: connect, log in, count, and say where messages that fail to ingest would
go (IMAP: the error folder's full name inside the server's namespace); change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from helpdesk_fetch.config import Account, Config
from helpdesk_fetch.errors import ConfigError, MailboxError
from helpdesk_fetch.secrets.redact import redact
from helpdesk_fetch.sources.open import open_mailbox


@dataclass
class ProbeResult:
    account: str
    where: str
    count: int | None = None  # None until counted: a failed or skipped test counted nothing
    error: str | None = None
    warning: str | None = None
    namespace: dict[str, str] | None = None  # IMAP: the personal namespace (prefix, separator)
    error_folder: str | None = None  # the full name of the error folder; None for POP3
    tested: bool = True  # False: a disabled account, left alone
    config_error: bool = False  # the error is the accounts file's (exit 2), not the server's

    def as_dict(self) -> dict[str, object]:
        """The stable JSON of ``accounts test --json``: ``ok`` is null for an account that was
        not tested, ``count`` for one that was not counted (not tested, or it failed)."""
        return {"account": self.account, "where": self.where,
                "ok": self.error is None if self.tested else None,
                **{k: v for k, v in asdict(self).items() if k not in ("account", "where")}}


def test_accounts(config: Config, names: list[str] | None) -> Iterator[ProbeResult]:
    """Log in to each named account read-only and count its messages; without names, every
    enabled account (a disabled one is listed as not tested: it may be disabled because its
    server is gone, and a test would only fail or hang). Naming one tests it, enabled or not:
    the check before enabling it again."""
    accounts = [config.account(n) for n in names] if names else list(config.accounts)
    for account in accounts:
        if names or account.enabled:
            yield probe(config, account)
        else:
            yield ProbeResult(account.name, f"{account.protocol} {account.server}", tested=False)


def probe(config: Config, account: Account) -> ProbeResult:
    result = ProbeResult(account.name, f"{account.protocol} {account.server}")
    if account.protocol != "maildir" and account.security == "none":
        result.warning = ("security = \"none\": the login and the mail cross the network "
                          "unencrypted")
    timeout = config.timeout_for(account)
    try:
        with open_mailbox(account, settings=config.settings, timeout=timeout,
                          dry_run=True) as box:
            result.count = box.count()
            result.namespace = box.namespace()
            result.error_folder = box.aside_folder_name()
    except MailboxError as exc:  # the line already starts with the account's name
        result.error = redact(exc.detail)
    except ConfigError as exc:  # e.g. a password source: name the file too
        result.error = redact(str(exc.in_file(config.path)))
        result.config_error = True
    if result.error is not None:  # a count taken before a later step failed says nothing
        result.count = None
    return result
