"""The system's trusted CAs from its hashed certificate directory (mailbox/base.py, issue 7):
looked up as needed instead of loading the whole bundle, with the same verdicts."""

from __future__ import annotations

import subprocess

import pytest

from helpdesk_fetch.tls import system_ca_dir
from tests.mails import message


@pytest.fixture
def cert_dir(tmp_path, monkeypatch):
    """An empty certificate directory as the system's ($SSL_CERT_DIR), no $SSL_CERT_FILE."""
    directory = tmp_path / "certs"
    directory.mkdir()
    monkeypatch.setenv("SSL_CERT_DIR", str(directory))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    system_ca_dir.cache_clear()
    yield directory
    system_ca_dir.cache_clear()


def trust(directory, cert) -> None:
    """What c_rehash / update-ca-certificates does: the certificate under its subject hash."""
    digest = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(cert)],
                            capture_output=True, text=True, check=True).stdout.strip()
    (directory / f"{digest}.0").write_bytes(cert.read_bytes())


def test_a_server_the_hashed_directory_trusts_is_trusted(cert_dir, dovecot, mail_user,
                                                          write_config, run):
    trust(cert_dir, dovecot.cert)
    account = dovecot.account("helpdesk", mail_user)
    del account["ca_file"]  # only the system's trust store
    dovecot.append(mail_user, [message("Printer broken")])

    result = run("fetch", config=write_config([account]))

    assert system_ca_dir() == str(cert_dir)
    assert result.exit_code == 0, result.output
    assert dovecot.messages(mail_user) == []


def test_a_server_it_does_not_trust_is_refused(cert_dir, dovecot, mail_user, write_config, run):
    (cert_dir / "0000abcd.0").write_text("not a certificate")  # hashed, but not our server's
    account = dovecot.account("helpdesk", mail_user)
    del account["ca_file"]
    dovecot.append(mail_user, [message("Printer broken")])

    result = run("fetch", config=write_config([account]))

    assert system_ca_dir() == str(cert_dir)
    assert result.exit_code == 1
    assert "not trusted" in result.output
    assert len(dovecot.messages(mail_user)) == 1


def test_the_bundle_is_used_without_a_hashed_directory_or_with_ssl_cert_file(cert_dir,
                                                                               monkeypatch):
    (cert_dir / "ca-bundle.crt").write_text("")
    assert system_ca_dir() is None

    (cert_dir / "0123abcd.0").write_text("")
    system_ca_dir.cache_clear()
    assert system_ca_dir() == str(cert_dir)

    monkeypatch.setenv("SSL_CERT_FILE", str(cert_dir / "ca-bundle.crt"))
    system_ca_dir.cache_clear()
    assert system_ca_dir() is None
