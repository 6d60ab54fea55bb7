"""Auto-mails over SMTP with OAuth2 (XOAUTH2) after verified STARTTLS: a real aiosmtpd server
that checks each token with the tests' identity provider, as Office 365 and Gmail do."""

from __future__ import annotations

import base64
import json
import stat

from aiosmtpd.smtp import MISSING, AuthResult

from tests.mails import message
from tests.oauth_server import Client
from tests.servers import SmtpSink
from tests.test_oauth2 import CLIENT

SENDER = "helpdesk@example.com"


class XOAuth2Sink(SmtpSink):
    """An SMTP server that offers AUTH XOAUTH2 (after STARTTLS) and asks the provider."""

    def __init__(self, idp, **kwargs) -> None:
        super().__init__(**kwargs)
        self.idp = idp
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd's hook name
        blob = base64.b64decode(args[1]) if len(args) == 2 else await server.challenge_auth("")
        if blob is MISSING:
            return AuthResult(success=False)
        fields = dict(part.split("=", 1) for part in blob.decode().split("\x01") if "=" in part)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        answer = self.idp.introspect({"token": token})
        if answer["active"] and answer["username"] == user:
            self.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        # Refused: the error as a challenge, the client's empty answer, then 535.
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer"}))
        await server.push("535 5.7.8 Authentication credentials invalid")
        return AuthResult(success=False, handled=True)


def smtp_table(sink, idp, dovecot, **extra) -> dict:
    return sink.config(security="starttls", ca_file=str(dovecot.cert), username=SENDER,
                       auth="oauth2", oauth2_client_id=CLIENT,
                       oauth2_token_url=idp.url + "/token",
                       oauth2_device_url=idp.url + "/devicecode", oauth2_scopes=["smtp"],
                       **extra)


def test_automails_are_sent_with_xoauth2(dovecot, idp, mail_user, write_config, run):
    idp.provider.clients[CLIENT] = Client()
    idp.provider.device_user = SENDER
    sink = XOAuth2Sink(idp, tls=(dovecot.cert, dovecot.key)).start()
    try:
        config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                              smtp=smtp_table(sink, idp, dovecot))
        authorized = run("accounts", "authorize", "--smtp", config=config)
        assert authorized.exit_code == 0, authorized.output
        token_file = config.parent / "oauth2" / "smtp.json"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        dovecot.append(mail_user, [message("Printer broken")])

        result = run("fetch", config=config)

        # (aiosmtpd, running in this process, warns about its own deprecated login_data)
        problems = [line for line in result.stderr.splitlines() if "login_data" not in line]
        assert result.exit_code == 0 and problems == [], result.output
        assert sink.logins == [SENDER]
        assert len(sink.messages) == 2  # to the requester and to the resource
        assert run.json("status", config=config)["outbox_pending"] == 0
    finally:
        sink.stop()


def test_a_revoked_smtp_sign_in_keeps_the_mails_queued_and_says_what_to_do(
        dovecot, idp, mail_user, write_config, run):
    idp.provider.clients[CLIENT] = Client()
    sink = XOAuth2Sink(idp, tls=(dovecot.cert, dovecot.key)).start()
    try:
        config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                              smtp=smtp_table(sink, idp, dovecot))
        token_file = config.parent / "oauth2" / "smtp.json"
        token_file.parent.mkdir(mode=0o700)
        refresh = idp.provider.issue(SENDER, CLIENT)["refresh_token"]
        token_file.write_text(json.dumps({"refresh_token": refresh}))
        token_file.chmod(0o600)
        idp.provider.revoke(SENDER)
        dovecot.append(mail_user, [message("Printer broken")])

        result = run("fetch", config=config)

        assert result.exit_code == 0  # the ticket is stored; the mails wait
        assert "auto-mails not sent, 2 wait for the next run" in result.stderr
        assert "refused the refresh token (invalid_grant" in result.stderr
        assert "`helpdesk-fetch accounts authorize --smtp`" in result.stderr
        assert "account 'smtp'" not in result.stderr
        assert sink.messages == [] and run.json("status", config=config)["outbox_pending"] == 2
    finally:
        sink.stop()


def test_a_token_the_smtp_server_refuses(dovecot, idp, mail_user, write_config, run, tmp_path):
    token = idp.provider.issue("somebody-else@example.com", CLIENT, with_refresh=False)
    (tmp_path / "token").write_text(token["access_token"])
    sink = XOAuth2Sink(idp, tls=(dovecot.cert, dovecot.key)).start()
    try:
        smtp = sink.config(security="starttls", ca_file=str(dovecot.cert), username=SENDER,
                           auth="oauth2", oauth2_token_command=f"cat {tmp_path / 'token'}")
        config = write_config([dovecot.account("helpdesk", mail_user, resource="it-support")],
                              smtp=smtp)
        dovecot.append(mail_user, [message("Printer broken")])

        result = run("fetch", config=config)

        assert result.exit_code == 0
        assert (f"the SMTP server refused the OAuth2 access token for '{SENDER}' (status 401, "
                "schemes bearer): 535") in result.stderr
        assert token["access_token"] not in result.stderr
    finally:
        sink.stop()
