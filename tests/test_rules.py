"""The ticket rules of spec §5 as plain functions."""

from __future__ import annotations

import datetime as dt

import pytest

from helpdesk_fetch.config import Resource, Settings
from helpdesk_fetch.store.models import Ticket
from helpdesk_fetch.tickets import rules

NOW = dt.datetime(2026, 11, 28, 12, 0)
TEAM = Resource("it-support", ("alice@example.com",), ("alice@example.com",))


def ticket(status="new", closed_days_ago=None) -> Ticket:
    closed = NOW - dt.timedelta(days=closed_days_ago) if closed_days_ago is not None else None
    return Ticket(number="1001", status=status, closed_at=closed)


def decide(t, sender="carol@example.org", **settings):
    return rules.decide(t, sender, resource=TEAM, settings=Settings(**settings), now=NOW)


def test_no_ticket_opens_one():
    d = decide(None)
    assert (d.action, d.status, d.rearm) == ("new", "new", True)
    assert d.automails == ("new_ticket", "new_ticket_resource")


def test_reply_to_an_open_ticket():
    d = decide(ticket("in_progress"))
    assert (d.action, d.status, d.rearm, d.automails) == ("append", "confirmed_unread", True,
                                                          ("customer_reply",))


def test_member_reply_with_and_without_the_switch():
    on = decide(ticket("in_progress"), "ALICE@example.com", no_status_change_from_members=True)
    off = decide(ticket("in_progress"), "alice@example.com")
    assert (on.action, on.status, on.rearm) == ("append", None, False)
    assert (off.status, off.rearm) == ("confirmed_unread", True)


@pytest.mark.parametrize("days_ago, window, action", [
    (3, 14, "reopen"), (13.99, 14, "reopen"), (14, 14, "reopen"), (14.01, 14, "reject"),
    (20, 14, "reject"), (0.1, 0, "reject")])
def test_closed_ticket_reactivation_window(days_ago, window, action):
    d = decide(ticket("closed", days_ago), "alice@example.com", reactivation_days=window,
               no_status_change_from_members=True)
    assert d.action == action
    if action == "reopen":
        assert (d.status, d.rearm, d.automails) == ("confirmed_unread", True,
                                                    ("customer_reply",))
    else:
        assert (d.status, d.rearm, d.automails) == (None, False, ("ticket_closed",))


def test_an_unverified_member_is_a_customer():
    d = decide(ticket("in_progress"), "alice@example.com", no_status_change_from_members=True)
    unverified = rules.decide(ticket("in_progress"), "alice@example.com", resource=TEAM,
                              settings=Settings(no_status_change_from_members=True), now=NOW,
                              sender_verified=False)
    assert d.status is None and unverified.status == "confirmed_unread"


def test_escalation_due():
    assert rules.escalation_due(Settings(escalation_hours=8), NOW) == NOW + dt.timedelta(hours=8)


def test_is_member_is_case_insensitive_and_needs_a_resource():
    assert rules.is_member("Alice@Example.com", TEAM)
    assert not rules.is_member("mallory@example.com", TEAM)
    assert not rules.is_member("alice@example.com", None)
