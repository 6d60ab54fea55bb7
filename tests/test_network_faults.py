"""Broken networks (spec §4.6): a TCP proxy of the tests' own (tests/proxy.py) sits between
`helpdesk-fetch fetch` and Dovecot and drops the line after N bytes, right after EXPUNGE or QUIT
is sent, stalls, or trickles. The account is reported failed, the others proceed, the next run
completes, and nothing is lost or doubled. A stalled server is stopped by timeout_seconds; a
trickling one, which every per-read timeout lets through, by run_budget_seconds."""

from __future__ import annotations

import pytest

from tests.chaos import (
    assert_exactly_once,
    assert_nothing_lost,
    fetch,
    mixed_load,
    stored,
)
from tests.mails import message
from tests.proxy import Fault, FaultProxy
from tests.servers import free_port

pytestmark = pytest.mark.slow  # the reliability suite: pytest -m slow


@pytest.fixture
def proxy_to(dovecot):
    """proxy_to("imap" | "pop3"): a FaultProxy in front of Dovecot's plain-text port."""
    made: list[FaultProxy] = []

    def make(protocol: str) -> FaultProxy:
        made.append(FaultProxy(dovecot.ports[protocol]))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()


@pytest.fixture
def two_accounts(dovecot, mail_user, write_config, proxy_to, tmp_path):
    """A "steady" account (direct, IMAPS, processed first) and a "flaky" one behind a proxy,
    each with mail waiting. Returns a function of (protocol, timeout, **settings) -> Setup;
    *timeout* is the flaky account's timeout_seconds (the steady one keeps the default, so
    that a loaded machine cannot make it fail)."""

    class Setup:
        def __init__(self, protocol: str, timeout: int, settings: dict) -> None:
            self.protocol = protocol
            self.proxy = proxy_to(protocol)
            self.flaky_user, self.steady_user = f"{mail_user}-flaky", f"{mail_user}-steady"
            self.flaky = mixed_load(self.flaky_user, good=8, bad=False)
            self.steady = mixed_load(self.steady_user, good=3, bad=False)
            dovecot.append(self.flaky_user, self.flaky.all)
            dovecot.append(self.steady_user, self.steady.all)
            self.config = write_config([
                dovecot.account("steady", self.steady_user),
                dovecot.account("flaky", self.flaky_user, protocol=protocol, security="none",
                                port=self.proxy.port, timeout_seconds=timeout)],
                settings=settings)
            self.database = tmp_path / "helpdesk.db"

        def run_with(self, fault: Fault):
            self.proxy.fault = fault
            result = fetch(self.config)
            self.proxy.fault = None
            assert self.proxy.fired >= 1, f"the fault never happened: {result.stderr}"
            return result

        def check_failed_run(self, result, *expected: str) -> None:
            """flaky failed (exit 1, said why), steady done, nothing of flaky lost."""
            assert result.returncode == 1, result.stderr
            assert "account 'flaky'" in result.stderr, result.stderr
            for text in expected:
                assert text in result.stderr, result.stderr
            assert "account 'steady'" not in result.stderr
            assert_exactly_once(self.steady, self.database, dovecot.messages(self.steady_user),
                                [], "steady", account="steady")
            assert_nothing_lost(self.flaky, self.database,
                                dovecot.messages(self.flaky_user, include_deleted=True),
                                "flaky", account="flaky")

        def check_next_run_completes(self) -> None:
            result = fetch(self.config)
            assert result.returncode == 0, result.stderr
            assert_exactly_once(self.flaky, self.database,
                                dovecot.messages(self.flaky_user, include_deleted=True), [],
                                "flaky", account="flaky")
            # each message once; of a mail and its copy (tests/chaos.py) one
            assert sum(stored(self.database).values()) == (len(self.flaky.groups())
                                                           + len(self.steady.groups()))

    return lambda protocol, timeout, **settings: Setup(protocol, timeout, settings)


# Byte counts that cut the session in the greeting, around login/select/listing, and in the
# middle of the message bodies (8 messages of ~1.5 kB).
@pytest.mark.parametrize(("protocol", "after"), [
    ("imap", 20), ("imap", 900), ("imap", 7000), ("pop3", 10), ("pop3", 150), ("pop3", 4000)])
def test_line_dropped_after_n_bytes(two_accounts, protocol, after):
    setup = two_accounts(protocol, timeout=10)

    result = setup.run_with(Fault(drop_after_bytes=after))

    setup.check_failed_run(result, "connection lost")
    setup.check_next_run_completes()


@pytest.mark.parametrize(("protocol", "command"), [("imap", b"EXPUNGE"), ("pop3", b"QUIT")])
def test_line_dropped_right_after_the_deleting_command(two_accounts, dovecot, protocol,
                                                       command):
    """The server carries the command out, the client never hears so: it must take the account
    for failed, yet everything it deleted was stored."""
    setup = two_accounts(protocol, timeout=10)

    result = setup.run_with(Fault(drop_after_sent=command))

    setup.check_failed_run(result, "connection lost")
    assert dovecot.messages(setup.flaky_user, include_deleted=True) == []
    setup.check_next_run_completes()


@pytest.mark.parametrize(("protocol", "after"), [("imap", 900), ("pop3", 3000)])
def test_stalled_server_times_out(two_accounts, protocol, after):
    setup = two_accounts(protocol, timeout=1)

    result = setup.run_with(Fault(stall_after_bytes=after))

    setup.check_failed_run(result, "no answer within 1 s")
    setup.check_next_run_completes()


# A byte every 0.2 s never trips a 1 s read timeout; only the run's budget can end this. The
# budget leaves the steady account, processed first, time even on a loaded machine.
@pytest.mark.parametrize(("protocol", "after"), [("imap", 0), ("imap", 5000), ("pop3", 3000)],
                         ids=["imap-greeting", "imap-bodies", "pop3-bodies"])
def test_trickling_server_is_cut_off_by_the_run_budget(two_accounts, protocol, after):
    setup = two_accounts(protocol, timeout=1, run_budget_seconds=5)

    result = setup.run_with(Fault(trickle_after_bytes=after, trickle_delay=0.2))

    setup.check_failed_run(result, "run_budget_seconds")
    setup.check_next_run_completes()


def test_nothing_listening(dovecot, mail_user, write_config):
    dovecot.append(mail_user, [message("Still processed")])
    config = write_config([dovecot.account("gone", "nobody", port=free_port()),
                           dovecot.account("steady", mail_user)])

    result = fetch(config)

    assert result.returncode == 1
    assert "account 'gone'" in result.stderr and "connection refused" in result.stderr
    assert "is the server running" in result.stderr
    assert dovecot.messages(mail_user) == []


def test_a_host_name_nobody_knows(dovecot, mail_user, write_config):
    """A typo in host (.invalid never resolves, RFC 2606): named, with what to check."""
    config = write_config([dict(dovecot.account("typo", mail_user), host="mail.example.invalid")])

    result = fetch(config)

    assert result.returncode == 1
    assert ("account 'typo': connecting to mail.example.invalid:" in result.stderr
            and ": cannot find the address of 'mail.example.invalid' (" in result.stderr
            and "); is host spelt right, and does this machine's DNS answer?" in result.stderr)
