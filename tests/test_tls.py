"""Verified TLS (spec §7): certificates and host names are checked for IMAP, POP3 and the OAuth2
endpoints; ca_file trusts a private CA; STARTTLS never falls back to plaintext; a plaintext
login happens only with security = "none", and `accounts test` warns about it."""

from __future__ import annotations

import ssl

import pytest

from helpdesk_fetch.tls import untrusted
from tests.mails import message
from tests.oauth_server import OAuthServer
from tests.proxy import CapturingProxy
from tests.servers import PASSWORD, Dovecot, dovecot_base, make_certificate

SECURE = [("imap", "ssl"), ("imap", "starttls"), ("pop3", "ssl"), ("pop3", "starttls")]


@pytest.fixture(scope="module")
def plain_dovecot():
    """A Dovecot without TLS: no STARTTLS, no STLS, plaintext everywhere."""
    with dovecot_base() as base:
        server = Dovecot(base, ssl_enabled=False).start()
        yield server
        server.stop()


@pytest.fixture(scope="module")
def misnamed_dovecot():
    """A Dovecot whose certificate (trusted through ca_file) is for another host name."""
    with dovecot_base() as base:
        cert, key = make_certificate(base, "wrong", names="DNS:mail.wrong.example")
        server = Dovecot(base, extra_config=f"ssl_cert = <{cert}\nssl_key = <{key}\n")
        server.start()
        server.cert = cert  # what dovecot.account() puts into ca_file
        yield server
        server.stop()


@pytest.mark.parametrize("protocol, security", SECURE)
def test_a_self_signed_certificate_needs_ca_file(dovecot, mail_user, write_config, run,
                                                 protocol, security):
    untrusted = dovecot.account("box", mail_user, protocol=protocol, security=security)
    del untrusted["ca_file"]
    trusted = dovecot.account("box", mail_user, protocol=protocol, security=security)

    refused = run("fetch", config=write_config([untrusted]))
    accepted = run("accounts", "test", config=write_config([trusted]))

    assert refused.exit_code == 1
    assert "account 'box'" in refused.stderr
    assert "the server's TLS certificate is not trusted (self-signed certificate)" in \
        refused.stderr.replace("self signed", "self-signed")
    assert "for a private CA set ca_file" in refused.stderr
    assert accepted.exit_code == 0 and "box: ok" in accepted.output


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_host_name_is_verified(misnamed_dovecot, mail_user, write_config, run, protocol):
    config = write_config([misnamed_dovecot.account("box", mail_user, protocol=protocol)])

    result = run("accounts", "test", config=config)

    assert result.exit_code == 1
    assert ("the server's TLS certificate is issued to another name (IP address mismatch, "
            "certificate is not valid for '127.0.0.1'); set host to a name (or address) it is "
            "issued to") in result.output  # ca_file is right: the fix is the name
    assert "set ca_file" not in result.output


def test_a_ca_file_of_another_ca_is_named(dovecot, misnamed_dovecot, mail_user, write_config,
                                          run):
    account = dovecot.account("box", mail_user, ca_file=str(misnamed_dovecot.cert))

    result = run("fetch", config=write_config([account]))

    assert result.exit_code == 1
    assert (f"not trusted (self-signed certificate); is ca_file ({misnamed_dovecot.cert}) the "
            "CA that issued it?") in result.stderr.replace("self signed", "self-signed")


@pytest.mark.parametrize("protocol, capability", [("imap", "STARTTLS"), ("pop3", "STLS")])
def test_starttls_without_starttls_fails_before_the_password(plain_dovecot, mail_user,
                                                             write_config, run, protocol,
                                                             capability):
    with CapturingProxy(plain_dovecot.ports[protocol]) as proxy:
        account = plain_dovecot.account("box", mail_user, protocol=protocol,
                                        security="starttls", port=proxy.port)
        result = run("fetch", config=write_config([account]))
        proxy.wait()

    assert result.exit_code == 1
    assert (f"account 'box': 127.0.0.1:{proxy.port} does not offer {capability}; refusing to "
            "log in without TLS") in result.stderr
    sent = bytes(proxy.sent)
    assert b"CAPA" in sent.upper()  # the client did talk: it asked what the server offers
    for verb in (b"LOGIN", b"AUTHENTICATE", b"AUTH ", b"USER ", b"PASS "):
        assert verb not in sent.upper()
    assert PASSWORD.encode() not in sent and mail_user.encode() not in sent
    log = plain_dovecot.log.read_text()
    assert f"user=<{mail_user}>" not in log  # Dovecot saw no login attempt for the user


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_plaintext_only_with_security_none_and_with_a_warning(plain_dovecot, mail_user,
                                                              write_config, run, protocol):
    account = plain_dovecot.account("box", mail_user, protocol=protocol, security="none")

    result = run("accounts", "test", config=write_config([account]))

    assert result.exit_code == 0, result.output
    assert "box: warning: security = \"none\": the login and the mail cross the network " \
           "unencrypted" in result.stderr
    assert "box: ok" in result.stdout


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_ssl_against_a_plaintext_port_fails_cleanly(plain_dovecot, mail_user, write_config, run,
                                                    protocol):
    account = plain_dovecot.account("box", mail_user, protocol=protocol, security="ssl",
                                    port=plain_dovecot.ports[protocol])

    result = run("fetch", config=write_config([account]))

    plain, tls = {"imap": (143, 993), "pop3": (110, 995)}[protocol]
    assert result.exit_code == 1
    assert "account 'box'" in result.stderr
    assert ("the server does not speak TLS on this port (it answered in plain text, "
            f'WRONG_VERSION_NUMBER); for this port try security = "starttls" (usually port '
            f"{plain}), or use the server's TLS port (usually {tls})") in result.stderr


def test_the_token_endpoint_certificate_is_verified(oauth_dovecot, idp, mail_user,
                                                    write_config, run):
    """An https identity provider with a private CA: refused without ca_file, fine with it."""
    https_idp = OAuthServer(certificate=(oauth_dovecot.cert, oauth_dovecot.key)).start()
    https_idp.provider = idp.provider  # the one Dovecot asks about tokens
    idp = https_idp
    try:
        from tests.test_oauth2 import oauth_account, signed_in

        trusted = oauth_account(oauth_dovecot, idp, "o", mail_user)
        untrusted = dict(trusted, ca_file=None)
        del untrusted["ca_file"]
        oauth_dovecot.append(mail_user, [message("Over https")])
        config = write_config([untrusted])
        signed_in(idp, config, "o", mail_user)

        refused = run("fetch", config=config)
        assert refused.exit_code == 1
        assert (f"account 'o': {idp.url}/token: the TLS certificate is not trusted "
                "(self-signed certificate); for a private CA set ca_file") in \
            refused.stderr.replace("self signed", "self-signed")
        assert idp.provider.requests == []

        config = write_config([trusted], path=config)
        accepted = run("fetch", config=config)
        assert accepted.exit_code == 0, accepted.output
        assert oauth_dovecot.messages(mail_user) == []
    finally:
        https_idp.stop()


@pytest.mark.parametrize(("code", "said", "ca_file", "fix"), [
    (10, "certificate has expired", None,
     "is not valid now (certificate has expired); it must be renewed on the server or this "
     "machine's clock is wrong"),
    (10, "certificate has expired", "/etc/ca.pem",
     "must be renewed on the server, or the CA in ca_file, or this machine's clock is wrong"),
    (9, "certificate is not yet valid", None, "is not valid now (certificate is not yet valid)"),
    (20, "unable to get local issuer certificate", None, "for a private CA set ca_file"),
])
def test_each_refusal_gets_the_fix_that_fits(code, said, ca_file, fix):
    """Expired or early certificates (no server here has one) are said as such, not as a CA."""
    exc = ssl.SSLCertVerificationError(1, f"certificate verify failed: {said}")
    exc.verify_code, exc.verify_message = code, said

    assert fix in untrusted(exc, ca_file=ca_file)
