"""OAuth2 (XOAUTH2) end to end: a real Dovecot whose oauth2 passdb asks the tests' identity
provider, over IMAP and POP3, with tokens from a command, from the refresh-token flow (rotated
and saved) and from the client-credentials flow (secret or certificate); expiry and revocation."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import threading

import pytest

from tests.mails import message
from tests.oauth_server import Client
from tests.proc import helpdesk_fetch
from tests.proxy import CapturingProxy

CLIENT = "helpdesk-app"


def oauth_account(dovecot, idp, name, user, protocol="imap", security="ssl", **extra) -> dict:
    table = dovecot.account(name, user, protocol=protocol, security=security)
    del table["password"]
    table["auth"] = "oauth2"
    if "oauth2_token_command" not in extra:
        table.update(oauth2_client_id=CLIENT, oauth2_token_url=idp.url + "/token",
                     oauth2_device_url=idp.url + "/devicecode",
                     oauth2_authorize_url=idp.url + "/authorize", oauth2_scopes=["mail"])
    table.update(extra)
    return table


def token_file(config, name: str):
    return config.parent / "oauth2" / f"account-{name}.json"


def signed_in(idp, config, name: str, user: str) -> str:
    """Save a refresh token for *user* as `accounts authorize` would; the token."""
    idp.provider.clients.setdefault(CLIENT, Client())
    refresh = idp.provider.issue(user, CLIENT, "mail")["refresh_token"]
    path = token_file(config, name)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps({"refresh_token": refresh}))
    path.chmod(0o600)
    return refresh


@pytest.mark.parametrize("protocol, security", [("imap", "ssl"), ("pop3", "ssl"),
                                                ("imap", "starttls"), ("pop3", "starttls")])
def test_fetch_with_a_token_from_the_command(oauth_dovecot, idp, mail_user, write_config, run,
                                             tmp_path, protocol, security):
    token = idp.provider.issue(mail_user, CLIENT, with_refresh=False)["access_token"]
    (tmp_path / "token").write_text(token + "\n")
    oauth_dovecot.append(mail_user, [message("Printer on fire")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user, protocol,
                                         security=security,
                                         oauth2_token_command=f"cat {tmp_path / 'token'}")])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == [
        "Printer on fire"]
    assert oauth_dovecot.messages(mail_user) == []
    assert idp.provider.introspected == [token]  # Dovecot really asked the provider


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_refresh_flow_saves_the_rotated_refresh_token(oauth_dovecot, idp, mail_user,
                                                      write_config, run, protocol):
    oauth_dovecot.append(mail_user, [message("First")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user, protocol)])
    first_refresh = signed_in(idp, config, "o", mail_user)

    assert run("fetch", config=config).exit_code == 0

    saved = json.loads(token_file(config, "o").read_text())
    assert saved["refresh_token"] != first_refresh  # rotated, and the new one saved
    assert first_refresh not in idp.provider.refresh  # the provider revoked the used one
    assert saved["refresh_token"] in idp.provider.refresh
    assert stat.S_IMODE(token_file(config, "o").stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file(config, "o").parent.stat().st_mode) == 0o700
    assert [r["grant_type"] for r in idp.provider.requests] == ["refresh_token"]
    assert idp.provider.requests[0]["scope"] == "mail"

    oauth_dovecot.append(mail_user, [message("Second")])
    assert run("fetch", config=config).exit_code == 0
    assert len(idp.provider.requests) == 1  # the saved access token was still good
    assert len(run.json("tickets", "list", config=config)) == 2


def test_a_token_near_its_expiry_is_renewed_before_the_login(oauth_dovecot, idp, mail_user,
                                                             write_config, run):
    idp.provider.lifetime = 60  # under the two minutes kept in reserve
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)

    for _ in range(3):
        assert run("accounts", "test", "o", config=config).exit_code == 0

    assert [r["grant_type"] for r in idp.provider.requests] == ["refresh_token"] * 3
    assert json.loads(token_file(config, "o").read_text())["refresh_token"] in \
        idp.provider.refresh


def test_an_access_token_the_server_refuses_is_replaced_on_the_next_attempt(
        oauth_dovecot, idp, mail_user, write_config, run):
    oauth_dovecot.append(mail_user, [message("Waiting")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    assert run("accounts", "test", "o", config=config).exit_code == 0
    idp.provider.expire_access_tokens()  # e.g. revoked early; we still think it is good

    refused = run("fetch", config=config)
    again = run("fetch", config=config)

    assert refused.exit_code == 1
    assert "account 'o'" in refused.stderr and "refused the OAuth2 access token" in \
        refused.stderr and "next attempt gets a new one" in refused.stderr
    assert again.exit_code == 0, again.output
    assert oauth_dovecot.messages(mail_user) == []


def test_a_revoked_refresh_token_names_the_account_and_the_fix(oauth_dovecot, dovecot, idp,
                                                               mail_user, write_config, run):
    dovecot.append(mail_user, [message("Other account still works")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user),
                           dovecot.account("plain", mail_user)])
    signed_in(idp, config, "o", mail_user)
    idp.provider.revoke(mail_user)

    result = run("fetch", config=config)

    assert result.exit_code == 1
    line = next(x for x in result.stderr.splitlines() if "'o'" in x)
    assert "refused the refresh token (invalid_grant: AADSTS70008" in line
    assert "Trace ID" not in line  # only the first line of a long description
    assert "expired or was revoked" in line
    assert "`helpdesk-fetch accounts authorize o`" in line
    assert len(run.json("tickets", "list", config=config)) == 1  # the other account ran


def test_without_a_sign_in_the_error_says_how(oauth_dovecot, idp, mail_user, write_config, run):
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])

    result = run("accounts", "test", "o", config=config)

    assert result.exit_code == 1
    assert "not signed in to OAuth2 yet" in result.output
    assert "helpdesk-fetch accounts authorize o" in result.output


@pytest.mark.parametrize("key", ["oauth2_client_id", "oauth2_token_url"])
def test_tokens_of_another_client_or_provider_are_not_used(oauth_dovecot, idp, mail_user,
                                                          write_config, run, key):
    """The administrator moved the login to another tenant or app registration."""
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    assert run("accounts", "test", "o", config=config).exit_code == 0  # saves an access token
    changed = {"oauth2_client_id": "new-app", "oauth2_token_url": idp.url + "/tenant-b/token"}
    write_config([oauth_account(oauth_dovecot, idp, "o", mail_user, **{key: changed[key]})])

    result = run("accounts", "test", "o", config=config)

    assert result.exit_code == 1
    assert (f"o: FAILED: the OAuth2 configuration changed since the sign-in "
            f"({key.removeprefix('oauth2_')} in {token_file(config, 'o')} differs): not "
            "signed in for it; run `helpdesk-fetch accounts authorize o`") in result.output
    assert len(idp.provider.requests) == 1  # the old refresh token went nowhere


def test_client_credentials_of_another_client_get_a_new_token(oauth_dovecot, idp, mail_user,
                                                              write_config, run, monkeypatch):
    for app in ("app", "app-b"):
        idp.provider.clients[app] = Client(secret="app-secret")
        idp.provider.app_mailbox[app] = mail_user
    monkeypatch.setenv("APP_SECRET", "app-secret")
    account = {"oauth2_flow": "client_credentials", "oauth2_client_id": "app",
               "password_env": "APP_SECRET"}
    config = write_config([oauth_account(oauth_dovecot, idp, "app", mail_user, **account)])
    assert run("accounts", "test", "app", config=config).exit_code == 0
    account["oauth2_client_id"] = "app-b"
    write_config([oauth_account(oauth_dovecot, idp, "app", mail_user, **account)])

    assert run("accounts", "test", "app", config=config).exit_code == 0

    assert [r["client_id"] for r in idp.provider.requests] == ["app", "app-b"]
    assert json.loads(token_file(config, "app").read_text())["client_id"] == "app-b"


def test_a_token_of_another_user_is_refused(oauth_dovecot, idp, mail_user, write_config, run,
                                            tmp_path):
    token = idp.provider.issue("somebody-else", CLIENT, with_refresh=False)["access_token"]
    (tmp_path / "token").write_text(token)
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user,
                                         oauth2_token_command=f"cat {tmp_path / 'token'}")])

    result = run("accounts", "test", "o", config=config)

    assert result.exit_code == 1 and "refused the OAuth2 access token" in result.output


def test_client_credentials_with_a_secret(oauth_dovecot, idp, mail_user, write_config, run,
                                          monkeypatch):
    idp.provider.clients["app"] = Client(secret="app-secret-42")
    idp.provider.app_mailbox["app"] = mail_user
    oauth_dovecot.append(mail_user, [message("App-only")])
    monkeypatch.setenv("APP_SECRET", "app-secret-42")
    account = oauth_account(oauth_dovecot, idp, "app", mail_user, "pop3",
                            oauth2_flow="client_credentials", oauth2_client_id="app",
                            password_env="APP_SECRET")
    config = write_config([account])

    assert run("fetch", config=config).exit_code == 0
    assert idp.provider.requests[0]["grant_type"] == "client_credentials"
    assert "refresh_token" not in json.loads(token_file(config, "app").read_text())

    monkeypatch.setenv("APP_SECRET", "wrong")
    token_file(config, "app").unlink()
    refused = run("accounts", "test", "app", config=config)
    assert refused.exit_code == 1 and "refused the client (invalid_client" in refused.output
    assert "check oauth2_client_id and the client secret or certificate" in refused.output


def test_client_credentials_with_a_certificate(oauth_dovecot, idp, mail_user, write_config,
                                               run, tmp_path):
    cert, key = tmp_path / "app-cert.pem", tmp_path / "app-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=helpdesk-app"],
                   check=True, capture_output=True)
    both = tmp_path / "app.pem"
    both.write_text(cert.read_text() + key.read_text())
    both.chmod(0o600)
    idp.provider.clients["app"] = Client(certificate=cert)
    idp.provider.app_mailbox["app"] = mail_user
    oauth_dovecot.append(mail_user, [message("Signed in with a certificate")])
    config = write_config([oauth_account(oauth_dovecot, idp, "app", mail_user,
                                         oauth2_flow="client_credentials",
                                         oauth2_client_id="app",
                                         oauth2_certificate_file=str(both))])

    assert run("fetch", config=config).exit_code == 0
    form = idp.provider.requests[0]
    assert form["client_assertion_type"].endswith(":jwt-bearer")
    assert "client_secret" not in form
    assert len(run.json("tickets", "list", config=config)) == 1

    both.chmod(0o644)
    token_file(config, "app").unlink()
    exposed = run("accounts", "test", "app", config=config)
    assert exposed.exit_code == 2 and f"chmod 600 {both}" in exposed.output  # spec §2


def test_pop3_xoauth2_is_sent_in_two_steps(oauth_dovecot, idp, mail_user, write_config, run,
                                           tmp_path):
    """Office 365 wants `AUTH XOAUTH2`, then the response after the server's `+`."""
    token = idp.provider.issue(mail_user, CLIENT, with_refresh=False)["access_token"]
    (tmp_path / "token").write_text(token)
    with CapturingProxy(oauth_dovecot.ports["pop3"]) as proxy:
        config = write_config([oauth_account(
            oauth_dovecot, idp, "o", mail_user, "pop3", security="none", port=proxy.port,
            oauth2_token_command=f"cat {tmp_path / 'token'}")])
        assert run("accounts", "test", "o", config=config).exit_code == 0
        proxy.wait()
    lines = bytes(proxy.sent).split(b"\r\n")
    step = lines.index(b"AUTH XOAUTH2")
    assert base64.b64decode(lines[step + 1]) == \
        f"user={mail_user}\x01auth=Bearer {token}\x01\x01".encode()


def test_concurrent_runs_never_spend_one_refresh_token_twice(oauth_dovecot, idp, mail_user,
                                                             write_config, tmp_path):
    idp.provider.lifetime = 60  # every run must refresh
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    results = []

    def one() -> None:
        results.append(helpdesk_fetch("accounts", "test", "o", config=config))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0] * 4, [r.stdout for r in results]
    assert len(idp.provider.requests) == 4


def test_a_token_url_that_does_not_speak_http_is_a_clear_error(dovecot, oauth_dovecot, idp,
                                                                mail_user, write_config, run):
    account = oauth_account(oauth_dovecot, idp, "o", mail_user)
    account["oauth2_token_url"] = f"http://127.0.0.1:{dovecot.ports['imap']}/token"  # IMAP
    config = write_config([account])
    signed_in(idp, config, "o", mail_user)

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert "account 'o'" in result.stderr and "not an HTTP answer; is this" in result.stderr
    assert "BadStatusLine" not in result.stderr  # what happened, not Python's name for it


def test_a_rotated_token_that_cannot_be_saved_fails_the_account_clearly(oauth_dovecot, idp,
                                                                         mail_user, write_config,
                                                                         run):
    oauth_dovecot.append(mail_user, [message("First")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)
    assert run("fetch", config=config).exit_code == 0  # the token file and its lock exist
    path = token_file(config, "o")
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({"refresh_token": saved["refresh_token"]}))  # must refresh
    oauth_dovecot.append(mail_user, [message("Second")])
    directory = path.parent
    subprocess.run(["chattr", "+i", str(directory)], check=True)  # even root cannot write
    try:
        result = run("fetch", config=config)
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)

    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot save the OAuth2 tokens" in result.stderr
    assert "helpdesk-fetch accounts authorize o" in result.stderr


def test_a_token_helper_on_loopback_is_reached_without_the_proxy(oauth_dovecot, idp, mail_user,
                                                                  write_config, run, monkeypatch):
    """A proxy would see the refresh token and the client secret of a plain-http helper."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    oauth_dovecot.append(mail_user, [message("Behind a proxy")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])
    signed_in(idp, config, "o", mail_user)

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert [r["grant_type"] for r in idp.provider.requests] == ["refresh_token"]


def test_errors_retry_dismiss_and_show_raw_log_in_with_oauth2(oauth_dovecot, idp, mail_user,
                                                              write_config, run, tmp_path):
    """errors retry/dismiss/show --raw open the error folder the way fetch opens the inbox (one
    open_mailbox): an oauth2 account has no password source to ask."""
    token = idp.provider.issue(mail_user, CLIENT, with_refresh=False)["access_token"]
    (tmp_path / "token").write_text(token + "\n")
    big, small = message("Too big", body="x" * 4000), message("Also too big", body="y" * 4000)
    oauth_dovecot.append(mail_user, [big, small])
    account = oauth_account(oauth_dovecot, idp, "o", mail_user,
                            oauth2_token_command=f"cat {tmp_path / 'token'}")
    config = write_config([account], settings={"max_message_bytes": 2000})
    assert run("fetch", config=config).exit_code == 0
    assert len(oauth_dovecot.messages(mail_user, "HD Error Messages")) == 2

    first, second = run.json("errors", "list", config=config)
    raw = run("errors", "show", str(first["id"]), "--raw", config=config)
    assert raw.exit_code == 0 and b"Too big" in raw.stdout_bytes
    config = write_config([account], settings={"max_message_bytes": 26214400})
    retried = run("errors", "retry", str(first["id"]), config=config)
    assert retried.exit_code == 0 and "ingested" in retried.output, retried.output
    dismissed = run("errors", "dismiss", str(second["id"]), config=config)
    assert dismissed.exit_code == 0, dismissed.output
    assert oauth_dovecot.messages(mail_user, "HD Error Messages") == []
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Too big"]
