"""Where OAuth2 tokens are kept between runs: one JSON file per login, mode 0600.

Default: ``<state_dir>/oauth2/account-<name>.json`` (``oauth2/smtp.json`` for ``[smtp]``), or the
login's ``oauth2_token_file``. The file holds the refresh token and the current access token with
its expiry, so a run every minute asks the provider for a new access token about once an hour.
It is machine-local state, like the run locks: a second machine sharing a PostgreSQL database
needs its own sign-in (or a copy of the file).

Every read-refresh-write happens under an ``flock`` on a sibling ``.lock`` file, so two processes
(``fetch`` and ``accounts test``) never both spend a refresh token that the provider rotates and
invalidates on use. Writes are atomic (temporary file, fsync, rename): a crash leaves the old or
the new token, never half of one and never none.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from helpdesk_fetch.config import Account, Smtp, check_private
from helpdesk_fetch.config.edit import write_atomically
from helpdesk_fetch.errors import ConfigError, MailboxError
from helpdesk_fetch.state import private_directory


def token_path(source: Account | Smtp, *, label: str, state_dir: str) -> Path:
    """The token file of *source* (an account, or ``[smtp]`` with *label* "smtp")."""
    if source.oauth2_token_file:
        return Path(source.oauth2_token_file)
    name = "smtp.json" if isinstance(source, Smtp) else f"account-{label}.json"
    return Path(state_dir) / "oauth2" / name


@contextlib.contextmanager
def locked(path: Path, *, account: str | None) -> Iterator[None]:
    """Hold the token file *path* for one read-refresh-write."""
    try:
        private_directory(path.parent)
        check_private(path.parent, holds_secret=False)  # or others could swap the tokens
        handle = open(path.with_name(path.name + ".lock"), "a")
    except ConfigError as exc:
        raise ConfigError(str(exc), account=account, key="oauth2_token_file") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the token file {path}: {exc.strerror}", account=account,
                          key="oauth2_token_file") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def load(path: Path, *, account: str | None) -> dict[str, Any]:
    """The saved tokens; {} when there are none yet. Refuses a file others can read."""
    if not path.exists():
        return {}
    try:
        check_private(path)
        text = path.read_text(encoding="utf-8")
    except ConfigError as exc:
        raise ConfigError(str(exc), account=account, key="oauth2_token_file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read the token file {path}: {reason}", account=account,
                          key="oauth2_token_file") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"the token file {path} is damaged; sign in again with `helpdesk-fetch "
                          "accounts authorize`", account=account, key="oauth2_token_file")
    return data


def save(path: Path, data: Mapping[str, object], *, label: str) -> None:
    """Replace the token file atomically, mode 0600. A file that cannot be written (a full disk)
    fails the account with what it means: a rotated refresh token may now be lost."""
    try:
        private_directory(path.parent)
        write_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise MailboxError(label, f"cannot save the OAuth2 tokens to {path}: "
                           f"{exc.strerror or exc}; fix that, and if the next run reports "
                           f"invalid_grant, sign in again with `helpdesk-fetch accounts "
                           f"authorize {label}`") from None


