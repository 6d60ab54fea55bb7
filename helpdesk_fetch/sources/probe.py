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
    count: int = 0
    error: str | None = None
    warning: str | None = None
    namespace: dict[str, str] | None = None  # IMAP: the personal namespace (prefix, separator)
    error_folder: str | None = None  # the full name of the error folder; None for POP3

    def as_dict(self) -> dict[str, object]:
        """The stable JSON of ``accounts test --json``."""
        return {"account": self.account, "where": self.where, "ok": self.error is None,
                **{k: v for k, v in asdict(self).items() if k not in ("account", "where")}}


def test_accounts(config: Config, names: list[str] | None) -> Iterator[ProbeResult]:
    """Log in to each named account (default: all) read-only and count its messages."""
    accounts = [config.account(n) for n in names] if names else list(config.accounts)
    for account in accounts:
        yield probe(config, account)


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
    return result
