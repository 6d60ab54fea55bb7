"""Where secrets come from (spec §7): password_env, password_file, password_command, password.

A secret is returned to the caller and never logged, formatted into an error or kept on an object
that is printed. Every secret handed out is also remembered, so that ``redact`` can scrub it from
any text that reaches an output (log lines, error messages) as a second line of defence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpdesk_fetch.config import Account, Settings, Smtp, check_private
from helpdesk_fetch.errors import ConfigError
from helpdesk_fetch.secrets.redact import remember_secret


def password_for(source: Account | Smtp, *, label: str, timeout: float) -> str:
    """The password of *source* (an account, or ``[smtp]`` with *label* "smtp")."""
    if isinstance(source, Smtp):
        return remember_secret(_password(source, None, "smtp.", timeout))
    return remember_secret(_password(source, label, "", timeout))


def database_password(settings: Settings, *, timeout: float) -> str | None:
    """The database password from ``[settings] database_password_env/_file/_command``; None when
    none is given (libpq then looks at PGPASSWORD and ~/.pgpass itself)."""
    return password_from(env=settings.database_password_env,
                         file=settings.database_password_file,
                         command=settings.database_password_command,
                         key_prefix="settings.database_", timeout=timeout)


def password_from(*, env: str | None, file: str | None, command: str | None, key_prefix: str,
                  timeout: float) -> str | None:
    """The password from whichever of the three sources is given; None when none is."""
    if env is None and file is None and command is None:
        return None
    source = _Sources(password=None, password_env=env, password_file=file,
                      password_command=command)
    return remember_secret(_password(source, None, key_prefix, timeout))


@dataclass(frozen=True)
class _Sources:
    """The password keys of a source that is not an account: the database's."""

    password: str | None
    password_env: str | None
    password_file: str | None
    password_command: str | None


def _password(source: Account | Smtp | _Sources, account: str | None, key_prefix: str,
              timeout: float) -> str:
    """The password from the first source *source* names; errors name *account* and the key."""
    if source.password is not None:
        return source.password
    if source.password_env is not None:
        value = os.environ.get(source.password_env)
        if value is None:
            raise ConfigError(f"environment variable {source.password_env} is not set",
                              account=account, key=key_prefix + "password_env")
        return value
    if source.password_file is not None:
        return _read_password_file(Path(source.password_file), account, key_prefix)
    if source.password_command is not None:
        return run_secret_command(source.password_command, account=account,
                                  key=key_prefix + "password_command", timeout=timeout)
    raise ConfigError("no password source given", account=account, key=key_prefix + "password_env")


def _read_password_file(path: Path, account: str | None, key_prefix: str) -> str:
    """The first line of *path*; a byte-order mark (Notepad) is not part of the password."""
    try:
        check_private(path)
        text = path.read_text(encoding="utf-8-sig")
    except ConfigError as exc:
        raise ConfigError(str(exc), account=account, key=key_prefix + "password_file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read {path}: {reason}", account=account,
                          key=key_prefix + "password_file") from None
    first = text.splitlines()[0] if text else ""
    if not first:
        raise ConfigError(f"{path}: the first line is empty (the password must be on the first "
                          "line)", account=account, key=key_prefix + "password_file")
    return first


def run_secret_command(command: str, *, account: str | None, key: str, timeout: float) -> str:
    """The first line that *command* prints (it must exit 0 within *timeout*); its output is
    never shown, not even when it fails: it may hold the secret or part of it."""
    import subprocess  # only here: a run without password commands does not pay for it

    try:
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the command did not finish within {timeout:g} s", account=account,
                          key=key) from None
    if done.returncode != 0:
        raise ConfigError(_failure(command, done.returncode), account=account, key=key)
    lines = done.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise ConfigError("the command printed nothing", account=account, key=key)
    return lines[0]


def _failure(command: str, status: int) -> str:
    """Why *command* failed, from the shell's exit *status*: 127 and 126 are the shell's own
    "not found" and "cannot execute" (POSIX), which a bare number hides. Only the program's
    name is shown: the rest of the line may hold a secret."""
    import shlex

    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    # VAR=value words before the program set its environment, and may be the secret's key
    program = next((w for w in words if "=" not in w), "")
    if status == 127:
        return (f"the command was not found (exit status 127): is {program!r} installed, and "
                "in the PATH of the user and cron running this? Give its full path")
    if status == 126:
        return (f"the command is not executable (exit status 126): {program!r} cannot be run; "
                f"fix: chmod +x {program}")
    return (f"the command exited with status {status} (what it printed is not shown: it may "
            "hold the secret); run it by hand as the user cron runs this as, with cron's "
            "environment, to see why")
