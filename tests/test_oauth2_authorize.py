"""``accounts authorize``: the first sign-in, by device code and by browser (PKCE + loopback),
against the tests' identity provider; the saved refresh token then logs in to Dovecot."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import urllib.request

from tests.mails import message
from tests.oauth_server import Client
from tests.proc import ROOT, environment
from tests.test_oauth2 import CLIENT, oauth_account, token_file


def test_device_code_sign_in_then_fetch(oauth_dovecot, idp, mail_user, write_config, run):
    idp.provider.clients[CLIENT] = Client()  # a public client: no secret
    idp.provider.device_user = mail_user
    oauth_dovecot.append(mail_user, [message("After the sign-in")])
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])

    result = run("accounts", "authorize", "o", config=config)

    assert result.exit_code == 0, result.output
    code = next(iter(idp.provider.requests))["device_code"]
    assert code and f"open {idp.url}/device in a browser on any device" in result.output
    assert re.search(r"enter the code [0-9A-F]{8}\b", result.output)
    assert f"saved in {token_file(config, 'o')} (mode 600)" in result.output
    saved = json.loads(token_file(config, "o").read_text())
    assert saved["refresh_token"] in idp.provider.refresh
    assert stat.S_IMODE(token_file(config, "o").stat().st_mode) == 0o600
    assert [r["grant_type"] for r in idp.provider.requests] == [
        "urn:ietf:params:oauth:grant-type:device_code"] * 2  # pending once, then signed in
    assert run("fetch", config=config).exit_code == 0
    assert oauth_dovecot.messages(mail_user) == []


def test_device_code_declined(oauth_dovecot, idp, mail_user, write_config, run):
    idp.provider.clients[CLIENT] = Client()
    idp.provider.device_answer = "access_denied"
    config = write_config([oauth_account(oauth_dovecot, idp, "o", mail_user)])

    result = run("accounts", "authorize", "o", config=config)

    assert result.exit_code == 1
    assert "account 'o': the sign-in was declined (access_denied" in result.stderr
    assert not token_file(config, "o").exists()


def test_browser_sign_in_with_pkce(oauth_dovecot, idp, mail_user, write_config, run,
                                   monkeypatch):
    """The command runs as the administrator would run it; the test plays the browser."""
    idp.provider.clients[CLIENT] = Client(secret="web-client-secret")
    idp.provider.browser_user = mail_user
    monkeypatch.setenv("CLIENT_SECRET", "web-client-secret")
    config = write_config([oauth_account(oauth_dovecot, idp, "g", mail_user,
                                         password_env="CLIENT_SECRET")])
    command = subprocess.Popen(
        [sys.executable, "-m", "helpdesk_fetch", "--config", str(config), "accounts",
         "authorize", "g", "--browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=ROOT, env=environment())
    address = next(line.strip() for line in command.stdout if line.strip().startswith("http"))

    with urllib.request.urlopen(address, timeout=30) as page:  # follows the redirect back
        assert b"signed in" in page.read()
    out, err = command.communicate(timeout=60)

    assert command.returncode == 0, err
    assert "Signed in." in out
    assert "code_challenge_method=S256" in address and "login_hint=" in address
    exchange = idp.provider.requests[0]
    assert exchange["grant_type"] == "authorization_code" and exchange["code_verifier"]
    assert exchange["client_secret"] == "web-client-secret"
    assert run("accounts", "test", "g", config=config).exit_code == 0


def test_nothing_to_authorize(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("pw", mail_user)])

    result = run("accounts", "authorize", "pw", config=config)

    assert result.exit_code == 2 and "logs in with a password" in result.stderr
    assert run("accounts", "authorize", config=config).exit_code == 2
    assert "no [smtp] section" in run("accounts", "authorize", "--smtp", config=config).stderr
