"""The one way to open an account's mailbox: its login secret (a password, or an OAuth2 access
token), then its protocol's source, connected and logged in. ``fetch``, ``accounts test`` and
``errors retry/dismiss`` all open mailboxes here, so an OAuth2 account works for each of them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from helpdesk_fetch.config import Account, Settings
from helpdesk_fetch.secrets.login import login_secret
from helpdesk_fetch.sources.base import Cutoff, Mailbox


@contextlib.contextmanager
def open_mailbox(account: Account, *, settings: Settings, timeout: float, dry_run: bool = False,
                 deadline: float | None = None, why: str = "",
                 cutoff: Cutoff | None = None) -> Iterator[Mailbox]:
    """*account*'s mailbox, open for the ``with`` block and closed after it (aborted on an
    error). *deadline*: seconds after which the connection is cut, opening included (*why* says
    which limit that was). *cutoff*: the caller's, to cut it from another thread while it is
    being opened. A refused OAuth2 token is forgotten (``login_secret``)."""
    with login_secret(account, label=account.name, state_dir=settings.state_dir,
                      timeout=timeout) as secret:
        box = get_mailbox(account, password=secret, timeout=timeout,
                          error_folder=settings.error_folder, dry_run=dry_run, cutoff=cutoff)
        cut = (box.deadline(deadline, why=why) if deadline is not None
               else contextlib.nullcontext())
        with cut, box:
            yield box


def get_mailbox(account: Account, **kwargs: Any) -> Mailbox:
    """The source for *account*'s protocol (not yet connected)."""
    if account.protocol == "imap":
        from helpdesk_fetch.sources.imap import ImapMailbox

        return ImapMailbox(account, **kwargs)
    if account.protocol == "pop3":
        from helpdesk_fetch.sources.pop3 import Pop3Mailbox

        return Pop3Mailbox(account, **kwargs)
    if account.protocol == "maildir":
        from helpdesk_fetch.sources.maildir import MaildirMailbox

        return MaildirMailbox(account, **kwargs)
    raise ValueError(f"unknown protocol {account.protocol!r}; known: imap, pop3, maildir")
