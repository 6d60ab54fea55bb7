"""The OAuth2 keys of the accounts file: provider presets, and errors that name account and key."""

from __future__ import annotations

import pytest

from helpdesk_fetch.errors import ConfigError
from tests.test_config import load_text

BASE = ('[[accounts]]\nname = "a"\nprotocol = "{protocol}"\nhost = "h"\n'
        'username = "u@example.com"\nauth = "oauth2"\n')


def account(extra: str, protocol: str = "imap", tmp_path=None):
    return load_text(tmp_path, BASE.format(protocol=protocol) + extra).accounts[0]


def test_microsoft_fills_in_endpoints_and_scopes(tmp_path):
    imap = account('provider = "microsoft"\noauth2_client_id = "c"\n', tmp_path=tmp_path)
    assert imap.oauth2_token_url == \
        "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    assert imap.oauth2_device_url.endswith("/common/oauth2/v2.0/devicecode")
    assert imap.oauth2_scopes == ("https://outlook.office365.com/IMAP.AccessAsUser.All",
                                  "offline_access")
    pop = account('provider = "microsoft"\noauth2_client_id = "c"\noauth2_tenant = "t.example"\n',
                  "pop3", tmp_path)
    assert pop.oauth2_scopes[0] == "https://outlook.office365.com/POP.AccessAsUser.All"
    assert pop.oauth2_token_url.startswith("https://login.microsoftonline.com/t.example/")
    app = account('provider = "microsoft"\noauth2_client_id = "c"\noauth2_tenant = "t.example"\n'
                  'oauth2_flow = "client_credentials"\npassword_env = "S"\n', "pop3", tmp_path)
    assert app.oauth2_scopes == ("https://outlook.office365.com/.default",)


def test_google_is_signed_in_through_a_browser(tmp_path):
    gmail = account('provider = "google"\noauth2_client_id = "c"\npassword_env = "S"\n',
                    tmp_path=tmp_path)
    assert gmail.oauth2_scopes == ("https://mail.google.com/",)
    assert gmail.oauth2_device_url is None  # Google's device flow refuses the Gmail scope
    assert gmail.oauth2_authorize_url.startswith("https://accounts.google.com/")


def test_explicit_keys_win_over_the_preset(tmp_path):
    custom = account('provider = "microsoft"\noauth2_client_id = "c"\n'
                     'oauth2_scopes = ["x"]\noauth2_token_url = "https://idp.example/token"\n',
                     tmp_path=tmp_path)
    assert custom.oauth2_scopes == ("x",)
    assert custom.oauth2_token_url == "https://idp.example/token"


def test_smtp_gets_the_smtp_scope(tmp_path):
    config = load_text(tmp_path, '[smtp]\nhost = "s"\nfrom_address = "h@example.com"\n'
                                 'username = "h@example.com"\nauth = "oauth2"\n'
                                 'provider = "microsoft"\noauth2_client_id = "c"\n')
    assert config.smtp.oauth2_scopes[0] == "https://outlook.office365.com/SMTP.Send"


@pytest.mark.parametrize("extra, needle", [
    ('provider = "yahoo"\n', "key 'provider': 'yahoo' is not one of microsoft, google"),
    ('oauth2_client_id = "c"\n', "key 'oauth2_token_url': missing"),
    ('oauth2_token_url = "https://i/t"\n', "key 'oauth2_client_id': missing"),
    ('oauth2_token_url = "http://idp.example/t"\noauth2_client_id = "c"\n',
     "key 'oauth2_token_url': must be an https:// address"),
    ('oauth2_token_command = "x"\noauth2_client_id = "c"\n',
     "key 'oauth2_client_id': does not apply with oauth2_token_command"),
    ('oauth2_token_command = "x"\npassword_env = "P"\n',
     "key 'password_env': does not apply with oauth2_token_command"),
    ('provider = "google"\noauth2_client_id = "c"\noauth2_tenant = "t"\n',
     "key 'oauth2_tenant': applies only with provider = \"microsoft\""),
    ('provider = "google"\noauth2_client_id = "c"\noauth2_flow = "client_credentials"\n',
     "key 'oauth2_flow': Google has no client-credentials flow"),
    ('provider = "microsoft"\noauth2_client_id = "c"\noauth2_flow = "client_credentials"\n'
     'password_env = "S"\n', "key 'oauth2_tenant': the client-credentials flow needs"),
    ('provider = "microsoft"\noauth2_client_id = "c"\noauth2_flow = "client_credentials"\n'
     'oauth2_tenant = "t"\n', "key 'password_env': missing"),
    ('provider = "microsoft"\noauth2_client_id = "c"\noauth2_certificate_file = "c.pem"\n',
     "applies only with oauth2_flow = \"client_credentials\""),
    ('provider = "microsoft"\noauth2_client_id = "c"\noauth2_flow = "client_credentials"\n'
     'oauth2_tenant = "t"\npassword_env = "S"\noauth2_certificate_file = "c.pem"\n',
     "either a client secret or a certificate"),
    ('oauth2_flow = "implicit"\n', "key 'oauth2_flow': 'implicit' is not one of"),
])
def test_oauth2_errors(tmp_path, extra, needle):
    with pytest.raises(ConfigError) as caught:
        account(extra, tmp_path=tmp_path)
    assert "account 'a'" in str(caught.value) and needle in str(caught.value)


def test_oauth2_keys_need_auth_oauth2_and_a_network_account(tmp_path):
    text = ('[[accounts]]\nname = "a"\nprotocol = "imap"\nhost = "h"\nusername = "u"\n'
            'password_env = "P"\nprovider = "microsoft"\n')
    with pytest.raises(ConfigError, match="key 'provider': applies only with auth"):
        load_text(tmp_path, text)
    with pytest.raises(ConfigError, match="key 'auth': 'kerberos' is not one of"):
        load_text(tmp_path, text.replace('provider = "microsoft"', 'auth = "kerberos"'))
    with pytest.raises(ConfigError, match="key 'auth': does not apply to a maildir account"):
        load_text(tmp_path, '[[accounts]]\nname = "m"\nprotocol = "maildir"\npath = "x"\n'
                            'auth = "oauth2"\n')


def test_loopback_http_is_allowed(tmp_path):
    local = account('oauth2_token_url = "http://127.0.0.1:8080/t"\noauth2_client_id = "c"\n',
                    tmp_path=tmp_path)
    assert local.oauth2_flow == "refresh_token" and local.password is None


def test_accounts_add_writes_oauth2_keys(write_config, run):
    config = write_config([])
    added = run("accounts", "add", "m365", "--protocol", "imap", "--host",
                "outlook.office365.com", "--username", "hd@contoso.com", "--auth", "oauth2",
                "--provider", "microsoft", "--oauth2-client-id", "c", "--oauth2-scopes", "a",
                "--oauth2-scopes", "offline_access", config=config)
    assert added.exit_code == 0, added.output
    listed = run.json("accounts", "list", config=config)[0]
    assert (listed["auth"], listed["provider"], listed["oauth2_scopes"]) == (
        "oauth2", "microsoft", ["a", "offline_access"])
    assert 'oauth2_scopes = [\n    "a",' in config.read_text() or \
        'oauth2_scopes = ["a", "offline_access"]' in config.read_text()
    help_text = run("accounts", "add", "--help").output
    assert help_text.index("--protocol") < help_text.index("--auth")  # OAuth2 keys last
