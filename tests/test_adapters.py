"""The private parts of imapclient, imaplib, poplib, peewee and email that the adapters lean on
(sources/imapclient_adapter.py, sources/poplib_adapter.py, store/peewee_adapter.py,
message/bodyruns.py): when an upgrade changes one, this fails before a mailbox does."""

from __future__ import annotations

import email.message
import imaplib
import inspect
import poplib
import sqlite3

import imapclient
import peewee
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk_fetch.sources import imapclient_adapter, poplib_adapter
from helpdesk_fetch.sources.base import Cutoff
from helpdesk_fetch.store import peewee_adapter
from tests.servers import PASSWORD


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.mark.parametrize("owner, name, parameters", [
    (poplib.POP3, "_create_socket", ["self", "timeout"]),
    (poplib.POP3, "_putcmd", ["self", "line"]),
    (poplib.POP3, "_getresp", ["self"]),
    (poplib.POP3, "_getline", ["self"]),
    (poplib.POP3, "_shortcmd", ["self", "line"]),
    (imaplib.IMAP4, "_create_socket", ["self", "timeout"]),
    (imaplib.IMAP4, "_connect", ["self"]),  # reads the greeting: BadGreeting
    (imaplib.IMAP4, "_get_line", ["self"]),
    (imapclient.IMAPClient, "_create_IMAP4", ["self"]),
])
def test_the_private_methods_we_override_or_call_keep_their_signature(owner, name, parameters):
    assert _parameters(getattr(owner, name)) == parameters


def test_poplib_private_parts_work_against_a_real_server(dovecot, mail_user):
    from tests.mails import message

    dovecot.append(mail_user, [message("One line", body="x\r\n.dot\r\n")])
    conn = poplib_adapter.connect(Cutoff(), "127.0.0.1", dovecot.ports["pop3s"], timeout=10,
                                  context=dovecot.ssl_context())
    try:
        assert hasattr(conn, "file")  # _getline reads it
        conn.user(mail_user)
        conn.pass_(PASSWORD)
        poplib_adapter.command_only(conn, "RETR 1")
        raw = poplib_adapter.retr_answer(conn)
        assert raw.endswith(b"x\r\n.dot\r\n")  # dot-unstuffed, CRLF kept
        assert poplib_adapter.command(conn, "NOOP").startswith(b"+OK")
        with pytest.raises(poplib.error_proto) as refused:
            poplib_adapter.command(conn, "RETR 99")
        assert poplib_adapter.error_text(refused.value).startswith("-ERR")
        assert "PIPELINING" in conn.capa()
        with pytest.raises(poplib.error_proto) as refused:  # every answer read, then the -ERR
            poplib_adapter.pipelined(conn, ["NOOP", "RETR 99", "NOOP"] * 70)
        assert poplib_adapter.command(conn, "NOOP").startswith(b"+OK")  # nothing left unread
        poplib_adapter.pipelined(conn, ["DELE 1"])
        assert conn.stat()[0] == 0
    finally:
        conn.quit()


def test_imapclient_private_parts_work_against_a_real_server(dovecot, mail_user):
    client = imapclient_adapter.connect(Cutoff(), "127.0.0.1", dovecot.ports["imaps"],
                                        timeout=10, context=dovecot.ssl_context(), tls=True)
    try:
        assert client._imap.debug == 0  # the protocol trace is off unless logged
        assert isinstance(client._imap, imapclient_adapter._Connection)
        client.login(mail_user, PASSWORD)
        assert client.select_folder("INBOX")[b"UIDVALIDITY"]
    finally:
        client.logout()


def test_peewee_maps_driver_errors_and_tracks_changes():
    with pytest.raises(peewee.OperationalError), peewee_adapter.driver_errors():
        raise sqlite3.OperationalError("database is locked")

    class Row(peewee.Model):
        name = peewee.CharField()

    row = Row(name="x")
    assert row._dirty == {"name"}
    assert peewee_adapter.as_saved(row)._dirty == set()


def test_peewee_keeps_its_psycopg2_driver_where_postgresql_driver_puts_it():
    """peewee_adapter.postgresql_driver hands psycopg2 to a peewee imported without it: the
    module globals and adapter constants that peewee's import sets."""
    source = inspect.getsource(peewee)  # read, not imported: this process may hold either
    assert "from psycopg2 import extensions as pg_extensions" in source
    assert "from psycopg2.extras import register_uuid as pg_register_uuid" in source
    assert "from psycopg2.extras import Json as Json_pg2" in source
    for name in ("txn_idle", "txn_inerror", "txn_unknown"):
        assert f"{name} = pg_extensions.TRANSACTION_STATUS_" in source, name
    assert peewee_adapter.postgresql_driver()
    assert peewee.Psycopg2Adapter.txn_idle == 0  # psycopg2's TRANSACTION_STATUS_IDLE


def test_the_email_package_keeps_payloads_where_bodyruns_puts_them_back():
    part = email.message.Message()
    part.set_payload("text")
    assert part._payload == "text"


class _Wire(poplib_adapter.Session):
    """A POP3 session whose server's bytes are *data*, read through a buffer of *buffer* bytes."""

    def __init__(self, data: bytes, buffer: int) -> None:
        import io

        self.file = io.BufferedReader(io.BytesIO(data), buffer_size=buffer)
        self._debugging = 0

    def _putcmd(self, line: str) -> None:
        pass


_LINE_BYTES = st.sampled_from([b"a", b".", b"..", b"\r", b"\n", b"\r\n", b" ", b"x" * 7])


@settings(max_examples=400)
@given(pieces=st.lists(_LINE_BYTES, max_size=40), buffer=st.integers(1, 16),
       max_line=st.sampled_from([5, 12, 1000]), end=st.sampled_from([b".\r\n", b".\n", b""]),
       after=st.sampled_from([b"", b"+OK next\r\n"]))
def test_retr_in_blocks_reads_what_line_by_line_reads(pieces, buffer, max_line, end, after):
    """retr_answer()'s blocks give the message, the error and the bytes left unread that reading it
    line by line (poplib's way, _by_lines from the start) gives: bare LFs, lines of CR, dots,
    over-long lines, a connection that ends first, a small buffer splitting lines anywhere."""
    data = b"+OK\r\n" + b"".join(pieces) + (b"\r\n" if pieces else b"") + end + after

    def outcome(read) -> tuple[object, bytes]:
        conn = _Wire(data, buffer)
        try:
            result: object = read(conn)
        except (poplib.error_proto, EOFError) as exc:
            result = type(exc)
        return result, conn.file.read()

    def by_lines(conn) -> bytes:
        conn._getresp()
        return poplib_adapter._by_lines(conn, b"", max_line)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(poplib_adapter, "MAX_LINE", max_line)  # the status line's bound
        assert outcome(lambda conn: poplib_adapter.retr_answer(conn, max_line=max_line)) == \
            outcome(by_lines)


_CONTENT_LINE = st.lists(st.sampled_from([b"a", b".", b"..", b" ", b"x" * 7, b"\t"]),
                         max_size=6).map(b"".join)


@settings(max_examples=400)
@given(lines=st.lists(_CONTENT_LINE, max_size=30), buffer=st.integers(1, 16),
       limit=st.integers(0, 300), end=st.sampled_from([b".\r\n", b".\n", b""]),
       after=st.sampled_from([b"", b"+OK next\r\n"]))
def test_a_bounded_answer_keeps_its_start_and_reads_the_rest_away(lines, buffer, limit, end,
                                                                  after):
    """bounded_answer() (TOP of a message too large to download): the answer's first *limit*
    bytes at most, dot-stuffing undone, a start of what reading it whole gives; the whole of
    it when it fits; the session left right after the end line, whatever the buffer splits."""
    answer = b"".join(line + b"\r\n" for line in lines)
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n"
                       for line in lines)
    conn = _Wire(b"+OK\r\n" + stuffed + end + after, buffer)
    if not end:
        with pytest.raises(EOFError):
            poplib_adapter.bounded_answer(conn, limit)
        return

    kept = poplib_adapter.bounded_answer(conn, limit)

    assert answer.startswith(kept) and len(kept) <= limit
    if limit >= len(stuffed):
        assert kept == answer
    assert conn.file.read() == after
