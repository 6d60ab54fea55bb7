"""``accounts``: list, add, remove, enable, disable, test, authorize."""

from __future__ import annotations

import dataclasses
import typing

import click

from helpdesk_fetch.cli import App, cli, complete_account, pass_app
from helpdesk_fetch.cli.render import echo_json, is_tty, note, table
from helpdesk_fetch.config import PASSWORD_KEYS, PROTOCOLS, SECURITIES, Account
from helpdesk_fetch.config.oauth2 import AUTHS, FLOWS, PROVIDERS, oauth2_keys


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
    """The accounts with server, user, folder, resource, enabled, and their last run.
    Secrets are never shown.

    \b
    Example:
      helpdesk-fetch accounts list --json
    """
    from helpdesk_fetch.health import status

    config = app.config()
    app.database(read_only=True)
    last = status.last_runs()
    data = [dict(a.public_dict(), last_run=last.get(a.name)) for a in config.accounts]
    if as_json:
        return echo_json(data)
    rows = [[a["name"], a["protocol"], _server(a), a["username"] or "", a["folder"]
             if a["protocol"] == "imap" else "", a["resource"] or "",
             "yes" if a["enabled"] else "no", *_last_run_cells(a["last_run"])] for a in data]
    table(["name", "protocol", "server", "user", "folder", "resource", "enabled", "last run",
           "outcome"], rows)


def _server(account: dict) -> str:
    if account["protocol"] == "maildir":
        return account["path"]
    return f"{account['host']}:{account['port']} ({account['security']})"


def _last_run_cells(run: dict | None) -> list[str]:
    if run is None:
        return ["never", ""]
    outcome = run["outcome"] + (f": {run['error']}" if run.get("error") else "")
    return [run["finished_at"] or run["started_at"], outcome]


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
    "password": "The password itself (kept in the accounts file, which must then be mode 600).",
    "folder": "IMAP folder to read (default INBOX).",
    "path": "The Maildir of a maildir account.",
    "resource": "The resource (queue) that new tickets go to.",
    "automail": "Send auto-mails for this mailbox (off for e.g. a monitoring mailbox).",
    "enabled": "Read this mailbox in `fetch` runs.",
    "ca_file": "Trust this private CA's certificate (PEM) as well.",
    "timeout_seconds": "Per network operation; overrides the setting.",
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


def _account_options(function):
    """One option per account key, named after it (spec §3), from the Account dataclass; the
    OAuth2 keys last."""
    hints = typing.get_type_hints(Account)
    fields = sorted(dataclasses.fields(Account), key=lambda f: f.name in oauth2_keys())
    for f in reversed(fields):
        if f.name == "name":
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        if hint is bool:
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None,
                                  help=_HELP[f.name])
        elif typing.get_origin(hint) is tuple:
            option = click.option(flag, f.name, multiple=True, help=_HELP[f.name])
        else:
            kind = int if int in typing.get_args(hint) or hint is int else str
            if f.name in _CHOICES:
                kind = click.Choice(_CHOICES[f.name])
            option = click.option(flag, f.name, type=kind, default=None, help=_HELP[f.name])
        function = option(function)
    return function


@accounts.command()
@click.argument("name")
@_account_options
@pass_app
def add(app: App, name: str, **values) -> None:
    """Add the account NAME to the accounts file (its comments and layout are kept).

    At a terminal it asks for whatever is missing, the password hidden, and offers to test the
    account.

    \b
    Examples:
      helpdesk-fetch accounts add helpdesk --protocol imap --host mail.example.com \\
          --username helpdesk@example.com --password-env HELPDESK_IMAP_PASSWORD \\
          --resource it-support
      helpdesk-fetch accounts add monitoring   # asks for the rest
    """
    from helpdesk_fetch import config as cfg
    from helpdesk_fetch.config.edit import add_account

    path = cfg.config_path(app.config_option)
    if path.exists():
        app.config()  # like every command: a file holding a secret must be private
    interactive = is_tty() and click.get_text_stream("stdin").isatty()
    values = {k: (list(v) or None) if isinstance(v, tuple) else v for k, v in values.items()}
    if interactive:
        _ask_missing(values)
    add_account(path, {"name": name, **values})
    note(f"Added account {name!r} to {path}.")
    if interactive and click.confirm("Test it now?", default=True):
        app._config = None
        _test_accounts(app, [name])


def _ask_missing(values: dict) -> None:
    """The "add account" dialog: ask for what the options did not say."""
    if values["protocol"] is None:
        values["protocol"] = click.prompt("Protocol", type=click.Choice(PROTOCOLS),
                                          default="imap")
    if values["protocol"] == "maildir":
        if values["path"] is None:
            values["path"] = click.prompt("Maildir path")
        return
    for key, label in (("host", "Server"), ("username", "User name")):
        if values[key] is None:
            values[key] = click.prompt(label)
    if values["security"] is None:
        values["security"] = click.prompt("Security", type=click.Choice(SECURITIES),
                                          default="ssl")
    if values["auth"] != "oauth2" and not any(values[k] is not None for k in PASSWORD_KEYS):
        values["password"] = click.prompt("Password", hide_input=True)
    if values["resource"] is None:
        values["resource"] = click.prompt("Resource (empty: none)", default="",
                                          show_default=False) or None


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
    note(f"Removed account {name!r}.")


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
    config.account(name)
    set_account_key(config.path, name, "enabled", enabled)
    note(f"Account {name!r} {'enabled' if enabled else 'disabled'}.")


# -- test -------------------------------------------------------------------------------------

@accounts.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=complete_account)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@pass_app
def test(app: App, ctx: click.Context, names: tuple[str, ...], as_json: bool) -> None:
    """Connect and log in, and report how many messages wait and where messages that fail to
    ingest go (IMAP: the error folder's full name inside the server's namespace); changes
    nothing. Without NAME, every account. Exit status 1 when any account fails.

    \b
    Example:
      helpdesk-fetch accounts test helpdesk
    """
    ok = _test_accounts(app, list(names) or None, as_json=as_json)
    ctx.exit(0 if ok else 1)


def _test_accounts(app: App, names: list[str] | None, *, as_json: bool = False) -> bool:
    from helpdesk_fetch.sources import probe

    results = []
    for result in probe.test_accounts(app.config(), names):  # each shown as it is known
        results.append(result)
        if result.warning:
            note(f"{result.account}: warning: {result.warning}", style="yellow", err=True)
        if not as_json:
            _show_probe(result)
    if as_json:
        echo_json([r.as_dict() for r in results])
    return all(r.error is None for r in results)


def _show_probe(result) -> None:
    if result.error:
        return note(f"{result.account}: FAILED: {result.error}", style="bold red")
    note(f"{result.account}: ok, {result.count} messages waiting ({result.where})",
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
      helpdesk-fetch accounts authorize gmail --port 8765   # with ssh -L 8765:127.0.0.1:8765
    """
    from helpdesk_fetch.errors import UsageError
    from helpdesk_fetch.secrets.oauth2.authorize import authorize as sign_in

    config = app.config()
    if smtp == (name is not None):
        raise UsageError("give either an account NAME or --smtp")
    source = config.smtp if smtp else config.account(name)
    if source is None:
        raise UsageError("there is no [smtp] section in the accounts file")
    label = "smtp" if smtp else name
    path = sign_in(source, label=label, state_dir=config.settings.state_dir,
                   timeout=config.timeout_for(source), say=note, browser=browser, port=port)
    check = "" if smtp else f"; `helpdesk-fetch accounts test {name}` checks the login"
    note(f"Signed in. The refresh token is saved in {path} (mode 600){check}.", style="green")
