"""Folder names inside a server's namespaces (sources/imapserver.py); the servers themselves are
met in test_ingest_imap.py and test_server_matrix.py."""

from __future__ import annotations

import pytest

from helpdesk_fetch.sources.imapserver import Namespaces, ServerTraits

# What the servers of the matrix answer to NAMESPACE (tests/SERVERS.md), as imapclient gives it.
DOVECOT = ((("", "."),), None, None)
INBOX_DOT = ((("INBOX.", "."),), None, None)
COURIER = ((("INBOX.", "."),), None, (("#shared.", "."), ("shared.", ".")))
CYRUS = ((("INBOX.", "."),), (("user.", "."),), (("", "."),))
GMAIL = ((("", "/"),), None, None)


@pytest.mark.parametrize(("reply", "name", "full"), [
    (DOVECOT, "HD Error Messages", "HD Error Messages"),
    (GMAIL, "Helpdesk/Errors", "Helpdesk/Errors"),
    (INBOX_DOT, "HD Error Messages", "INBOX.HD Error Messages"),
    (INBOX_DOT, "INBOX.HD Error Messages", "INBOX.HD Error Messages"),
    (INBOX_DOT, "inbox.Errors", "inbox.Errors"),  # INBOX is one name in any case
    (INBOX_DOT, "INBOX", "INBOX"),
    (INBOX_DOT, "Inbox", "Inbox"),
    (INBOX_DOT, "INBOXES", "INBOX.INBOXES"),
    (INBOX_DOT, "Support.Errors", "INBOX.Support.Errors"),
    (COURIER, "#shared.Errors", "#shared.Errors"),
    (COURIER, "shared.Errors", "shared.Errors"),
    (CYRUS, "user.other.Errors", "user.other.Errors"),
    # Cyrus's shared namespace has the prefix "": every name starts with it, so an empty
    # prefix never makes a name full.
    (CYRUS, "HD Error Messages", "INBOX.HD Error Messages"),
])
def test_full_name(reply, name, full):
    assert Namespaces.from_reply(reply).full_name(name) == full


def test_a_prefix_without_its_separator_gets_one():
    assert Namespaces("Mail", "/").full_name("Errors") == "Mail/Errors"


def test_a_server_without_namespace_takes_names_as_given():
    assert ServerTraits(namespaces=None).full_name("HD Error Messages") == "HD Error Messages"


def test_no_personal_namespace_is_the_root():
    names = Namespaces.from_reply((None, None, (("#public/", "/"),)))
    assert (names.prefix, names.separator, names.others) == ("", ".", ("#public/",))
