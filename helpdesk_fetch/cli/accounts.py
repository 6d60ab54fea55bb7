"""``accounts``: list, add, remove, enable, disable, test, authorize."""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from pathlib import Path

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import (
    echo_json,
    is_tty,
    note,
    problem_of,
    rule_counts,
    table,
    when,
)
from helpdesk_fetch.config import DEFAULT_PORTS, PASSWORD_KEYS, PROTOCOLS, SECURITIES, Account
from helpdesk_fetch.config.oauth2 import AUTHS, FLOWS, PROVIDERS, oauth2_keys
from helpdesk_fetch.errors import UsageError, account_named, did_you_mean


@cli.group()
def accounts() -> None:
    """The mailboxes in the accounts file.

    \b
    Example:
      helpdesk-fetch accounts list
    """


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_(app: App, as_json: bool) -> None:
    """The accounts with server, user, resource, and their last run (--json: every setting).
    Secrets are never shown.

    \b
    Example:
      helpdesk-fetch accounts list --json
    """
    from helpdesk_fetch.health import status

    config = app.config()
    app.database(read_only=True)
    app.say_if_no_accounts()
    last = status.last_runs(config)
    data = [dict(a.public_dict(), last_run=last.get(a.name)) for a in config.accounts]
    if as_json:
        return echo_json(data)
    table(["name", "protocol", "server", "user", "resource", "last run"],
          [[a["name"], a["protocol"], _server(a), a["username"] or "", a["resource"] or "",
            ("" if a["enabled"] else "disabled; ") + _last_run(a["last_run"])] for a in data],
          notes=[problem_of(a["name"], (a["last_run"] or {}).get("error"), config.path)
                 for a in data],
          shrink=("user", "server"))
    if is_tty():  # a pipe gets the table's lines only (--json has "rule_counts")
        rule_counts([(a["name"], a["last_run"]) for a in data])


def _server(account: dict) -> str:
    """Where the mail is read: the Maildir, or host:port with the security when it is not
    TLS from the start, and an IMAP folder other than INBOX."""
    if account["protocol"] == "maildir":
        return account["path"]
    where = f"{account['host']}:{account['port']}"
    if account["security"] != "ssl":
        where += f" {account['security']}"
    if account["protocol"] == "imap" and account["folder"] != "INBOX":
        where += f" {account['folder']}"
    return where


def _last_run(run: dict | None) -> str:
    if run is None:
        return "never"
    return f"{when(run['finished_at'] or run['started_at'])} {run['outcome']}"


# -- add --------------------------------------------------------------------------------------

_HELP = {
    "protocol": "imap, pop3 or maildir.",
    "host": "The mail server.",
    "port": "Default: from protocol and security (993, 143, 995, 110).",
    "security": "ssl (default), starttls or none.",
    "username": "The login name.",
    "password_env": "Read the password from this environment variable.",
    "password_file": "Read the password from this file (mode 600).",
    "password_command": "Run this command; its first output line is the password.",
    "folder": "IMAP folder to read (default INBOX).",
    "path": "The Maildir of a maildir account.",
    "resource": "The resource (queue) that new tickets go to.",
    "automail": "Send auto-mails for this mailbox (off for e.g. a monitoring mailbox).",
    "enabled": "Read this mailbox in `fetch` runs.",
    "ca_file": "Trust this private CA's certificate (PEM) as well.",
    "timeout_seconds": "Per network operation; overrides the setting.",
    "address": "The mailbox's address, where `probe send` mails its canary (default: the "
               "username, when that is an address).",
    "auth": "password (default) or oauth2 (XOAUTH2; the password keys then hold the OAuth2 "
            "client secret, if any).",
    "provider": "microsoft or google: fills in the OAuth2 endpoints and scopes.",
    "oauth2_flow": "refresh_token (default: sign in once with `accounts authorize`) or "
                   "client_credentials (Microsoft 365 app-only access).",
    "oauth2_token_command": "Run this command; its first output line is a fresh access token.",
    "oauth2_client_id": "The application (client) id registered with the provider.",
    "oauth2_tenant": "Microsoft: the tenant id or domain (default: common).",
    "oauth2_scopes": "A scope to ask for (repeatable; default: from the provider).",
    "oauth2_token_url": "The token endpoint (default: from the provider).",
    "oauth2_device_url": "The device-authorization endpoint (default: from the provider).",
    "oauth2_authorize_url": "The browser sign-in endpoint (default: from the provider).",
    "oauth2_certificate_file": "PEM certificate + private key (mode 600) that signs in instead "
                               "of a client secret (client_credentials).",
    "oauth2_token_file": "Where the refresh token is kept (default: "
                         "STATE_DIR/oauth2/account-NAME.json).",
}
_CHOICES = {"protocol": PROTOCOLS, "security": SECURITIES, "auth": AUTHS, "provider": PROVIDERS,
            "oauth2_flow": FLOWS}


def _no_password_option(ctx: click.Context, param: click.Parameter, value) -> None:
    """The old ``--password TEXT``: a password on the command line is seen by every user of the
    machine (ps) and kept in the shell's history."""
    if value is not None:
        raise click.UsageError(
            "--password is gone: a password on the command line can be read by every user of "
            "this machine (ps) and stays in the shell's history. Use --password-env VAR, "
            "--password-file PATH or --password-command CMD, or leave them out at a terminal "
            "to be asked for it (hidden)", ctx=ctx)


def _account_options(function):
    """One option per account key, named after it (spec §3), from the Account dataclass; the
    OAuth2 keys last. No option takes the password itself (issue 20.5)."""
    hints = typing.get_type_hints(Account)
    fields = sorted(dataclasses.fields(Account), key=lambda f: f.name in oauth2_keys())
    function = click.option("--password", hidden=True, is_flag=False, flag_value="",
                            expose_value=False, callback=_no_password_option)(function)
    for f in reversed(fields):
        if f.name in ("name", "password"):
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None,
                                  help=_HELP[f.name])
        elif typing.get_origin(hint) is tuple:
            option = click.option(flag, f.name, multiple=True, help=_HELP[f.name])
        else:
            kind: type[int] | type[str] | click.Choice[str] = (
                int if int in typing.get_args(hint) or hint is int else str)
            if f.name in _CHOICES:
                kind = click.Choice(_CHOICES[f.name])
            option = click.option(flag, f.name, type=kind, default=None, help=_HELP[f.name])
        function = option(function)
    return function


@accounts.command()
@click.argument("name")
@_account_options
@click.pass_context
@pass_app
def add(app: App, ctx: click.Context, /, name: str, **values) -> None:
    """Add the account NAME to the accounts file (its comments and layout are kept).

    At a terminal it asks for whatever is missing (the password hidden; it is then kept in the
    accounts file, mode 600) and offers to test the account before it is saved; an account
    whose test failed is saved only if you say so. The password itself is never an option: one
    on the command line can be read by every user (ps) and stays in the shell's history.

    \b
    Examples:
      helpdesk-fetch accounts add helpdesk --protocol imap \\
          --host mail.example.com --username helpdesk@example.com \\
          --password-env HELPDESK_IMAP_PASSWORD --resource it-support
      helpdesk-fetch accounts add monitoring   # asks for the rest
    """
    from helpdesk_fetch import config as cfg
    from helpdesk_fetch.config.edit import add_account
    from helpdesk_fetch.secrets.redact import remember_secret

    path = cfg.config_path(app.config_option)
    if path.exists():  # like every command: a file holding a secret must be private
        if any(account.name == name for account in _accounts_before_adding(app, name)):
            raise UsageError(f"an account named {name!r} already exists in {path}; choose "
                             f"another name, or `helpdesk-fetch accounts remove {name}` first")
    # sys.stdin, as click.get_text_stream("stdin") wraps it (deprecated since click 8.5)
    interactive = is_tty() and is_tty(sys.stdin)
    values = {k: (list(v) or None) if isinstance(v, tuple) else v for k, v in values.items()}
    if interactive:
        _ask_missing(values, path)
    else:
        _require_options(ctx, values)
    remember_secret(values.get("password") or "")  # asked for at the terminal, or none
    _from_here(values)
    here = Path(os.path.abspath(path)).parent
    if values["protocol"] == "maildir":
        _warn_missing_maildir(name, here / Path(values["path"]).expanduser())
    if values.get("password_file"):
        _warn_unusable_password_file(name, here / Path(values["password_file"]).expanduser())
    if values.get("ca_file") and not os.path.isfile(ca := here / Path(values["ca_file"])
                                                   .expanduser()):
        note(f"{name}: warning: the CA file {ca} does not exist (yet); fetch and accounts test "
             "fail for this account until it does", style="yellow", err=True)
    try:
        add_account(path, {"name": name, **values},
                    check=_offer_test(name) if interactive else None)
    except _NotKept:
        note(f"Account {name!r} was not added; {path} is unchanged.", style="yellow")
        ctx.exit(1)
    if interactive:
        return note(f"Added {account_named(name)} to {path}.")
    note(f"Added {account_named(name)} to {path} (not tested: `helpdesk-fetch accounts test "
         f"{name}` connects and logs in).")


def _from_here(values: dict) -> None:
    """A relative path typed at the command line (or at a prompt) means the shell's current
    directory, as for any command; in the file it would mean the accounts file's directory. So
    it is written absolute."""
    from helpdesk_fetch.config.load import FILE_KEYS

    for key in FILE_KEYS:
        value = values.get(key)
        if value and not os.path.isabs(os.path.expanduser(value)):
            values[key] = os.path.abspath(value)


def _accounts_before_adding(app: App, name: str) -> list:
    """The accounts of the file, which may wait for this one: a [[rules]] table naming account
    *name* refuses the file until it exists (the sample's `nagios` rule and its `monitoring`),
    and adding it is the fix. The new file is checked whole before it is written."""
    from helpdesk_fetch.errors import ConfigError

    try:
        return app.config().accounts
    except ConfigError as exc:
        if exc.key == "rules.accounts" and exc.message.startswith(f"no account {name!r} "):
            return []
        raise


def _require_options(ctx: click.Context, values: dict) -> None:
    """Without a terminal nobody can be asked: name every option the account still needs (a
    script learns them all at once, not one per try)."""
    password = "one of --password-env, --password-file or --password-command"
    if values["protocol"] is None:
        missing = [f"--protocol, and with it --host, --username and {password} (imap, "
                   "pop3) or --path (maildir)"]
    elif values["protocol"] == "maildir":
        missing = ["--path"] if values["path"] is None else []
    else:
        missing = [f"--{key}" for key in ("host", "username") if values[key] is None]
        if values["auth"] != "oauth2" and not any(values.get(k) is not None
                                                  for k in PASSWORD_KEYS):
            missing.append(password)
    if missing:
        listed = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 \
            else missing[0]
        raise click.UsageError(f"missing {listed}; there is no terminal to ask for them",
                               ctx=ctx)


def _warn_missing_maildir(name: str, path: Path) -> None:
    """A Maildir that does not exist yet is added all the same (the MTA may create it with its
    first delivery), with a word: until it exists, `fetch` fails for the account."""
    if not os.path.lexists(path):
        note(f"{name}: warning: the Maildir {path} does not exist (yet); fetch fails for this "
             f"account until it does: mkdir -p {path}/cur {path}/new {path}/tmp",
             style="yellow", err=True)


def _warn_unusable_password_file(name: str, path: Path) -> None:
    """A password file that `fetch` would refuse (missing, readable by others, another user's)
    is added all the same (it may be put right next), with the word `fetch` would say."""
    from helpdesk_fetch.config.private import check_private
    from helpdesk_fetch.errors import ConfigError

    if not os.path.lexists(path):
        problem = f"the password file {path} does not exist (yet)"
    else:
        try:
            check_private(path)
            return
        except ConfigError as exc:
            problem = str(exc)
    note(f"{name}: warning: {problem}; fetch and accounts test fail for this account until it "
         "is put right", style="yellow", err=True)


class _NotKept(Exception):
    """The administrator chose not to keep an account whose test failed."""


def _offer_test(name: str):
    """What ``add_account`` calls with the file's new contents before writing it: the offer to
    test the account, and to drop it when the test failed."""

    def check(config) -> None:
        if not click.confirm("Test it now?", default=True):
            return
        failed = any(r.error is not None for r in _test_accounts(config, [name]))
        if failed and not click.confirm(
                f"The test failed. Save the {account_named(name)} anyway?", default=False):
            raise _NotKept

    return check


def _ask_missing(values: dict, path: Path) -> None:
    """The "add account" dialog: ask for what the options did not say, with the defaults."""
    if values["protocol"] is None:
        values["protocol"] = click.prompt("Protocol", type=click.Choice(PROTOCOLS),
                                          default="imap")
    if values["protocol"] == "maildir":
        if values["path"] is None:
            values["path"] = click.prompt("Maildir path")
    else:
        _ask_server(values)
    if values["resource"] is None:
        values["resource"] = _ask_resource(path)


def _ask_server(values: dict) -> None:
    """The questions of an IMAP or POP3 account: where, how, and its password."""
    for key, label in (("host", "Server"), ("username", "User name")):
        if values[key] is None:
            values[key] = click.prompt(label)
    if values["security"] is None:
        values["security"] = click.prompt("Security", type=click.Choice(SECURITIES),
                                          default="ssl")
    if values["port"] is None:
        values["port"] = click.prompt("Port", type=click.IntRange(1, 65535), default=(
            DEFAULT_PORTS[(values["protocol"], values["security"])]))
    if values["ca_file"] is None and values["security"] != "none":
        values["ca_file"] = click.prompt(
            "Private CA (PEM file; empty: the system's CAs)", default="",
            show_default=False, value_proc=_existing_file) or None
    if values["auth"] != "oauth2" and not any(values.get(k) is not None for k in PASSWORD_KEYS):
        values["password"] = click.prompt("Password", hide_input=True)  # kept in the file


def _existing_file(answer: str) -> str:
    """A file name typed at a prompt, asked again while no such file exists."""
    if answer and not os.path.isfile(os.path.expanduser(answer)):
        raise click.BadParameter(f"no file {os.path.abspath(os.path.expanduser(answer))}")
    return answer


def _ask_resource(path: Path) -> str | None:
    """A resource of the accounts file, asked again after a typo (the whole dialog would be
    lost to the file's check otherwise)."""
    names = _resource_names(path)

    def known(answer: str) -> str:
        if answer and names is not None and answer not in names:
            hint = did_you_mean(answer, names)
            raise click.BadParameter(f"no resource {answer!r}{hint} (resources: "
                                     f"{', '.join(names) or 'none defined'})")
        return answer

    answer: str = click.prompt("Resource (empty: none)", default="", show_default=False,
                               value_proc=known)
    return answer or None


def _resource_names(path: Path) -> list[str] | None:
    """The ``[[resources]]`` names of the accounts file; None if it cannot be read (the check
    of the whole file says why, before it is written)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        return None
    tables = data.get("resources", [])
    return [t["name"] for t in tables if isinstance(t, dict) and isinstance(t.get("name"), str)] \
        if isinstance(tables, list) else None


# -- remove, enable, disable ------------------------------------------------------------------

@accounts.command()
@click.argument("name", shell_complete=complete_account)
@pass_app
def remove(app: App, name: str) -> None:
    """Remove the account NAME from the accounts file. Its tickets stay.

    \b
    Example:
      helpdesk-fetch accounts remove old-helpdesk
    """
    from helpdesk_fetch.config.edit import remove_account

    config = app.config()
    config.account(name)
    remove_account(config.path, name)
    note(f"Removed {account_named(name)}.")


@accounts.command()
@click.argument("name", shell_complete=complete_account)
@pass_app
def enable(app: App, name: str) -> None:
    """Read the account NAME again in `fetch` runs.

    \b
    Example:
      helpdesk-fetch accounts enable monitoring
    """
    _set_enabled(app, name, True)


@accounts.command()
@click.argument("name", shell_complete=complete_account)
@pass_app
def disable(app: App, name: str) -> None:
    """Leave the account NAME out of `fetch` runs (it stays in the file).

    \b
    Example:
      helpdesk-fetch accounts disable monitoring
    """
    _set_enabled(app, name, False)


def _set_enabled(app: App, name: str, enabled: bool) -> None:
    from helpdesk_fetch.config.edit import set_account_key

    config = app.config()
    word = "enabled" if enabled else "disabled"
    if config.account(name).enabled == enabled:  # the file stays as it is
        note(f"Account {name!r} was already {word}.")
        return
    set_account_key(config.path, name, "enabled", enabled)
    note(f"Account {name!r} {word}.")


# -- test -------------------------------------------------------------------------------------

@accounts.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_account)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def test(app: App, ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Connect and log in, and report how many messages wait and where messages that fail to
    ingest go (IMAP: the error folder's full name inside the server's namespace); changes
    nothing. Without NAME, every account; a disabled one is listed as "(disabled, not
    tested)" and not connected to, unless named. Exit status 1 when any account fails, 2 when
    the accounts file is at fault for one (e.g. a password file others can read), as for fetch.

    \b
    Example:
      helpdesk-fetch accounts test helpdesk
    """
    results = _test_accounts(app.config(reads_mail=True), list(names) or None, as_json=as_json)
    ctx.exit(2 if any(r.config_error for r in results) else
             1 if any(r.error is not None for r in results) else 0)


def _test_accounts(config, names: list[str] | None, *, as_json: bool = False) -> list:
    """Test the accounts, showing each as it is known; the results."""
    from helpdesk_fetch.sources import probe

    results = []
    for result in probe.test_accounts(config, names):  # each shown as it is known
        results.append(result)
        if result.warning:
            note(f"{result.account}: warning: {result.warning}", style="yellow", err=True)
        if not as_json:
            _show_probe(result)
    if as_json:
        echo_json([r.as_dict() for r in results])
    return results


def _show_probe(result) -> None:
    if not result.tested:
        return note(f"{result.account}: (disabled, not tested)", style="dim")
    if result.error:
        return note(f"{result.account}: FAILED: {result.error}", style="bold red")
    waiting = "1 message" if result.count == 1 else f"{result.count} messages"
    note(f"{result.account}: ok, {waiting} waiting ({result.where})",
         style="green")
    if result.namespace is not None:
        ns = result.namespace
        note(f"  namespace: prefix {ns['prefix']!r}, separator {ns['separator']!r}")
    if result.error_folder is not None:
        note(f"  error folder: {result.error_folder}")


# -- authorize --------------------------------------------------------------------------------

@accounts.command()
@click.argument("name", required=False)
@click.option("--smtp", is_flag=True, help="Sign in the [smtp] login instead of an account.")
@click.option("--browser", is_flag=True,
              help="Sign in through a browser even where the provider offers a device code.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port on 127.0.0.1 the browser comes back to (default: a free one).")
@pass_app
def authorize(app: App, name: str | None, smtp: bool, browser: bool, port: int) -> None:
    """Sign the OAuth2 account NAME in once and save its refresh token (mode 600); later runs
    renew it by themselves. Run it again when the token expired or was revoked.

    Microsoft 365 shows a code to enter at https://microsoft.com/devicelogin; Google shows an
    address to open in a browser.

    \b
    Examples:
      helpdesk-fetch accounts authorize helpdesk
      helpdesk-fetch accounts authorize --smtp
      # with ssh -L 8765:127.0.0.1:8765 from the workstation:
      helpdesk-fetch accounts authorize gmail --port 8765
    """
    from helpdesk_fetch.secrets.oauth2.authorize import authorize as sign_in

    config = app.config()
    if smtp == (name is not None):
        raise UsageError("give either an account NAME or --smtp")
    source = config.smtp if smtp else config.account(name)
    if source is None:
        raise UsageError("there is no [smtp] section in the accounts file")
    label = name if name is not None else "smtp"  # exactly one of the two, checked above
    path = sign_in(source, label=label, state_dir=config.settings.state_dir,
                   timeout=config.timeout_for(source), say=note, browser=browser, port=port)
    check = "" if smtp else f"; `helpdesk-fetch accounts test {name}` checks the login"
    note(f"Signed in. The refresh token is saved in {path} (mode 600){check}.", style="green")
