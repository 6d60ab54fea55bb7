"""POP3 end to end: verified TLS, STLS, UIDL, DELE committed by QUIT (spec §4), on every POP3
server of the matrix (tests/SERVERS.md); what no real server here does, on tests/fakepop.py."""

from __future__ import annotations

from hashlib import sha256

import pytest

from tests.fakepop import FakePop3, Mailbox
from tests.mails import message, message_id_of
from tests.proc import helpdesk_fetch

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL


def test_pop3s_mail_becomes_tickets_and_leaves_the_mailbox(pop3_server, mail_user, write_config,
                                                           run):
    first = message("Monitor flickers")
    reply = message("Re: Monitor flickers", in_reply_to=f"<{message_id_of(first)}>")
    pop3_server.append(mail_user, [first, message("Mouse lost", message_id=None)])
    pop3_server.later_arrival()
    pop3_server.append(mail_user, [reply])
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert pop3_server.messages(mail_user) == []
    tickets = run.json("tickets", "list", config=config)
    assert sorted((t["subject"], t["message_count"]) for t in tickets) == [
        ("Monitor flickers", 2), ("Mouse lost", 1)]


def test_pop3_with_stls(pop3_server, mail_user, write_config, run):
    pop3_server.append(mail_user, [message("Over STLS")])
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3",
                                           security="starttls")])

    assert run("fetch", config=config).exit_code == 0
    assert len(run.json("tickets", "list", config=config)) == 1


def test_long_lines_survive_poplib(pop3_server, mail_user, write_config, run):
    """poplib refuses lines over 2048 bytes; real mail has them."""
    long_line = "word " * 1000
    raw = (b"From: a@example.org\r\nSubject: Long line\r\nMessage-ID: <long@example.org>\r\n"
           b"\r\n" + long_line.encode() + b"\r\n")
    pop3_server.append(mail_user, [raw])
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")])

    assert run("fetch", config=config).exit_code == 0, run("fetch", config=config).output

    ticket = run.json("tickets", "list", config=config)[0]
    text = run.json("tickets", "show", ticket["number"], config=config)["messages"][0]["text"]
    assert text.strip() == long_line.strip()


def test_a_message_of_one_line_longer_than_the_line_bound_blocks_nothing(dovecot, mail_user,
                                                                        write_config, run):
    """A mailer that never breaks lines: one line of 5 MiB, over the 4 MiB that any other
    answer may have, yet within the message's listed size. It used to be refused mid-answer,
    leaving the rest of the message to be read as the answers to later commands: every message
    after it stayed on the server, run after run."""
    huge = (b"From: a@example.org\r\nSubject: One long line\r\nMessage-ID: <long@example.org>"
            b"\r\n\r\n" + b"x" * (5 * 1024 * 1024) + b"\r\n+OK a line like an answer\r\n")
    dovecot.append(mail_user, [message("Before"), huge, message("After")])
    config = write_config([dovecot.account("pop", mail_user, protocol="pop3")])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert subjects(run, config) == ["After", "Before", "One long line"]
    assert dovecot.messages(mail_user) == []


@pytest.mark.parametrize("lf_sizes", [set(), {1}], ids=["exact-size", "lf-counted-size"])
def test_a_line_as_long_as_its_message_is_taken_whatever_retr_adds(write_config, run,
                                                                   monkeypatch, lf_sizes):
    """The one line of a message may come a few bytes longer than LIST's size of the whole
    message: the dot RETR puts before a line that starts with one, the line end, and a size
    that counts each line end as one octet."""
    from helpdesk_fetch.sources import poplib_adapter

    monkeypatch.setattr(poplib_adapter, "MAX_LINE", 1000)
    raw = b"." + b"x" * 2999 + b"\r\n"  # no header at all: the line is the message
    box = Mailbox([("1", raw)], lf_sizes=lf_sizes, pipelining=True)
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.stderr
    assert box.messages == []
    assert run.json("status", config=config)["error_messages"] == 0


def test_a_line_longer_than_the_listed_message_ends_the_session(write_config, run, monkeypatch):
    """A server whose line is longer than LIST said the whole message is (and than the bound
    on any line): what follows that line is unread, so no later answer can be trusted. The
    account fails naming the message; nothing is deleted (no QUIT)."""
    from helpdesk_fetch.sources import poplib_adapter

    monkeypatch.setattr(poplib_adapter, "MAX_LINE", 1000)
    long = b"Subject: Long\r\n\r\n" + b"y" * 3000 + b"\r\n"
    box = Mailbox([("1", message("One")), ("2", long), ("3", message("Three"))],
                  listed={2: 500}, pipelining=True)
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 1
    assert "message pop3:2:500: line longer than 1000 bytes, longer than LIST said" in \
        result.stderr, result.stderr
    assert "QUIT" not in box.log and not any(c.startswith("DELE") for c in box.log)
    assert len(box.messages) == 3


def test_failed_message_stays_on_the_server_and_is_skipped(pop3_server, mail_user, write_config,
                                                           run):
    big = message("Too big", body="y" * 9000)
    pop3_server.append(mail_user, [message("Small one"), big])
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")],
                          settings={"max_message_bytes": 6000})

    first = run("fetch", config=config)
    second = run("fetch", config=config)

    assert first.exit_code == 0 and "left on the POP3 server" in first.stderr
    assert second.exit_code == 0 and second.stderr == ""  # remembered, not reported again
    assert pop3_server.messages(mail_user) == [big]
    assert len(run.json("tickets", "list", config=config)) == 1
    assert run.json("status", config=config)["error_messages"] == 1
    [failed] = run.json("errors", "list", config=config)  # its header read by TOP n 0
    assert (failed["from"], failed["subject"], failed["message_id"]) == (
        "carol@example.org", "Too big", message_id_of(big))


def test_refetch_after_lost_quit_adds_nothing(pop3_server, mail_user, write_config, run):
    raw = message("Stored twice?")
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")])
    pop3_server.append(mail_user, [raw])
    run("fetch", config=config)
    pop3_server.append(mail_user, [raw])  # as if QUIT had never arrived

    assert run("fetch", config=config).exit_code == 0

    assert run.json("tickets", "list", config=config)[0]["message_count"] == 1
    assert pop3_server.messages(mail_user) == []


def test_pop3_hands_over_the_message_as_the_server_holds_it(pop3_server, mail_user,
                                                            write_config, run, open_db):
    """8-bit header bytes: Courier answers RETR with a notice of its own ("Cannot display
    Unicode content") until the client sends UTF8 (RFC 6856); that notice was stored as the
    ticket and the real message deleted. What is stored is what the server holds (on Cyrus
    that is "GrXXXXe": it replaced the bytes at APPEND, nothing a client can undo)."""
    from helpdesk_fetch.store.models import Message

    raw = ("From: Jörg <joerg@example.org>\r\nTo: helpdesk@example.com\r\n"
           "Subject: Grüße\r\nMessage-ID: <8bit-headers@example.org>\r\n\r\n"
           "Umlaute im Kopf.\r\n").encode()
    pop3_server.append(mail_user, [raw])
    [held] = pop3_server.messages(mail_user)
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3")])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert pop3_server.messages(mail_user) == []
    [ticket] = run.json("tickets", "list", config=config)
    assert ticket["subject"] == ("GrXXXXe" if pop3_server.name == "cyrus" else "Grüße")
    open_db()
    assert [m.sha256 for m in Message.select()] == [sha256(held).hexdigest()]


def test_a_notice_in_the_messages_place_is_never_taken_for_it(courier, mail_user,
                                                               write_config, run, monkeypatch):
    """Beyond UTF8: whatever a server hands over in a message's place is not taken when its
    size is not the size LIST announced. Courier without UTF8 (as if it refused it): the
    message stays on the server, recorded once, and no ticket is made of the notice."""
    from helpdesk_fetch.sources.pop3 import Pop3Mailbox

    raw = "Subject: Grüße\r\nFrom: a@example.org\r\n\r\nx\r\n".encode()
    courier.append(mail_user, [message("Plain ASCII"), raw])
    config = write_config([courier.account("pop", mail_user, protocol="pop3")])
    with monkeypatch.context() as patch:  # Courier as if it refused UTF8
        patch.setattr(Pop3Mailbox, "_utf8", lambda self: None)

        first = run("fetch", config=config)
        second = run("fetch", config=config)

        assert first.exit_code == 0, first.output
        [line] = first.stderr.splitlines()
        assert "the server handed over" in line and "left on the POP3 server" in line
        assert second.stderr == ""  # remembered, not reported again
        assert subjects(run, config) == ["Plain ASCII"]
        assert courier.messages(mail_user) == [raw]
        [failed] = run.json("errors", "list", config=config)
        assert failed["place"] == "pop3" and "LIST announced" in failed["reason"]
        retried = run("errors", "retry", "--all", config=config)
        assert "still fails: the server handed over" in retried.output
        assert courier.messages(mail_user) == [raw] and subjects(run, config) == ["Plain ASCII"]
    # The server hands it over as it holds it once UTF8 is sent again.
    assert run("errors", "retry", "--all", config=config).exit_code == 0
    assert subjects(run, config) == ["Grüße", "Plain ASCII"]
    assert courier.messages(mail_user) == []


def test_a_size_the_server_miscounts_holds_the_message_and_dismiss_keeps_it(courier, mail_user,
                                                                           write_config, run):
    """Courier's LIST (and IMAP's RFC822.SIZE) of a MIME structure 200 levels deep is not its
    size (8,732 for 14,047 bytes); RETR hands over the message as stored. By size alone that
    cannot be told from a notice in its place, so it stays on the server, recorded; given up
    on, what the server hands over is kept, and the message leaves the server."""
    from tests.mailset import CASES

    raw = CASES["nested-200-deep"].raw
    courier.deliver(mail_user, [raw, message("After it")])
    config = write_config([courier.account("pop", mail_user, protocol="pop3")])

    result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert "the server handed over 14047 bytes where LIST announced 8732" in result.stderr
    assert subjects(run, config) == ["After it"]
    [failed] = run.json("errors", "list", config=config)
    assert run("errors", "dismiss", str(failed["id"]), config=config).exit_code == 0
    assert courier.messages(mail_user) == []
    assert run("errors", "show", str(failed["id"]), "--raw", config=config).stdout_bytes == raw


def test_a_dry_run_leaves_the_database_byte_identical(dovecot, mail_user, write_config, run,
                                                     database_state):
    """As over IMAP (test_ingest_imap.py): nothing stored, no UIDL remembered for the message
    too large to take, every message left on the server."""
    first = message("Monitor flickers")
    dovecot.append(mail_user, [first])
    config = write_config([dovecot.account("pop", mail_user, protocol="pop3")],
                          settings={"max_message_bytes": 6000})
    assert run("fetch", config=config).exit_code == 0
    number = run.json("tickets", "list", config=config)[0]["number"]
    run("tickets", "set-status", number, "in_progress", config=config)
    waiting = [message("Re: Monitor flickers", in_reply_to=f"<{message_id_of(first)}>"),
               message("Mouse lost"), message("Too big", body="y" * 9000)]
    dovecot.append(mail_user, waiting)
    before = database_state()
    assert before.get("wal", True)  # SQLite: the last change is still in the WAL

    dry = helpdesk_fetch("fetch", "--dry-run", config=config, text=True)

    assert dry.returncode == 0, dry.stderr
    assert f"-> ticket {number} (by reply)" in dry.stdout and "-> a new ticket" in dry.stdout
    assert "would set aside" in dry.stdout
    assert database_state() == before
    assert dovecot.messages(mail_user) == waiting
    assert run("fetch", config=config).exit_code == 0  # what it left was there to do
    assert run.json("status", config=config)["error_messages"] == 1
    assert [t["message_count"] for t in run.json("tickets", "list", config=config)] == [2, 1]


# Broken servers (tests/fakepop.py): what Dovecot will not do, but a POP3 server may.

def subjects(run, config) -> list[str]:
    return sorted(t["subject"] for t in run.json("tickets", "list", config=config))


def test_a_uidl_given_again_to_a_new_message_is_not_taken_for_the_old(write_config, run):
    box = Mailbox([("1", message("Alpha"))])
    with FakePop3(box) as server:
        config = write_config([server.account()])
        assert run("fetch", config=config).exit_code == 0
        box.messages = [("1", message("Bravo, a new message"))]  # RFC 1939 allows the reuse

        assert run("fetch", config=config).exit_code == 0

    assert subjects(run, config) == ["Alpha", "Bravo, a new message"]
    assert box.messages == []


def test_two_messages_with_one_uidl(write_config, run):
    same_size = [message("Twin A", message_id="<a@x>"), message("Twin B", message_id="<b@x>")]
    box = Mailbox([("X", message("Short")), ("X", message("A longer subject")),
                   ("Y", same_size[0]), ("Y", same_size[1])])
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert subjects(run, config) == ["A longer subject", "Short"]  # told apart by their size
    assert "same UIDL and size" in result.stderr
    assert [m for _, m in box.messages] == same_size  # could pass for each other: left alone


def test_a_message_the_server_will_not_hand_over_blocks_nothing(write_config, run):
    box = Mailbox([("1", message("One")), ("2", message("Two")), ("3", message("Three"))],
                  refuse_retr={2})
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert "would not hand over" in result.stderr
    assert subjects(run, config) == ["One", "Three"]
    assert [uidl for uidl, _ in box.messages] == ["2"]


def test_the_header_of_a_message_too_large_is_read_and_the_session_goes_on(
        write_config, run):
    """TOP n 0 of a message whose header alone is 300 KB (one line): its start is kept for
    the record, the rest read and dropped, and the next message is fetched in step."""
    huge = message("Too big", headers={"X-Junk": "j" * 300_000})
    box = Mailbox([("1", huge), ("2", message("Small one"))], top=True)
    with FakePop3(box) as server:
        config = write_config([server.account()], settings={"max_message_bytes": 100_000})

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert subjects(run, config) == ["Small one"]
    [failed] = run.json("errors", "list", config=config)
    assert (failed["from"], failed["subject"]) == ("carol@example.org", "Too big")
    assert box.log[-4:] == ["TOP 1 0", "RETR 2", "DELE 2", "QUIT"]


def test_a_header_that_cannot_be_read_still_leaves_the_message_recorded_and_skipped(
        write_config, run):
    """The record comes first: a connection lost while TOP's answer comes fails this run's
    account, and the next run skips the message (its UIDL is remembered) and stores the rest."""
    big = message("Too big", body="y" * 9000)
    box = Mailbox([("1", big), ("2", message("Small one"))], top_breaks=True)
    with FakePop3(box) as server:
        config = write_config([server.account()], settings={"max_message_bytes": 6000})

        first = run("fetch", config=config)
        box.top_breaks = False
        box.log.clear()
        second = run("fetch", config=config)

    assert first.exit_code == 1, first.output
    assert second.exit_code == 0, second.output
    assert "TOP 1 0" not in box.log and subjects(run, config) == ["Small one"]
    [failed] = run.json("errors", "list", config=config)
    assert failed["size"] == len(big) and failed["subject"] == ""


def test_a_server_without_top_leaves_the_record_of_a_message_too_large_unnamed(write_config,
                                                                                run):
    box = Mailbox([("1", message("Too big", body="y" * 9000)), ("2", message("Small one"))])
    with FakePop3(box) as server:
        config = write_config([server.account()], settings={"max_message_bytes": 6000})

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert subjects(run, config) == ["Small one"]
    [failed] = run.json("errors", "list", config=config)
    assert (failed["from"], failed["subject"], failed["size"]) == ("", "", len(box.messages[0][1]))


def test_a_server_without_uidl_is_named_as_such(write_config, run):
    box = Mailbox([("1", message("One"))], no_uidl=True)
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)
        probe = run("accounts", "test", config=config)

    assert result.exit_code == 1
    assert "does not answer UIDL" in result.stderr
    assert probe.exit_code == 1 and "does not answer UIDL" in probe.output + probe.stderr
    assert len(box.messages) == 1


def test_sizes_counted_with_lf_line_ends_are_the_messages_own(write_config, run):
    """RFC 1939 asks LIST for the exact size; a server that stores LF line ends may count
    each as one octet. Such a size is the message's own, not a sign of a substitute."""
    raws = [message("Counted with LF"), message("Counted with CRLF")]
    box = Mailbox([("1", raws[0]), ("2", raws[1])], lf_sizes={1})
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert subjects(run, config) == ["Counted with CRLF", "Counted with LF"]


@pytest.mark.parametrize(("listed", "taken"), [
    (12, True),  # as sent: "a\r\nbb\r\nccc\r\n"
    (10, True),  # without the CRLF RETR adds to a last line that had none (Dovecot)
    (9, True),  # line ends counted as one octet (a server that stores LF)
    (8, True),  # both
    (11, False), (13, False), (3, False), (700, False),
])
def test_what_counts_as_the_listed_size(listed, taken):
    from helpdesk_fetch.sources.pop3 import as_listed

    assert as_listed(b"a\r\nbb\r\nccc\r\n", listed) is taken


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_refused_dele_deletes_nothing_and_the_next_run_finishes(write_config, run, pipelining):
    """DELEs go one group per round trip to a server that offers PIPELINING (RFC 2449), else
    one by one. One refused: the session ends without QUIT, so none takes effect; all were
    stored, and the next run deletes them without storing any again."""
    box = Mailbox([(str(n), message(f"Message {n}")) for n in (1, 2, 3)], refuse_dele={2},
                  pipelining=pipelining)
    with FakePop3(box) as server:
        config = write_config([server.account()])

        failed = run("fetch", config=config)
        sent = [c for c in box.log if c.startswith("DELE")]
        quit_sent = "QUIT" in box.log
        box.refuse_dele = set()
        again = run("fetch", config=config)

    assert failed.exit_code == 1
    assert "deleting on" in failed.stderr, failed.stderr
    assert sent == (["DELE 1", "DELE 2", "DELE 3"] if pipelining else ["DELE 1", "DELE 2"])
    assert not quit_sent
    assert again.exit_code == 0, again.output
    assert box.messages == []
    assert subjects(run, config) == ["Message 1", "Message 2", "Message 3"]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_the_next_retr_goes_out_before_the_answer_to_this_one(write_config, run, pipelining):
    """To a server that offers PIPELINING, each RETR but the last is followed at once by the
    next, so that the next message is on its way while this one is stored: a round trip per
    message saved. (The fake notes, for each RETR, whether the next command came before it
    answered.)"""
    box = Mailbox([(str(n), message(f"Message {n}")) for n in (1, 2, 3)],
                  pipelining=pipelining, note_sent_ahead=True)
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert box.sent_ahead == ([True, True, False] if pipelining else [False, False, False])
    assert subjects(run, config) == ["Message 1", "Message 2", "Message 3"]
    assert box.messages == []


def test_an_answer_sent_ahead_and_not_wanted_is_read_and_dropped(write_config):
    """A caller that stops after the first message (the RETR of the second already sent): the
    second's answer is read and dropped, so the answers after it are still the right ones."""
    from helpdesk_fetch import config as configuration
    from helpdesk_fetch.sources.open import open_mailbox

    box = Mailbox([(str(n), message(f"Message {n}")) for n in (1, 2, 3)], pipelining=True)
    with FakePop3(box) as server:
        config = configuration.load(write_config([server.account()]))
        [account] = config.accounts
        with open_mailbox(account, settings=config.settings, timeout=10) as mailbox:
            refs = mailbox.list()
            messages = mailbox.fetch(refs)
            first, raw = next(messages)
            messages.close()
            mailbox.delete([first])
            assert [raw for _, raw in mailbox.fetch(refs[2:])] == [box.messages[2][1]]

    assert box.log[-5:] == ["RETR 1", "RETR 2", "DELE 1", "RETR 3", "QUIT"]
    assert b"Subject: Message 1" in raw
    assert [uidl for uidl, _ in box.messages] == ["2", "3"]


def test_a_refused_login_says_the_servers_words_once_punctuated(pop3_server, mail_user,
                                                               write_config, run):
    """Dovecot answers "-ERR [AUTH] Authentication failed.": not "failed.; check"."""
    config = write_config([pop3_server.account("pop", mail_user, protocol="pop3",
                                               password="wrong")])

    result = run("fetch", config=config)

    assert result.exit_code == 1
    assert f"login as '{mail_user}' refused: -ERR" in result.stderr
    assert "; check the username and the password source" in result.stderr
    assert ".;" not in result.stderr


@pytest.mark.parametrize(("answer", "meaning"), [
    (b"-ERR [IN-USE] Unable to lock maildrop", "another POP3 session holds the mailbox"),
    (b"-ERR [SYS/TEMP] Authentication service unavailable", "a passing problem of the server's"),
    (b"-ERR [SYS/PERM] Home directory missing", "its administrator must fix it"),
    (b"-ERR [LOGIN-DELAY] Logins must be at least 1 minute apart", "log in only so often")])
def test_a_refused_login_with_a_response_code_is_not_called_a_wrong_password(answer, meaning):
    """RFC 2449 and RFC 3206 response codes say why a USER/PASS was refused; only [AUTH] and
    none at all point at the credentials."""
    import poplib

    from helpdesk_fetch.errors import AuthError
    from helpdesk_fetch.sources.pop3 import login_refused

    error = login_refused("helpdesk", "helpdesk@example.com", poplib.error_proto(answer))
    assert not isinstance(error, AuthError) and meaning in str(error)
    assert "check the username" not in str(error) and answer.decode() in str(error)
    for credentials in (b"-ERR [AUTH] Invalid login", b"-ERR Authentication failed."):
        error = login_refused("helpdesk", "helpdesk@example.com", poplib.error_proto(credentials))
        assert isinstance(error, AuthError) and "check the username and the password" in str(error)


@pytest.mark.both_backends
def test_a_size_beyond_32_bits_is_set_aside_and_recorded(write_config, run):
    """A message a server lists at 3 GiB is too large and never downloaded; its size is kept
    as the server said it (PostgreSQL's integer stops at 2 GiB: the account failed on every
    run, and the message after it was never read)."""
    huge = 3 * 2**30
    box = Mailbox([("1", message("Listed at 3 GiB")), ("2", message("An ordinary one"))],
                  listed={1: huge})
    with FakePop3(box) as server:
        config = write_config([server.account()])

        result = run("fetch", config=config)

    assert result.exit_code == 0, result.output
    assert subjects(run, config) == ["An ordinary one"]
    [failed] = run.json("errors", "list", config=config)
    assert failed["size"] == huge and "over max_message_bytes" in failed["reason"], failed
    assert [uidl for uidl, _ in box.messages] == ["1"]
