"""The servers of the tests' matrix as they really are (tests/SERVERS.md).

imapclient, imaplib, poplib and plain TLS sockets straight at each server, no helpdesk-fetch
code: every expectation here is a fact the product's IMAP and POP3 code has to live with, and a
server that changes (a Debian update) fails here first. Facts differ by server *family* (the
three Dovecots alike, unless a test says otherwise).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import time

import pytest

from tests.servers import ServerMissing, server_base

CRLF_MESSAGE = b"From: a@example.com\r\nSubject: round trip\r\n\r\nline one\r\nline two\r\n"


def family(server) -> str:
    return server.name.split("-")[0]


class Wire:
    """A line-by-line IMAP conversation over TLS: what the server really sends, response codes
    and all (imaplib files some of them away)."""

    def __init__(self, server, port: str = "imaps") -> None:
        raw = socket.create_connection(("127.0.0.1", server.ports[port]), timeout=30)
        self.sock = server.ssl_context().wrap_socket(raw, server_hostname="localhost")
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()
        self._tags = iter(range(1, 1000))

    def command(self, text: str) -> list[bytes]:
        """Send *text*; the lines up to and including the tagged answer."""
        tag = f"w{next(self._tags)}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        lines = []
        while not (line := self.file.readline()).startswith(tag.encode() + b" "):
            assert line, f"connection closed after {lines}"
            lines.append(line)
        return lines + [line]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("LOGOUT")
        self.sock.close()


def capabilities(line: bytes) -> set[str]:
    """The capability names in an untagged CAPABILITY line or a [CAPABILITY ...] code."""
    found = re.search(rb"CAPABILITY ([^\]\r\n]*)", line)
    return set(found.group(1).decode().upper().split()) if found else set()


def uid_command(client, *args: str) -> tuple[str, list]:
    """imaplib's UID command, answering NO as ("NO", text) instead of raising."""
    try:
        return client._imap.uid(*args)
    except imaplib.IMAP4.error as exc:
        return "NO", [str(exc)]


def quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- TLS, CAPABILITY, NAMESPACE ------------------------------------------------------------------
def test_tls_is_verified_with_the_test_ca(imap_server, mail_user):
    """Each server's self-signed certificate (its ``cert``) verifies it, for 127.0.0.1 and
    localhost; the system's CAs do not."""
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", imap_server.ports["imaps"]), timeout=10) as s:
            ssl.create_default_context().wrap_socket(s, server_hostname="localhost")
    client = imap_server.imap(mail_user)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()


# Announced after login, of what a fetching client may use.
ANNOUNCED = {
    "dovecot": {"MOVE", "UIDPLUS", "CONDSTORE", "NAMESPACE"},
    "dovecot-inbox-ns": {"MOVE", "UIDPLUS", "CONDSTORE", "NAMESPACE"},
    "dovecot-nomove": {"CONDSTORE", "NAMESPACE"},
    "courier": {"UIDPLUS", "NAMESPACE"},
    "cyrus": {"MOVE", "UIDPLUS", "CONDSTORE", "NAMESPACE"},
}
# How the answer to LOGIN carries the new capabilities (RFC 3501 leaves it to the server): an
# untagged CAPABILITY before the tagged OK, a [CAPABILITY ...] code in the OK, or not at all.
LOGIN_CAPABILITY = {"dovecot": "untagged", "courier": None, "cyrus": "code"}


def test_capability_before_and_after_login(imap_server, mail_user):
    """The greeting's [CAPABILITY] code, CAPABILITY before LOGIN, LOGIN's answer, CAPABILITY
    after it. Only the list after login is complete: Dovecot adds MOVE, UIDPLUS and CONDSTORE
    only then, and Cyrus's greeting names fewer than its own CAPABILITY command."""
    name = imap_server.name
    imap_server.add_user(mail_user)
    wire = Wire(imap_server)
    try:
        greeting = capabilities(wire.greeting)
        before = capabilities(wire.command("CAPABILITY")[0])
        login = wire.command(f'LOGIN {mail_user} "{imap_server.password}"')
        after = capabilities(wire.command("CAPABILITY")[0])
    finally:
        wire.close()
    watched = {"MOVE", "UIDPLUS", "CONDSTORE", "NAMESPACE"}
    assert after & watched == ANNOUNCED[name]
    assert login[-1].split()[1] == b"OK"
    carried = {"untagged": login[0] if login[0].startswith(b"* CAPABILITY ") else b"",
               "code": login[-1] if b" OK [CAPABILITY " in login[-1] else b""}
    how = LOGIN_CAPABILITY[family(imap_server)]
    assert [kind for kind, line in carried.items() if line] == ([how] if how else [])
    if how:
        assert capabilities(carried[how]) == after
    assert greeting and "AUTH=PLAIN" in greeting
    if name == "dovecot-nomove":  # imap_capability is also the list before login
        assert greeting == before == after | {"AUTH=PLAIN", "AUTH=LOGIN"}
    elif family(imap_server) == "dovecot":
        assert greeting == before
        assert not before & {"MOVE", "UIDPLUS", "CONDSTORE"}  # they come with LOGIN
    elif name == "courier":
        assert greeting == before == after  # AUTH=PLAIN stays listed after login
    else:  # cyrus
        assert greeting < before  # the greeting's code lists a few; CAPABILITY lists all
        assert after & watched == before & watched
        assert "LOGINDISABLED" in after and "LOGINDISABLED" not in before


NAMESPACES = {  # (personal, other users', shared) as imapclient parses NAMESPACE
    "dovecot": ((("", "."),), None, None),
    "dovecot-inbox-ns": ((("INBOX.", "."),), None, None),
    "dovecot-nomove": ((("", "."),), None, None),
    "courier": ((("INBOX.", "."),), None, (("#shared.", "."), ("shared.", "."))),
    "cyrus": ((("INBOX.", "."),), (("user.", "."),), (("", "."),)),
}


def test_namespace(imap_server, mail_user):
    client = imap_server.imap(mail_user)
    namespace = client.namespace()
    client.logout()
    assert tuple(namespace) == NAMESPACES[imap_server.name]
    assert namespace.personal[0] == imap_server.namespace


ENABLED_CONDSTORE = {"dovecot": [b"CONDSTORE"], "courier": [b""], "cyrus": [b"CONDSTORE"]}


def test_enable_condstore(imap_server, mail_user):
    """ENABLE CONDSTORE (RFC 7162): Courier accepts ENABLE and enables nothing."""
    client = imap_server.imap(mail_user)
    typ, _ = client._imap._simple_command("ENABLE", "CONDSTORE")
    enabled = client._imap.untagged_responses.get("ENABLED")
    client.logout()
    assert typ == "OK"
    assert enabled == ENABLED_CONDSTORE[family(imap_server)]


# -- APPEND and FETCH ----------------------------------------------------------------------------
def fetch_appended(client, folder: str, raw: bytes) -> tuple[bytes, int] | str:
    """APPEND *raw*, then FETCH BODY.PEEK[] and RFC822.SIZE of it by the APPENDUID; the
    server's NO text when it refuses."""
    try:
        answer = client.append(folder, raw)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    uid = int(re.search(rb"\[APPENDUID \d+ (\d+)\]", answer).group(1))
    client.select_folder(folder, readonly=True)
    data = client.fetch([uid], ["BODY.PEEK[]", "RFC822.SIZE"])[uid]
    return data[b"BODY[]"], data[b"RFC822.SIZE"]


def test_append_fetch_round_trip(imap_server, mail_user):
    """A well-formed message (CRLF line ends, ASCII) comes back byte for byte, everywhere;
    every APPEND answers [APPENDUID] (UIDPLUS, announced or not)."""
    client = imap_server.imap(mail_user)
    body, size = fetch_appended(client, "INBOX", CRLF_MESSAGE)
    client.logout()
    assert body == CRLF_MESSAGE
    assert size == len(CRLF_MESSAGE)


H = b"Subject: t\r\n\r\n"
# APPEND of bytes that are not a well-formed message: what FETCH BODY[] gives back, or the text
# of the server's NO. One entry for the same on all three families.
APPEND_CHANGES = {
    "bare LF": (H + b"one\ntwo\r\n", H + b"one\r\ntwo\r\n"),
    "LF only": (b"Subject: t\n\nline\n", H + b"line\r\n"),
    "bare CR": (H + b"one\rtwo\r\n", H + b"one\r\ntwo\r\n"),
    "NUL": (H + b"nul\x00here\r\n", {"dovecot": H + b"nul\x80here\r\n",
                                     "courier": H + b"nul\x00here\r\n",
                                     "cyrus": "append failed: Message contains NUL characters"}),
    "Latin-1 header": (b"Subject: caf\xe9\r\n\r\nx\r\n", {
        "dovecot": b"Subject: caf\xe9\r\n\r\nx\r\n", "courier": b"Subject: caf\xe9\r\n\r\nx\r\n",
        "cyrus": b"Subject: cafX\r\n\r\nx\r\n"}),
    "UTF-8 header": ("Subject: café\r\n\r\nx\r\n".encode(), {
        "dovecot": "Subject: café\r\n\r\nx\r\n".encode(),
        "courier": "Subject: café\r\n\r\nx\r\n".encode(),
        "cyrus": b"Subject: cafXX\r\n\r\nx\r\n"}),
    "8-bit body": (H + b"caf\xe9\r\n", H + b"caf\xe9\r\n"),
    "no final CRLF": (H + b"line", {"dovecot": H + b"line", "courier": H + b"line\r\n",
                                    "cyrus": H + b"line"}),
    "no blank line": (b"Subject: t\r\n", b"Subject: t\r\n"),
    "10,000-byte line": (H + b"x" * 10000 + b"\r\n", H + b"x" * 10000 + b"\r\n"),
}


@pytest.mark.parametrize("case", APPEND_CHANGES)
def test_append_changes(imap_server, mail_user, case):
    raw, expected = APPEND_CHANGES[case]
    if isinstance(expected, dict):
        expected = expected[family(imap_server)]
    client = imap_server.imap(mail_user)
    got = fetch_appended(client, "INBOX", raw)
    client.logout()
    if isinstance(expected, str):
        assert got == expected  # refused
    else:
        assert got == (expected, len(expected))  # RFC822.SIZE is the size FETCH delivers


DELIVERED = {  # what FETCH gives back after deliver(); None where the server refuses it
    "bare LF": (H + b"one\ntwo\r\n", {"dovecot": H + b"one\r\ntwo\r\n",
                                      "courier": H + b"one\r\ntwo\r\n",
                                      "cyrus": H + b"one\r\ntwo\r\n"}),
    "bare CR": (H + b"one\rtwo\r\n", {"dovecot": H + b"one\rtwo\r\n",
                                      "courier": H + b"one\rtwo\r\n",
                                      "cyrus": H + b"one\r\ntwo\r\n"}),
    "NUL": (H + b"nul\x00here\r\n", {"dovecot": H + b"nul\x80here\r\n",
                                     "courier": H + b"nul\x00here\r\n", "cyrus": None}),
    "Latin-1 header": (b"Subject: caf\xe9\r\n\r\nx\r\n", {
        "dovecot": b"Subject: caf\xe9\r\n\r\nx\r\n", "courier": b"Subject: caf\xe9\r\n\r\nx\r\n",
        "cyrus": b"Subject: cafX\r\n\r\nx\r\n"}),
}


@pytest.mark.parametrize("case", DELIVERED)
def test_deliver(imap_server, mail_user, case):
    """Local delivery (``deliver``): into the Maildir on Dovecot and Courier, through LMTP on
    Cyrus, which adds its trace headers (and Message-ID and Date when missing) on top."""
    raw, expected = DELIVERED[case]
    expected = expected[family(imap_server)]
    if expected is None:
        with pytest.raises(smtplib.SMTPDataError, match="Message contains NUL characters"):
            imap_server.deliver(mail_user, [raw])
        assert imap_server.messages(mail_user) == []
        return
    imap_server.deliver(mail_user, [raw])
    (got,) = imap_server.messages(mail_user)
    if imap_server.delivery == "lmtp":
        head, _, rest = got.partition(b"\r\nX-Sieve: CMU Sieve 3.0\r\n")
        assert head.startswith(b"Return-Path: <sender@example.com>\r\nReceived: from localhost")
        assert b"X-Cyrus-Session-Id: " in head
        got = re.sub(rb"(Message-ID|Date): [^\r]*\r\n", b"", rest)
    assert got == expected


# -- flags, EXPUNGE, MOVE, COPY ------------------------------------------------------------------
def test_uid_store_deleted_and_expunge(imap_server, mail_user):
    """UID STORE \\Deleted, then UID EXPUNGE (RFC 4315) removes only the UIDs named, on every
    server, Dovecot without UIDPLUS announced included; a plain EXPUNGE removes every
    \\Deleted message of the folder, also those someone else flagged."""
    imap_server.append(mail_user, [CRLF_MESSAGE] * 3)
    client = imap_server.imap(mail_user)
    client.select_folder("INBOX")
    first, theirs, kept = client.search(["ALL"])
    flagged = uid_command(client, "STORE", f"{first},{theirs}", "+FLAGS.SILENT", r"(\Deleted)")
    assert flagged[0] == "OK"
    client._imap.untagged_responses.clear()
    assert uid_command(client, "EXPUNGE", str(first))[0] == "OK"
    assert client._imap.untagged_responses["EXPUNGE"] == [b"1"]  # sequence numbers
    assert client.search(["ALL"]) == [theirs, kept]
    client._imap.untagged_responses.clear()
    assert client._imap._simple_command("EXPUNGE")[0] == "OK"
    assert client._imap.untagged_responses["EXPUNGE"] == [b"1"]
    assert client.search(["ALL"]) == [kept]
    client.logout()


# SEARCH LARGER/SMALLER: which size the server compares (RFC 3501 says RFC822.SIZE).
SEARCHED_SIZE = {"dovecot": "RFC822.SIZE", "courier": "stored, LF line ends",
                 "cyrus": "RFC822.SIZE"}


def test_search_by_size(imap_server, mail_user):
    """Courier searches the size it stores (LF line ends), not the RFC822.SIZE that FETCH
    reports, so a message is not found by its RFC822.SIZE: sizes are fetched, never searched
    (helpdesk_fetch/sources/imapserver.py)."""
    imap_server.append(mail_user, [CRLF_MESSAGE])
    client = imap_server.imap(mail_user)
    client.select_folder("INBOX", readonly=True)
    [(uid, item)] = client.fetch(client.search(["ALL"]), ["RFC822.SIZE"]).items()
    size, lf_size = item[b"RFC822.SIZE"], len(CRLF_MESSAGE.replace(b"\r\n", b"\n"))
    assert size == len(CRLF_MESSAGE)
    by_size = client.search(["LARGER", size - 1, "SMALLER", size + 1])
    by_lf_size = client.search(["LARGER", lf_size - 1, "SMALLER", lf_size + 1])
    client.logout()
    if SEARCHED_SIZE[family(imap_server)] == "RFC822.SIZE":
        assert (by_size, by_lf_size) == ([uid], [])
    else:
        assert (by_size, by_lf_size) == ([], [uid])


# UID MOVE (RFC 6851): the answer where MOVE is announced or not.
MOVE_ANSWER = {"dovecot": "OK", "dovecot-inbox-ns": "OK", "dovecot-nomove": "OK",
               "courier": "NO", "cyrus": "OK"}


def test_uid_move_and_copy(imap_server, mail_user):
    """UID MOVE works on Dovecot even where it is not announced; Courier has no MOVE (NO,
    "Error in IMAP command received by server."). UID COPY answers [COPYUID] everywhere."""
    target = imap_server.folder("Moved")
    imap_server.append(mail_user, [CRLF_MESSAGE] * 2)
    imap_server.append(mail_user, [], folder=target)
    client = imap_server.imap(mail_user)
    client.select_folder("INBOX")
    moved, copied = client.search(["ALL"])
    typ, data = uid_command(client, "MOVE", str(moved), quoted(target))
    assert typ == MOVE_ANSWER[imap_server.name]
    if typ == "OK":
        assert client._imap.untagged_responses.get("COPYUID")
        assert client.search(["ALL"]) == [copied]
    else:
        assert data == [b"Error in IMAP command received by server."]
        assert client.search(["ALL"]) == [moved, copied]
    client._imap.untagged_responses.clear()
    assert uid_command(client, "COPY", str(copied), quoted(target))[0] == "OK"
    assert re.fullmatch(rb"\d+ %d \d+" % copied, client._imap.untagged_responses["COPYUID"][0])
    client.logout()
    assert len(imap_server.messages(mail_user, target)) == (2 if typ == "OK" else 1)


# -- folders ---------------------------------------------------------------------------------------
CREATE_EXISTING = {  # the NO of CREATE for a folder that exists
    "dovecot": "create failed: [ALREADYEXISTS] Mailbox already exists",
    "courier": "create failed: Cannot create this folder.",
    "cyrus": "create failed: Mailbox already exists",
}
CREATE_OUTSIDE = {  # the NO of CREATE for a folder outside the personal namespace "INBOX."
    "dovecot-inbox-ns": "create failed: Client tried to access nonexistent namespace. "
                        "(Mailbox name should probably be prefixed with: INBOX.)",
    "courier": "create failed: Invalid mailbox name.",
    "cyrus": "create failed: Permission denied",
}


def test_create_folder(imap_server, mail_user):
    """A folder in the personal namespace (``folder()``) can be made; making it again, or
    making one outside the namespace, fails with texts that differ by server (only Dovecot
    sends a response code, RFC 5530's ALREADYEXISTS)."""
    error_folder = imap_server.folder("HD Error Messages")
    client = imap_server.imap(mail_user)
    client.create_folder(error_folder)
    assert error_folder in [name for _, _, name in client.list_folders()]
    with pytest.raises(imaplib.IMAP4.error) as existing:
        client.create_folder(error_folder)
    assert re.sub(r" \(\d.*secs\)\.$", "", str(existing.value)) == \
        CREATE_EXISTING[family(imap_server)]
    if imap_server.namespace[0]:
        with pytest.raises(imaplib.IMAP4.error) as outside:
            client.create_folder("HD Error Messages")
        assert re.sub(r" \(\d.*secs\)\.$", "", str(outside.value)) == \
            CREATE_OUTSIDE[imap_server.name]
    client.logout()


# -- login -----------------------------------------------------------------------------------------
LOGIN_FAILURE = {  # (the NO's text, the seconds the server waits before it answers)
    "dovecot": ("[AUTHENTICATIONFAILED] Authentication failed.", 0.5),
    "courier": ("Login failed.", 5.0),
    "cyrus": ("Login failed: authentication failure", 3.0),
}


@pytest.mark.parametrize("kind", ["dovecot", "courier", "cyrus"])  # the delays add up
def test_wrong_password(request, kind, mail_user):
    """A wrong password is NO, after a delay of the server's (Dovecot's own configuration has
    auth_failure_delay = 0, and still waits half a second)."""
    imap_server = request.getfixturevalue(kind)
    imap_server.add_user(mail_user)
    client = imap_server.connect_imap()
    started = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error) as failure:
        client.login(mail_user, "wrong-" + imap_server.password)
    waited = time.monotonic() - started
    text, delay = LOGIN_FAILURE[imap_server.name]
    assert str(failure.value) == f"b'{text}'"
    assert delay - 0.2 < waited < delay + 1.5
    client.shutdown()


def test_starttls(imap_server, mail_user):
    """The plain port announces STARTTLS, and after it the login works (on every server here
    LOGIN would also work without TLS: loopback, or the server's configuration allows it)."""
    client = imap_server.connect_imap("imap")
    assert b"STARTTLS" in client.capabilities()
    client.starttls(imap_server.ssl_context())
    imap_server.add_user(mail_user)
    client.login(mail_user, imap_server.password)
    client.logout()


# -- POP3 ------------------------------------------------------------------------------------------
UIDL_FORMAT = {  # the group is a number: Dovecot's and Cyrus's are the IMAP UID, Courier's not
    "dovecot": rb"([0-9a-f]{8})[0-9a-f]{8}",  # pop3_uidl_format = %08Xu%08Xv (UID, UIDVALIDITY)
    "courier": rb"UID(\d+)-\d+",  # UID<n>-<time>, both its POP3 server's own
    "cyrus": rb"\d+\.(\d+)",  # <uidvalidity>.<uid>
}


def uidl_number(server, uidl: bytes) -> int:
    found = re.fullmatch(UIDL_FORMAT[server.name], uidl)
    assert found, uidl
    return int(found.group(1), 16 if server.name == "dovecot" else 10)


def test_pop3_session(pop3_server, mail_user):
    """USER/PASS over TLS (verified), CAPA (with PIPELINING: the DELEs go in groups), STAT,
    LIST, UIDL, RETR, DELE and QUIT. LIST's size is IMAP's RFC822.SIZE and RETR gives IMAP's
    BODY[]; on Dovecot and Cyrus the UIDL holds the IMAP UID; UIDLs stay after a DELE.
    (Courier: test_courier_pop3_numbers_and_uidls.)"""
    pop3_server.append(mail_user, [CRLF_MESSAGE, H + b"one\ntwo\r\n", H + b"third\r\n"])
    client = pop3_server.imap(mail_user)
    client.select_folder("INBOX", readonly=True)
    imap_view = {uid: data[b"BODY[]"] for uid, data in
                 client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"]).items()}
    client.logout()
    client = pop3_server.pop3(mail_user)
    assert {"UIDL", "TOP", "PIPELINING"} <= set(client.capa())
    assert client.stat() == (3, sum(map(len, imap_view.values())))
    uidls = dict(line.split() for line in client.uidl()[1])
    retrieved = {}
    for line in client.list()[1]:
        number, size = line.split()
        _, lines, _ = client.retr(int(number))
        retrieved[uidls[number]] = b"\r\n".join(lines) + b"\r\n"
        assert int(size) == len(retrieved[uidls[number]])
        if pop3_server.name != "courier":
            assert retrieved[uidls[number]] == imap_view[uidl_number(pop3_server, uidls[number])]
    assert sorted(retrieved.values()) == sorted(imap_view.values())
    assert len(set(uidls.values())) == 3
    gone = min(uidls.values(), key=lambda uidl: uidl_number(pop3_server, uidl))
    client.dele(int(next(n for n, uidl in uidls.items() if uidl == gone)))
    client.quit()
    client = pop3_server.pop3(mail_user)
    assert sorted(line.split()[1] for line in client.uidl()[1]) == \
        sorted(uidl for uidl in uidls.values() if uidl != gone)
    client.quit()
    assert sorted(pop3_server.messages(mail_user)) == \
        sorted(raw for uidl, raw in retrieved.items() if uidl != gone)


def test_courier_pop3_numbers_and_uidls(courier, mail_user):
    """Courier's POP3 numbers messages in the order of their Maildir file names (which is not
    the order of arrival: the microseconds in the names are not zero-padded), and its UIDL
    "UID<n>-<uidvalidity>" counts by itself, in that order, when POP3 first sees a message:
    not the IMAP UID, which IMAP counts when it first sees the message. Both stay once given
    (IMAP's after a read-write SELECT)."""
    maildir = courier.mail / mail_user / "Maildir"

    def arrive(name: str, text: bytes) -> None:
        courier.add_user(mail_user)
        path = maildir / "new" / name
        path.write_bytes(b"Subject: t\n\n" + text + b"\n")
        os.chown(path, *courier._owner)

    def pop3() -> list[tuple[bytes, bytes]]:
        client = courier.pop3(mail_user)
        listed = [(line.split()[1], client.retr(int(line.split()[0]))[1][-1])
                  for line in client.uidl()[1]]
        client.quit()
        return listed

    def imap() -> dict[int, bytes]:
        client = courier.imap(mail_user)
        client.select_folder("INBOX")  # read-write: the UIDs are saved
        found = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
        client.logout()
        return {uid: data[b"BODY[]"].split()[-1] for uid, data in found.items()}

    arrive("1000.M9.a", b"first")
    arrive("1000.M10.b", b"second")  # "M10" sorts before "M9"
    assert imap() == {1: b"second", 2: b"first"}
    arrive("0999.M1.c", b"third")  # sorts first of all
    validity = re.fullmatch(rb"UID\d+-(\d+)", pop3()[0][0]).group(1)
    assert pop3() == [(b"UID1-" + validity, b"third"), (b"UID2-" + validity, b"second"),
                      (b"UID3-" + validity, b"first")]
    assert imap() == {1: b"second", 2: b"first", 3: b"third"}
    arrive("0998.M1.d", b"fourth")
    assert pop3()[0] == (b"UID4-" + validity, b"fourth")
    assert imap()[4] == b"fourth"


def test_courier_keeps_uids_only_after_a_read_write_select(courier, mail_user):
    """Courier saves the UIDs it gives (courierimapuiddb) only in a read-write session: while a
    mailbox is only ever EXAMINEd, each new message can renumber all, under a new UIDVALIDITY:
    the time in seconds (less 10^9), so within one second the UIDs change under the same
    UIDVALIDITY (seen here; hence the sleep)."""
    courier.add_user(mail_user)
    new = courier.mail / mail_user / "Maildir" / "new"

    def examine() -> tuple[int, dict[int, bytes]]:
        client = courier.imap(mail_user)
        validity = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
        found = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
        client.logout()
        return validity, {uid: data[b"BODY[]"].split()[-1] for uid, data in found.items()}

    for name, text in (("1000.M9.a", b"first"), ("0999.M1.b", b"second")):
        (new / name).write_bytes(b"Subject: t\n\n" + text + b"\n")
        os.chown(new / name, *courier._owner)
        if text == b"first":
            validity, uids = examine()
            assert uids == {1: b"first"}
            time.sleep(1.1)
    later, uids = examine()
    assert uids == {1: b"second", 2: b"first"} and later != validity


# RETR of a message with 8-bit header bytes, before and after the UTF8 command (RFC 6856).
EIGHT_BIT_RETR = {"dovecot": "as stored", "courier": "replaced", "cyrus": "as stored"}


def test_pop3_retr_of_8bit_headers(pop3_server, mail_user):
    """Courier's POP3 hands a message with 8-bit headers over only after UTF8 (it announces
    "UTF8 USER"); before, RETR gives a notice of its own ("Cannot display Unicode content")
    with the message attached, far larger than LIST said. Cyrus stored the bytes as X already
    (APPEND); Dovecot gives the bytes."""
    pop3_server.append(mail_user, ["Subject: café\r\n\r\nx\r\n".encode()])
    (stored,) = pop3_server.messages(mail_user)
    client = pop3_server.pop3(mail_user)
    listed = int(client.list()[1][0].split()[1])
    _, lines, _ = client.retr(1)
    before = b"\r\n".join(lines) + b"\r\n"
    if EIGHT_BIT_RETR[pop3_server.name] == "replaced":
        assert "UTF8" in client.capa()
        assert b"Subject: Cannot display Unicode content" in before
        assert len(before) > listed == len(stored)
        assert client._shortcmd("UTF8") == b"+OK UTF8 enabled"
        _, lines, _ = client.retr(1)
        assert b"\r\n".join(lines) + b"\r\n" == stored
    else:
        assert before == stored and listed == len(stored)
    client.quit()


POP3_LOGIN_FAILURE = {"dovecot": b"-ERR [AUTH] Authentication failed.",
                      "courier": b"-ERR Login failed.", "cyrus": b"-ERR [AUTH] Invalid login"}


def test_pop3_stls_and_wrong_password(pop3_server, mail_user):
    pop3_server.add_user(mail_user)
    client = poplib.POP3("127.0.0.1", pop3_server.ports["pop3"], timeout=30)
    assert "STLS" in client.capa()
    client.stls(pop3_server.ssl_context())
    client.user(mail_user)
    with pytest.raises(poplib.error_proto) as failure:
        client.pass_("wrong-" + pop3_server.password)
    assert failure.value.args[0] == POP3_LOGIN_FAILURE[pop3_server.name]
    with contextlib.suppress(OSError, poplib.error_proto):
        client.quit()


def test_cyrus_popminpoll_as_debian_ships_it(mail_user, write_config, run):
    """Debian's imapd.conf has popminpoll: 1, one POP3 login a minute per user (the fixture
    uses 0): a fetch every minute from cron would meet this."""
    from tests.cyrus import Cyrus

    with server_base("cyrus") as base:
        server = Cyrus(base, popminpoll=1).start()
        try:
            server.pop3(mail_user).quit()
            with pytest.raises(poplib.error_proto) as refused:
                server.pop3(mail_user)
            assert refused.value.args[0] == \
                b"-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart"
            client = server.imap(mail_user)  # IMAP is not limited
            client.logout()
            # What helpdesk-fetch makes of it: not "check the password"
            config = write_config([server.account("p", mail_user, protocol="pop3")])
            result = run("fetch", config=config)
            assert result.exit_code == 1
            assert ("account 'p': login as " f"{mail_user!r} refused: -ERR [LOGIN-DELAY] Logins "
                    "must be at least 1 minute apart; the server lets this user log in only so "
                    "often (RFC 2449 LOGIN-DELAY)") in result.stderr
            assert "password" not in result.stderr.replace("password_", "")
        finally:
            server.stop()


# -- the fixtures themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["courier", "cyrus"])
def test_stop_leaves_no_process(kind):
    """Every process a server started ends with stop(), its listeners with them."""
    from tests.courier import Courier
    from tests.cyrus import Cyrus

    with server_base(kind) as base:
        server = {"courier": Courier, "cyrus": Cyrus}[kind](base).start()
        try:
            server.imap("someone").logout()  # a connection's own process too
            assert len(server._daemons.members()) >= 3
        finally:
            server.stop()
        assert server._daemons.members() == []
        for port in server.ports.values():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_a_missing_server_says_how_to_install_it(monkeypatch, tmp_path):
    from tests import courier, cyrus

    monkeypatch.setattr(courier, "PREFIX", tmp_path / "nothing")
    monkeypatch.setattr(cyrus, "BIN", tmp_path / "nothing")
    for check in (courier.check_installed, cyrus.check_installed):
        with pytest.raises(ServerMissing, match=r"sudo make test-deps"):
            check()
