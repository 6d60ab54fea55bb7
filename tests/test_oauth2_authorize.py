"""``accounts authorize``: the first sign-in, by device code and by browser (PKCE + loopback),
against the tests' identity provider; the saved refresh token then logs in to Dovecot."""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

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
                                   monkeypatch, browser_sign_in):
    """The command runs as the administrator would run it; the test plays the browser."""
    idp.provider.clients[CLIENT] = Client(secret="web-client-secret")
    idp.provider.browser_user = mail_user
    monkeypatch.setenv("CLIENT_SECRET", "web-client-secret")
    config = write_config([oauth_account(oauth_dovecot, idp, "g", mail_user,
                                         password_env="CLIENT_SECRET")])
    command, address = browser_sign_in(config, "g")

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


def test_only_the_answer_with_the_right_state_ends_the_browser_sign_in(
        oauth_dovecot, idp, mail_user, write_config, run, browser_sign_in):
    """Another local process, or a browser's prefetch, reaches the listener first."""
    idp.provider.clients[CLIENT] = Client()
    idp.provider.browser_user = mail_user
    config = write_config([oauth_account(oauth_dovecot, idp, "g", mail_user)])
    command, address = browser_sign_in(config, "g")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(address).query)
    redirect = query["redirect_uri"][0]

    for stray in ("?error=access_denied", "?code=stolen&state=guessed", "?code=x&state=",
                  "?error=x&state=%C3%A9"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(redirect + stray, timeout=30)
        assert refused.value.code == 400 and b"state" in refused.value.read()
    with urllib.request.urlopen(address, timeout=30) as page:
        assert b"signed in" in page.read()
    out, err = command.communicate(timeout=60)

    assert command.returncode == 0 and "Traceback" not in err, err
    assert [r["grant_type"] for r in idp.provider.requests] == ["authorization_code"]
    assert run("accounts", "test", "g", config=config).exit_code == 0


@pytest.fixture
def browser_sign_in():
    """Starts `accounts authorize NAME --browser` as the administrator runs it; the process and
    the address it asks to open. A process a failed test left waiting is stopped."""
    started = []

    def start(config, name: str) -> tuple[subprocess.Popen, str]:
        command = subprocess.Popen(
            [sys.executable, "-m", "helpdesk_fetch", "--config", str(config), "accounts",
             "authorize", name, "--browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env=environment())
        started.append(command)
        return command, next(line.strip() for line in command.stdout
                             if line.strip().startswith("http"))

    yield start
    for command in started:
        if command.poll() is None:
            command.kill()
            command.communicate()


def test_nothing_to_authorize(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("pw", mail_user)])

    result = run("accounts", "authorize", "pw", config=config)

    assert result.exit_code == 2 and "logs in with a password" in result.stderr
    assert run("accounts", "authorize", config=config).exit_code == 2
    assert "no [smtp] section" in run("accounts", "authorize", "--smtp", config=config).stderr


def test_an_idle_local_connection_does_not_hold_up_the_browser(
        oauth_dovecot, idp, mail_user, write_config, run, browser_sign_in):
    """Any local process can connect to the listener and send nothing: the browser's redirect
    is still served at once, and the idle connection is dropped after its timeout."""
    idp.provider.clients[CLIENT] = Client()
    idp.provider.browser_user = mail_user
    config = write_config([oauth_account(oauth_dovecot, idp, "g", mail_user)])
    command, address = browser_sign_in(config, "g")
    redirect = urllib.parse.urlsplit(
        urllib.parse.parse_qs(urllib.parse.urlsplit(address).query)["redirect_uri"][0])
    idle = [socket.create_connection((redirect.hostname, redirect.port)) for _ in range(3)]
    idle[1].sendall(b"GET /?code=x")  # half a request line, then nothing

    started = time.monotonic()
    with urllib.request.urlopen(address, timeout=30) as page:
        assert b"signed in" in page.read()
    out, err = command.communicate(timeout=60)

    assert time.monotonic() - started < 15
    assert command.returncode == 0 and "Traceback" not in err, err
    for connection in idle:
        connection.close()
