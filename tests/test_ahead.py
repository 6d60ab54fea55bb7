"""The first IMAP account logged in from a thread while the run starts (ingest/ahead.py, issue 18):
taken under the account's lock, logged out unread when another run holds the account, its
failures reported as a run that opened the mailbox itself reports them."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time

import pytest

from helpdesk_fetch import config as configuration
from helpdesk_fetch.ingest import ahead
from helpdesk_fetch.sources.base import Cutoff
from helpdesk_fetch.sources.imap import ImapMailbox
from tests.mails import message
from tests.test_cli import held


@pytest.fixture
def calls(monkeypatch):
    """What the run did with the mailbox opened ahead: "take", "discard", "logout"."""
    seen: list[str] = []
    take, discard, close = ahead.Ahead.take, ahead.Ahead.discard, ImapMailbox.close

    def spy(name, original):
        def call(self, *args, **kwargs):
            if name != "discard" or not self._used:  # a discard after the take does nothing
                seen.append(name)
            return original(self, *args, **kwargs)
        return call

    monkeypatch.setattr(ahead.Ahead, "take", spy("take", take))
    monkeypatch.setattr(ahead.Ahead, "discard", spy("discard", discard))
    monkeypatch.setattr(ImapMailbox, "close", spy("logout", close))
    return seen


def test_the_mailbox_opened_ahead_is_the_one_the_run_reads(dovecot, mail_user, write_config,
                                                            run, calls):
    dovecot.append(mail_user, [message("Printer broken")])
    config = write_config([dovecot.account("helpdesk", mail_user)])

    result = run("fetch", config=config)

    assert result.exit_code == 0 and result.output == ""
    assert calls == ["take", "logout"]
    assert dovecot.messages(mail_user) == []
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Printer broken"]


def test_a_busy_account_opened_ahead_is_logged_out_unread(dovecot, mail_user, write_config,
                                                          run, calls):
    """Spec §4.7: nothing is read before the lock; the login ahead is all that happened."""
    dovecot.append(mail_user, [message("Printer broken")])
    config = write_config([dovecot.account("helpdesk", mail_user)])

    with held("helpdesk", config):
        busy = run("fetch", config=config)

    assert busy.exit_code == 75 and busy.output == ""
    assert calls[0] == "discard"  # logged out, or cut while still logging in
    assert len(dovecot.messages(mail_user)) == 1
    assert run.json("tickets", "list", config=config) == []


def test_a_refused_login_ahead_reads_as_it_always_did(dovecot, mail_user, write_config, run,
                                                      calls):
    account = dict(dovecot.account("helpdesk", mail_user), password="wrong")
    config = write_config([account])

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert result.stderr == (f"helpdesk-fetch: account 'helpdesk': login as '{mail_user}' "
                             "refused: [AUTHENTICATIONFAILED] Authentication failed; check the "
                             "username and the password source\n")
    assert calls == ["take"]
    assert run.json("status", config=config)["accounts"][0]["last_run"]["outcome"] == "failed"


def test_a_database_that_fails_to_open_logs_the_mailbox_out(dovecot, mail_user, write_config,
                                                            run, calls, tmp_path):
    database = tmp_path / "a-directory.db"
    database.mkdir()
    config = write_config([dovecot.account("helpdesk", mail_user)],
                          settings={"database": f"sqlite:///{database}"})

    result = run("fetch", config=config)

    assert result.exit_code == 2 and "is a directory, not a database file" in result.stderr
    assert calls[0] == "discard"


def test_only_an_imap_account_is_opened_ahead_and_not_at_debugging_verbosity(
        dovecot, mail_user, write_config, run, calls, tmp_path):
    pop3 = write_config([dovecot.account("helpdesk", mail_user, protocol="pop3")],
                        path=tmp_path / "pop3.toml")
    imap = write_config([dovecot.account("helpdesk", mail_user)])

    assert run("fetch", config=pop3).exit_code == 0  # the maildrop is locked at login
    assert run("-vv", "fetch", config=imap).exit_code == 0  # the trace stays in order

    assert "take" not in calls and "discard" not in calls


def test_discarding_an_opening_in_progress_cuts_it(write_config, tmp_path, caplog):
    """An interrupt must not wait for a server that never answers."""
    caplog.set_level(logging.WARNING)  # as under cron: not opened ahead at -vv
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Event()
    held_open: list[socket.socket] = []  # a connection dropped would be an EOF, not silence

    def accept() -> None:
        held_open.append(silent.accept()[0])
        accepted.set()

    threading.Thread(target=accept, daemon=True).start()
    config = configuration.load(write_config([{
        "name": "silent", "protocol": "imap", "host": "127.0.0.1",
        "port": silent.getsockname()[1], "username": "u", "password": "p",
        "timeout_seconds": 600}]))
    try:
        opening = ahead.start(config, names=None, dry_run=False)
        assert opening is not None
        accepted.wait(30)  # connected: now it waits for a greeting that never comes

        started = time.monotonic()
        opening.discard()  # the opening fails at its next read, and is waited for
        assert not opening.thread.is_alive()  # nothing of it left running at the exit
        assert time.monotonic() - started < ahead.GONE_SECONDS

        assert "the run ended before it needed this mailbox" in str(opening._error)
    finally:
        for sock in [silent, *held_open]:
            sock.close()


def test_a_cut_session_makes_no_connection_at_all():
    """The mailbox opened ahead for a run that has ended: once cut, the thread that was still
    loading its CAs or looking up the host connects to nothing (discard() waits for it only
    GONE_SECONDS)."""
    listening = socket.create_server(("127.0.0.1", 0))
    listening.settimeout(0.2)
    cutoff = Cutoff()
    cutoff.cut("the run ended before it needed this mailbox")
    try:
        with pytest.raises(ConnectionAbortedError, match="not connected: the run ended"):
            cutoff.connect("127.0.0.1", listening.getsockname()[1], 5,
                           ssl.create_default_context())
        with pytest.raises(TimeoutError):
            listening.accept()  # no connection was made
    finally:
        listening.close()


@pytest.mark.parametrize("tls", [True, False])  # POP3S and IMAPS; plain or STARTTLS
def test_a_cut_during_the_lookup_or_connect_stops_before_tls(monkeypatch, tls):
    listening = socket.create_server(("127.0.0.1", 0))
    cutoff = Cutoff()
    connect = socket.create_connection

    def slow(*args, **kwargs):  # the run ends while the connect is under way
        sock = connect(*args, **kwargs)
        cutoff.cut("the run ended before it needed this mailbox")
        return sock

    monkeypatch.setattr(socket, "create_connection", slow)
    try:
        with pytest.raises(ConnectionAbortedError, match="not connected"):
            cutoff.connect("127.0.0.1", listening.getsockname()[1], 5,
                           ssl.create_default_context() if tls else None)
        accepted, _ = listening.accept()
        with accepted:
            assert accepted.recv(100) == b""  # closed before any TLS hello
    finally:
        listening.close()


@pytest.mark.parametrize("waiting", [2, 0])
def test_the_parse_worker_starts_before_the_listing_when_the_server_announced_mail(
        imap_server, mail_user, write_config, run, monkeypatch, waiting):
    """Its start-up (~0.1 s) overlaps the listing; a mailbox without mail starts none."""
    from helpdesk_fetch.message import budget

    started: list[bool] = []
    listed: list[bool] = []
    start, listing = budget.Parser.start, ImapMailbox.list

    def spy_start(self):
        started.append(True)
        return start(self)

    def spy_list(self):
        listed.append(bool(started))
        return listing(self)

    monkeypatch.setattr(budget.Parser, "start", spy_start)
    monkeypatch.setattr(ImapMailbox, "list", spy_list)
    imap_server.append(mail_user, [message(f"Request {n}") for n in range(waiting)])
    config = write_config([imap_server.account("helpdesk", mail_user)])

    assert run("fetch", config=config).exit_code == 0

    assert listed == [waiting > 0]
    assert len(run.json("tickets", "list", config=config)) == waiting


def test_a_parse_worker_that_cannot_start_ahead_is_started_again_where_needed(
        dovecot, mail_user, write_config, run, monkeypatch):
    from helpdesk_fetch.message import budget

    attempts: list[int] = []
    start = budget.Parser.start

    def first_fails(self):
        attempts.append(1)
        if len(attempts) == 1:
            raise budget.ParserUnavailable("cannot start the parse worker: test")
        return start(self)

    monkeypatch.setattr(budget.Parser, "start", first_fails)
    dovecot.append(mail_user, [message("Printer broken")])
    config = write_config([dovecot.account("helpdesk", mail_user)])

    result = run("fetch", config=config)

    assert result.exit_code == 0 and result.output == ""
    assert len(attempts) == 2
    assert [t["subject"] for t in run.json("tickets", "list", config=config)] == ["Printer broken"]
