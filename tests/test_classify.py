"""message/classify.py: the kind of every sample mail and what its bounce says, the no-reply rules
of spec §6, the false positives it must not fall for, and that broken or huge input neither crashes
it nor costs it more than linear time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk_fetch.enums import MessageKind
from helpdesk_fetch.message.classify import MAX_RECIPIENTS, classify, is_daemon
from helpdesk_fetch.message.parse import ParseError, parse
from tests import kinds_samples as samples
from tests.mails import message

OWN = frozenset({samples.HELPDESK})
RECEIPT = samples.RECEIPT_ID
BOUNCE, AUTO_REPLY, MESSAGE = MessageKind.BOUNCE, MessageKind.AUTO_REPLY, MessageKind.MESSAGE
NULL_SENDER = "a null sender (Return-Path: <>)"
REPLIED = "Auto-Submitted: auto-replied"
GENERATED = "Auto-Submitted: auto-generated"


@dataclass(frozen=True)
class Expected:
    kind: MessageKind
    no_reply: str | None
    failed: tuple[str, ...] = ()
    delay_only: bool = False
    ids: tuple[str, ...] = ()


EXPECTED = {
    samples.postfix_failed: Expected(BOUNCE, REPLIED, ("dana@customer.example",), ids=(RECEIPT,)),
    samples.postfix_delayed: Expected(BOUNCE, REPLIED, (), delay_only=True, ids=(RECEIPT,)),
    samples.exim_failed_plain: Expected(BOUNCE, REPLIED, ("frank@gone.example",), ids=(RECEIPT,)),
    samples.exim_failed_dsn: Expected(BOUNCE, REPLIED,
                                      ("gustav@partner.example", "greta@partner.example"),
                                      ids=(RECEIPT,)),
    # Exim's warning names the original by its queue ID only: nothing to thread it by.
    samples.exim_delayed_plain: Expected(BOUNCE, REPLIED, (), delay_only=True),
    samples.sendmail_failed: Expected(BOUNCE, GENERATED, ("gina@partner.example",), ids=(RECEIPT,)),
    samples.qmail_failed: Expected(BOUNCE, NULL_SENDER, ("hans@oldhost.example",), ids=(RECEIPT,)),
    samples.exchange_ndr_rfc822: Expected(BOUNCE, NULL_SENDER, ("ivan.petrov@fabrikam.example",),
                                          ids=(RECEIPT,)),
    samples.o365_ndr_headers: Expected(BOUNCE, NULL_SENDER, ("jana@contoso.example",),
                                       ids=(RECEIPT,)),
    samples.gmail_failed: Expected(BOUNCE, REPLIED, ("julia@nowhere.example",), ids=(RECEIPT,)),
    samples.quoted_id_only: Expected(BOUNCE, NULL_SENDER, ("karl@partner.example",),
                                     ids=(RECEIPT,)),
    samples.backscatter: Expected(BOUNCE, REPLIED, ("nobody@victim.example",),
                                  ids=(samples.SPAM_ID,)),
    samples.exchange_oof_en: Expected(AUTO_REPLY, GENERATED),
    samples.exchange_oof_de: Expected(
        AUTO_REPLY, "an auto-reply (Exchange out-of-office reply: 'Automatische Antwort:' with "
                    "X-Auto-Response-Suppress)"),
    samples.gmail_vacation: Expected(AUTO_REPLY, REPLIED),
    samples.sieve_vacation: Expected(AUTO_REPLY, REPLIED),
    samples.x_autoreply: Expected(AUTO_REPLY, "an auto-reply (X-Autoreply: yes)"),
    samples.x_autorespond: Expected(AUTO_REPLY, "Precedence: auto_reply"),
    samples.read_receipt: Expected(
        AUTO_REPLY, "an auto-reply (read receipt: multipart/report; "
                    "report-type=disposition-notification)"),
    samples.own_automail_back: Expected(AUTO_REPLY, REPLIED),
    samples.person: Expected(MESSAGE, None),
    samples.mailing_list: Expected(MESSAGE, "Precedence: list"),
    samples.person_forwards_bounce: Expected(MESSAGE, None),
    samples.person_forwards_bounce_inline: Expected(MESSAGE, None),
    samples.person_undeliverable_subject: Expected(MESSAGE, None),
    samples.postmaster_writes: Expected(MESSAGE, "a daemon sender (postmaster@partner.example)"),
    samples.auto_generated_notice: Expected(MESSAGE, GENERATED),
    **{sample: Expected(MESSAGE, None) for sample in samples.MONITORING},
}


def test_every_sample_has_an_expectation():
    assert set(EXPECTED) == set(samples.ALL)


@pytest.mark.parametrize("sample", samples.ALL, ids=lambda sample: sample.__name__)
def test_each_sample(sample):
    got = classify(parse(sample()), own=OWN)
    want = EXPECTED[sample]

    assert (got.kind, got.failed_recipients, got.delay_only, got.original_ids,
            got.no_reply_reason) == (want.kind, want.failed, want.delay_only, want.ids,
                                     want.no_reply)
    assert got.reason
    assert got.automatic == (want.no_reply is not None)


def test_reasons_name_what_decided():
    assert classify(parse(samples.qmail_failed())).reason == (
        "non-standard bounce from mailer-daemon@mail.oldhost.example: subject 'failure notice'")
    assert classify(parse(samples.exim_failed_plain())).reason.endswith(": X-Failed-Recipients")
    assert classify(parse(samples.gmail_vacation())).reason == REPLIED
    assert classify(parse(samples.auto_generated_notice())).reason.startswith(GENERATED)


# -- the no-reply rules (spec §6), which replace automail.no_reply_reason and store.is_automatic ---

@pytest.mark.parametrize(("headers", "reason", "automatic"), [
    ({"Auto-Submitted": "auto-replied"}, REPLIED, True),
    ({"Auto-Submitted": "auto-notified"}, "Auto-Submitted: auto-notified", True),
    ({"Auto-Submitted": "no"}, None, False),
    ({"Precedence": "bulk"}, "Precedence: bulk", True),
    ({"Precedence": "junk"}, "Precedence: junk", True),
    ({"Precedence": "list"}, "Precedence: list", True),
    ({"Precedence": "auto_reply"}, "Precedence: auto_reply", True),
    ({"List-Id": "<users.lists.example.org>"}, "a mailing-list or bulk message (List-Id)", True),
    # a newsletter without List-Id or Precedence (RFC 2369's other fields; RFC 3834 §2)
    ({"List-Unsubscribe": "<https://shop.example/u/1>"},
     "a mailing-list or bulk message (List-Unsubscribe)", True),
    ({"List-Post": "<mailto:users@lists.example.org>"},
     "a mailing-list or bulk message (List-Post)", True),
    # procmail's forwarding recipe adds X-Loop to a customer's own mail
    ({"X-Loop": "support@vendor.example"}, None, False),
    ({"Return-Path": "<owner-users@lists.example.org>"},
     "a mailing list's envelope sender (Return-Path: owner-users@lists.example.org)", True),
    ({"Return-Path": "<users-bounces+carol=example.org@lists.example.org>"},
     "a mailing list's envelope sender (Return-Path: "
     "users-bounces+carol=example.org@lists.example.org)", True),
    # a web form or CRM sends a customer's mail through an ESP: the customer is answered
    ({"Return-Path": "<bounces+c=example.org@esp.example>"}, None, False),
    ({"Return-Path": "<carol@example.org>"}, None, False),
    ({"X-Helpdesk-Fetch": "new_ticket; ticket=7"}, "one of our own auto-mails", True),
    ({"Return-Path": "<>"}, NULL_SENDER, True),
    ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "X-Auto-Response-Suppress", False),
    ({"X-Auto-Response-Suppress": "All"}, "X-Auto-Response-Suppress", False),
    ({"X-Auto-Response-Suppress": "DR, NDR, RN, NRN"}, None, False),
    ({"X-Autorespond": "yes"}, "an auto-reply (X-Autorespond: yes)", True),
    ({"X-Autoreply": "no"}, None, False),
])
def test_headers_that_forbid_an_answer(headers, reason, automatic):
    got = classify(parse(message("Hello", headers=headers)), own=OWN)
    assert (got.no_reply_reason, got.automatic) == (reason, automatic)


@pytest.mark.parametrize(("sender", "reason", "automatic"), [
    ("MAILER-DAEMON@example.org", "a daemon sender (mailer-daemon@example.org)", True),
    ("postmaster@example.org", "a daemon sender (postmaster@example.org)", True),
    ("no-reply@shop.example", "a daemon sender (no-reply@shop.example)", True),
    ("no_reply@shop.example", "a daemon sender (no_reply@shop.example)", True),
    ("noreply+orders@shop.example", "a daemon sender (noreply+orders@shop.example)", True),
    ("users-request@lists.example.org", "a daemon sender (users-request@lists.example.org)",
     True),
    ("bounces+c=example.org@esp.example", "a daemon sender (bounces+c=example.org@esp.example)",
     True),
    ("helpdesk@example.com", "one of our own addresses (helpdesk@example.com)", False),
    ("", "no sender address", False),
    ("Carol <carol@example.org>", None, False),
])
def test_senders_that_are_never_answered(sender, reason, automatic):
    got = classify(parse(message("Delivery report", sender=sender)), own=OWN)
    assert (got.no_reply_reason, got.automatic) == (reason, automatic)


def test_a_reply_to_naming_a_daemon_or_us_is_not_answered_either():
    to_robot = message("Order", headers={"Reply-To": "noreply@shop.example"})
    to_us = message("Order", headers={"Reply-To": "Helpdesk <HELPDESK@example.com>"})
    assert classify(parse(to_robot), own=OWN).no_reply_reason == (
        "a daemon sender (noreply@shop.example)")
    assert classify(parse(to_us), own=OWN).no_reply_reason == (
        "one of our own addresses (helpdesk@example.com)")


def test_our_own_mail_is_told_apart_from_a_robots():
    """Our own (our marker, one of our addresses): nobody is told of it, not even the staff;
    a robot's is never answered, and its ticket is still told to the staff."""
    ours = message("Ticket 1001", headers={"X-Helpdesk-Fetch": "new_ticket; ticket=1001",
                                           "Auto-Submitted": "auto-replied"})
    from_us = message("Order", headers={"Reply-To": "Helpdesk <HELPDESK@example.com>"})
    robot = message("Order", sender="noreply@shop.example")
    assert classify(parse(ours), own=OWN).ours == "one of our own auto-mails"
    assert classify(parse(from_us), own=OWN).ours == (
        "one of our own addresses (helpdesk@example.com)")
    assert classify(parse(robot), own=OWN).ours is None


def test_a_bounce_counts_as_automatic_even_without_any_header_saying_so():
    """store.is_automatic missed these; the old no_reply_reason caught them by the sender."""
    raw = samples.qmail_failed().replace(b"Return-Path: <>\n", b"")
    got = classify(parse(raw))
    assert got.kind is BOUNCE and got.automatic
    assert got.no_reply_reason == "a daemon sender (mailer-daemon@mail.oldhost.example)"


@pytest.mark.parametrize("address", [
    "MAILER-DAEMON@x.example", "mailer_daemon@x.example", "mail-daemon@x.example",
    "postmaster@x.example", "do-not-reply@x.example", "donotreply@x.example",
    "majordomo@x.example", "listserv@x.example", "users-bounces@x.example",
    "gmail-noreply@x.example", "noreply-dmarc-support@x.example", "no-reply-aws@x.example",
    "info.noreply@x.example", "noreply2@x.example", "bounce-1234@x.example",
    "owner-users@x.example",
    "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e@x.example"])
def test_daemon_addresses(address):
    assert is_daemon(address)


@pytest.mark.parametrize("address", ["carol@x.example", "replyer@x.example", "post@x.example",
                                     "bouncer@x.example", "noreplyer@x.example",
                                     "knowreply@x.example", "owner@x.example",
                                     "product-owner@x.example"])
def test_people_are_not_daemons(address):
    assert not is_daemon(address)


# -- false positives and edges ---------------------------------------------------------------------

def test_mail_from_the_mail_system_without_a_bounce_sign_is_a_message():
    quota = message("Quota warning: your mailbox is 90% full",
                    sender="postmaster@example.com", body="Please delete old mail.\n")
    got = classify(parse(quota), own=OWN)
    assert got.kind is MESSAGE and got.no_reply_reason == "a daemon sender (postmaster@example.com)"


def test_a_postmaster_who_writes_an_undeliverable_subject_is_a_person():
    """The subject of a bounce from postmaster counts only with the MTA's words or the original
    sent back: partners' postmasters write to helpdesks about bounced mail themselves."""
    person = message("Undeliverable mail from your servers - please check SPF",
                     sender="postmaster@customer.example",
                     body="Hi, our gateway rejects your mail. Could you check your SPF record?\n",
                     headers={"Return-Path": "<postmaster@customer.example>"})
    got = classify(parse(person), own=OWN)
    assert (got.kind, got.no_reply_reason) == (
        MESSAGE, "a daemon sender (postmaster@customer.example)")
    with_words = message("Undeliverable: Printer broken", sender="postmaster@old.example",
                         body="Your message did not reach some or all of the intended "
                              "recipients.\n\n  gone@old.example\n",
                         headers={"Return-Path": "<postmaster@old.example>"})
    with_original = message("Undeliverable: Printer broken", sender="postmaster@old.example",
                            body="Sorry.\n", headers={"Return-Path": "<postmaster@old.example>"},
                            attachments=[("original.eml", "message/rfc822",
                                          message("Printer broken"))])
    for raw in (with_words, with_original):
        assert classify(parse(raw), own=OWN).kind is BOUNCE


def test_an_exchange_ndr_in_words_names_its_recipient_above_its_summary():
    """Exchange 2003 sums the original up, indented, before the failed recipients; an indented
    To: is no copy of the original's header."""
    body = ("Your message\n\n  To:      john.doe@corp.example\n  Subject: Printer broken\n"
            "  Sent:    Mon, 30 Nov 2026 10:00:00 +0100\n\ndid not reach the following "
            "recipient(s):\n\njohn.doe@corp.example on Mon, 30 Nov 2026 10:00:05 +0100\n"
            "    The e-mail account does not exist at the organization.\n")
    raw = message("Undeliverable: Printer broken", sender="System Administrator "
                  "<postmaster@corp.example>", body=body, headers={"Return-Path": "<>"})
    got = classify(parse(raw), own=OWN)
    assert (got.kind, got.failed_recipients) == (BOUNCE, ("john.doe@corp.example",))


@pytest.mark.parametrize("prefix", [
    "Автоматический ответ:", "Automatisk svar:", "Automatiskt svar:", "自動応答:", "自動応答：",
    "自动答复:", "Otomatik yanıt:", "Αυτόματη απάντηση:", "Réponse automatique :",
    "Odpowiedź automatyczna:", "자동 회신:"])
def test_exchange_out_of_office_replies_in_other_languages(prefix):
    raw = samples.exchange_oof_en().replace(b"Subject: Automatic reply:",
                                            f"Subject: {prefix}".encode())
    assert classify(parse(raw)).kind is AUTO_REPLY


def test_a_vacation_reply_quoting_bounce_words_stays_an_auto_reply():
    """A null sender alone lets only a bounce's headers or subject count, not its words."""
    raw = message("Auto: Printer broken", sender="otto@customer.example",
                  body="This message was created automatically by mail delivery software.\n",
                  headers={"Return-Path": "<>", "Auto-Submitted": "auto-replied"})
    assert classify(parse(raw)).kind is AUTO_REPLY


@pytest.mark.parametrize(("subject", "headers"), [
    ("Automatic reply: I am away", {}),  # a person can type the words
    ("RE: Automatic reply: Printer broken", {"X-Auto-Response-Suppress": "All"}),
    ("Fwd: invoice", {"X-MS-Exchange-Inbox-Rules-Loop": "lena@fabrikam.example"}),  # a forward
])
def test_exchange_signs_alone_are_not_an_out_of_office_reply(subject, headers):
    assert classify(parse(message(subject, headers=headers))).kind is MESSAGE


def test_exchange_out_of_office_needs_its_subject_and_one_of_its_headers():
    raw = message("Automatic reply: Printer broken",
                  headers={"X-MS-Exchange-Inbox-Rules-Loop": "lena@fabrikam.example"})
    assert classify(parse(raw)).reason == (
        "Exchange out-of-office reply: 'Automatic reply:' with X-MS-Exchange-Inbox-Rules-Loop")


def _report(status: str, *, text: str = "Delivery report.\n", extra: str = "") -> bytes:
    """A minimal RFC 3464 report around *status*, the delivery-status part's text."""
    return (f"Return-Path: <>\nFrom: MAILER-DAEMON@mx.example.net\nTo: helpdesk@example.com\n"
            f"Subject: Delivery report\nMIME-Version: 1.0\n{extra}"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
            f"--B\nContent-Type: text/plain\n\n{text}\n"
            f"--B\nContent-Type: message/delivery-status\n\n"
            f"Reporting-MTA: dns; mx.example.net\n\n{status}\n--B--\n").encode()


def test_one_failed_and_one_delayed_recipient_is_a_failure_of_one():
    got = classify(parse(_report("Final-Recipient: rfc822; a@x.example\nAction: failed\n\n"
                                 "Final-Recipient: rfc822; b@x.example\nAction: delayed\n")))
    assert (got.failed_recipients, got.delay_only) == (("a@x.example",), False)


def test_a_success_report_fails_nobody_and_is_no_delay():
    got = classify(parse(_report("Final-Recipient: rfc822; a@x.example\nAction: delivered\n"
                                 "Status: 2.0.0\n")))
    assert (got.kind, got.failed_recipients, got.delay_only) == (BOUNCE, (), False)


def test_a_report_without_action_is_read_from_its_status_code():
    got = classify(parse(_report("Final-Recipient: rfc822;<A@X.example>\nStatus: 5.1.1\n\n"
                                 "Final-Recipient: x-local; kim\n"
                                 "Original-Recipient: rfc822; kim@y.example\nStatus: 5.2.2\n")))
    assert got.failed_recipients == ("a@x.example", "kim@y.example")


def test_the_final_recipient_is_the_one_that_failed():
    """Final-Recipient, not Original-Recipient (spec §9.2), in either order."""
    got = classify(parse(_report("Final-Recipient: rfc822; alice@mail.example\n"
                                 "Original-Recipient: rfc822; alice@customer.example\n"
                                 "Action: failed\n\n"
                                 "Original-Recipient: rfc822; bob@customer.example\n"
                                 "Final-Recipient: rfc822; bob@mail.example\n"
                                 "Action: failed\n")))
    assert got.failed_recipients == ("alice@mail.example", "bob@mail.example")


def test_a_report_that_forgets_blank_lines_between_recipients():
    got = classify(parse(_report("Final-Recipient: rfc822; a@x.example\nAction: failed\n"
                                 "Final-Recipient: rfc822; b@x.example\nAction: failed\n")))
    assert got.failed_recipients == ("a@x.example", "b@x.example")


def test_a_report_part_of_garbage_falls_back_to_the_bounce_text():
    got = classify(parse(_report("\x00\x01 ::: ;;; \n\t\t\nAction\n",
                                 text="<lost@x.example>: user unknown\n")), own=OWN)
    assert (got.kind, got.failed_recipients) == (BOUNCE, ("lost@x.example",))


def test_original_ids_fall_back_to_the_bounces_in_reply_to():
    got = classify(parse(_report("Final-Recipient: rfc822; a@x.example\nAction: failed\n",
                                 extra=f"In-Reply-To: <{RECEIPT}>\n")))
    assert got.original_ids == (RECEIPT,)


# -- broken and huge input -------------------------------------------------------------------------

def _parsed(raw: bytes):
    try:
        return parse(raw)
    except ParseError:
        return None


def _check_invariants(got) -> None:
    assert got.kind in (MESSAGE, AUTO_REPLY, BOUNCE)
    if got.kind is not MESSAGE:
        assert got.automatic and got.no_reply_reason
    if got.kind is not BOUNCE:
        assert (got.failed_recipients, got.delay_only, got.original_ids) == ((), False, ())
    if got.delay_only:
        assert got.failed_recipients == ()
    assert len(got.failed_recipients) <= MAX_RECIPIENTS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sample=st.sampled_from(samples.ALL), cut=st.integers(0, 20000),
       junk=st.binary(max_size=200), where=st.integers(0, 20000))
def test_cut_and_spliced_samples_never_crash_the_classifier(sample, cut, junk, where):
    raw = sample()[:max(cut, 1)]
    raw = raw[:where] + junk + raw[where:]
    parsed = _parsed(raw)
    if parsed is not None:
        _check_invariants(classify(parsed, own=OWN))


@settings(max_examples=200, deadline=None)
@given(status=st.binary(max_size=3000))
def test_any_bytes_as_the_report_part_never_crash_it(status):
    raw = _report("").replace(b"Reporting-MTA: dns; mx.example.net\n\n", status)
    got = classify(parse(raw), own=OWN)
    _check_invariants(got)
    assert got.kind is BOUNCE


def _seconds(raw: bytes) -> float:
    """The best of three runs of the classifier alone (parsing is not timed)."""
    parsed = parse(raw)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        _check_invariants(classify(parsed, own=OWN))
        best = min(best, time.perf_counter() - start)
    return best


def _recipients(n: int) -> bytes:
    return _report("".join(f"Final-Recipient: rfc822; user{i}@x.example\nAction: failed\n"
                           f"Status: 5.1.1\n\n" for i in range(n)))


def _folded(n: int) -> bytes:
    return _report("Final-Recipient: rfc822; a@x.example\nAction: failed\nDiagnostic-Code: smtp;"
                   + " x\n" * n)


def _daemon_text(n: int) -> bytes:
    body = ("a" * 63 + ".") * (n // 64) + "\nMessage-ID: <" * (n // 1000)
    return message("failure notice", sender="MAILER-DAEMON@mx.example.net", body=body)


def _person_text(n: int) -> bytes:
    body = "Message-ID <x@" * (n // 14) + "@" * (n // 2) + "undeliverable " * (n // 14)
    return message("Undeliverable: help", body=body)


def test_ten_thousand_final_recipients():
    raw = _recipients(10_000)
    start = time.perf_counter()
    got = classify(parse(raw))
    assert time.perf_counter() - start < 10
    assert got.failed_recipients[:2] == ("user0@x.example", "user1@x.example")
    assert len(got.failed_recipients) == MAX_RECIPIENTS


@pytest.mark.parametrize("build", [_recipients, _folded, _daemon_text, _person_text],
                         ids=lambda build: build.__name__.strip("_"))
def test_the_classifier_is_linear(build):
    """Eight times the input may cost at most about eight times the time (quadratic would be
    64); a few tens of milliseconds on the small input keep timer noise out."""
    small = {_recipients: 2_500, _folded: 25_000}.get(build, 128 << 10)
    small_seconds = _seconds(build(small))
    large_seconds = _seconds(build(small * 8))
    assert large_seconds < 24 * max(small_seconds, 0.002)


def test_a_megabyte_of_text_in_a_bounce_is_quick():
    raw = message("Undelivered Mail Returned to Sender", sender="MAILER-DAEMON@mx.example.net",
                  body="<someone@x.example>: user unknown\n" + "z" * (1 << 20),
                  headers={"X-Failed-Recipients": "someone@x.example"})
    assert _seconds(raw) < 2
