"""An account set up with the wrong port, protocol or security is told what is wrong and what to
check (sources/net.py), by `fetch` (stderr, exit 1) and by `accounts test`, against a real
Dovecot: each case is a mix-up a new administrator makes. (TLS to a plaintext port: test_tls.py.)"""

from __future__ import annotations

import pytest


def assert_told(run, config, *expected: str) -> None:
    """`fetch` and `accounts test` both fail the account and say *expected*; never "None"."""
    fetched = run("fetch", config=config)
    tested = run("accounts", "test", config=config)
    assert fetched.exit_code == 1 and tested.exit_code == 1
    for text in expected:
        assert text in fetched.stderr, fetched.stderr
        assert text in tested.output, tested.output
    assert ": None" not in fetched.stderr + tested.output
    assert "box: FAILED: connecting to" in tested.output  # the account named once, not twice


def test_imaps_on_the_pop3s_port(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("box", mail_user, port=dovecot.ports["pop3s"])])

    assert_told(run, config, "this is not an IMAP server: it greets like a POP3 server ('+OK",
                'check the port (usually 993 with security = "ssl", 143 with "starttls"), or '
                'set protocol = "pop3"')


@pytest.mark.parametrize("security, port", [("ssl", "imaps"), ("starttls", "imap")])
def test_pop3_on_an_imap_port(dovecot, mail_user, write_config, run, security, port):
    config = write_config([dovecot.account("box", mail_user, protocol="pop3", security=security,
                                           port=dovecot.ports[port])])

    assert_told(run, config, "this is not a POP3 server: it greets like an IMAP server ('* OK",
                'check the port (usually 995 with security = "ssl", 110 with "starttls"), or '
                'set protocol = "imap"')


def test_imap_on_the_pop3_port(dovecot, mail_user, write_config, run):
    config = write_config([dovecot.account("box", mail_user, security="starttls",
                                           port=dovecot.ports["pop3"])])

    assert_told(run, config, "this is not an IMAP server: it greets like a POP3 server",
                'or set protocol = "pop3"')


@pytest.mark.parametrize("protocol, tls", [("imap", 993), ("pop3", 995)])
def test_starttls_to_a_tls_port(dovecot, mail_user, write_config, run, protocol, tls):
    config = write_config([dovecot.account("box", mail_user, protocol=protocol,
                                           security="starttls", timeout_seconds=1,
                                           port=dovecot.ports[protocol + "s"])])

    assert_told(run, config, "connected, but the server sent no greeting within 1 s; a port "
                "that expects TLS from the first byte waits like this: if this is the server's "
                f'TLS port (usually {tls}), set security = "ssl"')
