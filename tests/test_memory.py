"""Memory (issue 7): a fetch holds a bounded amount of mail at a time, however many messages
wait, and a large message only a few times over. Measured as the peak memory of the real command
line with its parse worker (tests/proc.py), over IMAP and POP3 (the benchmark has the figures;
these are loose bounds against regressions)."""

from __future__ import annotations

import random

import pytest

from tests.mails import message
from tests.proc import helpdesk_fetch, measured, usage

MiB = 1024 * 1024


def peak_rss(config, tmp_path) -> float:
    report = tmp_path / "usage"
    result = helpdesk_fetch("fetch", config=config, wrapper=measured(report))
    assert result.returncode == 0, result.stderr.decode()
    return usage(report).max_rss_mb


def reports(count: int, rng: random.Random) -> list[bytes]:
    """Messages of ~55 KB: a little text and a 40 KB attachment."""
    return [message(f"Report {i}",
                    attachments=[("r.pdf", "application/pdf", rng.randbytes(40_000))])
            for i in range(count)]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_memory_does_not_grow_with_the_mailbox(protocol, dovecot, mail_user, write_config,
                                               tmp_path):
    rng = random.Random(7)
    peaks = {}
    for count in (40, 400):  # 2 MB and 22 MB of mail
        user = f"{mail_user}-{count}"
        dovecot.append(user, reports(count, rng))
        config = write_config([dovecot.account("box", user, protocol=protocol)],
                              settings={"database": f"sqlite:///{tmp_path}/{count}.db"})
        peaks[count] = peak_rss(config, tmp_path)
        assert dovecot.messages(user) == []

    assert peaks[400] - peaks[40] < 10, peaks


def test_memory_does_not_grow_with_messages_sent_whole_to_the_parse_worker(
        dovecot, mail_user, write_config, tmp_path):
    """Messages just under budget.WHOLE_BELOW go to the parse worker whole, and their
    attachments come back decoded: still only a few at a time, however many wait."""
    rng = random.Random(9)
    peaks = {}
    for count in (8, 48):  # 8 and 45 MB of mail
        user = f"{mail_user}-{count}"
        mail = [message(f"Scan {i}", attachments=[("s.pdf", "application/pdf",
                                                   rng.randbytes(700_000))]) for i in range(count)]
        assert all(900_000 < len(raw) < MiB for raw in mail)
        dovecot.append(user, mail)
        config = write_config([dovecot.account("box", user)],
                              settings={"database": f"sqlite:///{tmp_path}/{count}.db"})
        peaks[count] = peak_rss(config, tmp_path)
        assert dovecot.messages(user) == []

    assert peaks[48] - peaks[8] < 10, peaks


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_large_message_is_held_only_a_few_times(protocol, dovecot, mail_user, write_config,
                                                  tmp_path):
    rng = random.Random(25)
    big = message("The scan", attachments=[("scan.tif", "image/tiff", rng.randbytes(15_000_000))])
    config = write_config([dovecot.account("box", mail_user, protocol=protocol)])
    dovecot.append(mail_user, reports(1, rng))
    one_small = peak_rss(config, tmp_path)  # the same modules loaded, almost no mail held
    dovecot.append(mail_user, [big])

    grown = peak_rss(config, tmp_path) - one_small

    assert dovecot.messages(mail_user) == []
    assert grown < 3 * len(big) / MiB, f"{grown:.0f} MB more for a {len(big) / MiB:.0f} MB message"
