"""The exceptions of helpdesk-fetch.

The core raises these; only the CLI turns them into messages and exit codes (spec §3). Each carries
the exit code it maps to, so the translation happens in exactly one place.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Required, TypedDict

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65  # sysexits EX_DATAERR: the input can never be ingested
EXIT_TEMPFAIL = 75  # sysexits EX_TEMPFAIL: try again later


def account_named(name: str) -> str:
    """How every text names an account: ``account 'helpdesk'`` — its failure and its recovery,
    configuration errors, a busy lock, the alert mails (one form, so that a search of a log or a
    mailbox finds both ends of a failure)."""
    return f"account {name!r}"


def close_match(word: str, names: list[str]) -> str | None:
    """The one of *names* that the mistyped *word* is closest to, if any is close."""
    import difflib  # only for a mistake: not in every run's start-up (issue 18)

    close = difflib.get_close_matches(word, names, n=1)
    return close[0] if close else None


def did_you_mean(word: str, names: list[str]) -> str:
    """``; did you mean 'helpdesk'?`` when one of *names* is close to the mistyped *word*."""
    close = close_match(word, names)
    return f"; did you mean {close!r}?" if close else ""


_TIMINGS = re.compile(r"\s*\(\d+(?:\.\d+)?(?: \+ \d+(?:\.\d+)?)* secs\)")


def without_timings(text: str) -> str:
    """*text* without the timings a server puts into its answers (Dovecot: "(0.001 + 0.000
    secs)"): the same failure says the same thing on every run."""
    return _TIMINGS.sub("", text)


# The time of day Dovecot stamps into an error it wants found in its log: "Internal error
# occurred. Refer to server log for more information. [2026-12-06 05:20:01]", and a login
# refused while its password backend is down: "Temporary authentication failure.
# [mail.example.com:2026-12-06 05:20:01]". Shown (it finds the log line), never compared.
_STAMP = re.compile(r"\s*\[(?:[^\]\s]+:)?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]")


def failure_cause(error: str | None) -> str:
    """What tells one failure from another (quiet repeats, spec §11.2: an account's failure,
    an SMTP outage): its text without the server's timings and time stamps."""
    return _STAMP.sub("", without_timings(error or "")).strip()


def unexpected(exc: BaseException) -> str:
    """The text of an error the code did not expect (a bug of ours), for a line a user reads:
    what it says, without Python's class name (a traceback, where one is logged, has it)."""
    return f"unexpected error (please report it): {str(exc).strip() or 'no detail'}"


# A log record's attribute: this failure is not news (health/alerts.py, spec §11.2): the command
# line keeps such records off a stderr that is not a terminal.
REPEATED = "repeated_failure"
# ...and this one says a failure has ended: news that -q lets through with the errors, since
# the failure's start was one of them.
RECOVERED = "failure_ended"


class HelpdeskError(Exception):
    """Base class: something went wrong that the user should read about."""

    exit_code = EXIT_FAILED


class ConfigPlace(TypedDict, total=False):
    """Where in the accounts file a ConfigError is: its keywords, passed around by validation."""

    path: Required[Path]
    account: str | None
    resource: str
    rule: str
    table: str


class ConfigError(HelpdeskError):
    """The accounts file (or a file it names) is wrong; the message names file, table and key.

    The table is an account, a resource or a rule by name, or, when it has none, by its place
    (*table*: "the 2nd [[accounts]] table")."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        account: str | None = None,
        resource: str | None = None,
        table: str | None = None,
        key: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.message, self.path, self.key = message, path, key
        self.account, self.resource, self.table, self.rule = account, resource, table, rule
        where = []
        if path is not None:
            where.append(str(path))
        if account is not None:
            where.append(account_named(account))
        if resource is not None:
            where.append(f"resource {resource!r}")
        if rule is not None:
            where.append(f"rule {rule!r}")
        if table is not None:
            where.append(table)
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(": ".join([*where, message]))

    def in_file(self, path: Path | str) -> ConfigError:
        """This error naming the accounts file *path* when it names no file yet: a password
        source knows its account and key, not the file they are written in."""
        if self.path is not None:
            return self
        return type(self)(self.message, path=path, account=self.account,
                          resource=self.resource, table=self.table, key=self.key,
                          rule=self.rule)


class ConfigUnreadable(ConfigError):
    """The accounts file cannot be read at all by this user: missing, no permission, someone
    else's. ``check`` tells this (its own set-up is wrong: UNKNOWN) from a file that is read
    but wrong (every run fails with it: CRITICAL)."""


class UsageError(HelpdeskError):
    """A command was asked for something that does not exist or cannot be done."""

    exit_code = EXIT_USAGE


class FolderMissing(ConfigError):
    """The IMAP server has no folder of the name configured: for the account's folder a
    configuration error; for the error folder that someone deleted, a place with nothing in it."""


class DatabaseMoved(ConfigError):
    """``[settings] database`` names a SQLite file that ``db copy`` has copied to PostgreSQL:
    what would be stored in it now would never reach the copy."""


class NoDatabase(UsageError):
    """A command that changes what is stored (``tickets close``) found no database: it creates
    none, since there is nothing in it to change (and a mistyped --config would otherwise leave
    an empty database behind)."""


class MailboxError(HelpdeskError):
    """An account could not be processed (connect, TLS, login, protocol)."""

    def __init__(self, account: str, message: str) -> None:
        self.account, self.detail = account, message
        super().__init__(f"{account_named(account)}: {message}")


class ConnectError(MailboxError):
    """The server could not be reached, or TLS could not be established."""


class AuthError(MailboxError):
    """The server refused the credentials."""


class ProtocolError(MailboxError):
    """The server answered something unexpected, or the connection broke mid-session."""


class SetAsideRefused(MailboxError):
    """The server (or the file system) refused to take a message into the error folder: no right
    to create it, a quota. The message stays where it is; the session goes on with the others."""


class IngestError(HelpdeskError):
    """One message cannot be ingested; it goes to the error folder with this reason."""


class ParserUnavailable(HelpdeskError):
    """The parse worker cannot be started: no message is parsed, and none is set aside for it;
    the mail stays where it is."""


class DatabaseError(HelpdeskError):
    """The database cannot be opened or written (locked, read-only, full disk)."""


class TagSecretLost(DatabaseError):
    """The database has no secret behind the ticket tags (spec §4.5). It is never replaced: a
    new secret would invalidate every tag ever sent, an empty one would let anyone forge tags."""

    def __init__(self) -> None:
        super().__init__(
            "the database has lost the secret behind ticket tags (the setting 'tag_secret'); "
            "no tag can be written or checked without it. Restore the database, or that row "
            "from a backup of it; a new secret would make every tag ever sent invalid")


class QuarantineError(HelpdeskError):
    """The quarantine Maildir of ``deliver`` cannot be written: the MTA keeps the message."""

    exit_code = EXIT_TEMPFAIL


class AccountBusy(HelpdeskError):
    """Another run is processing this account right now."""

    exit_code = EXIT_TEMPFAIL


class IngestSwitchedOff(AccountBusy):
    """Ingest was disabled while a run went on: it takes no further account (``db copy``)."""
