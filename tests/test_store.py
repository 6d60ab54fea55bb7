"""The stored copy of a message (write.py): the exact bytes back, compressed where it pays."""

from __future__ import annotations

import random

import pytest

from helpdesk_fetch.store import blobs
from tests.mails import message

TEXT = message("Printer broken", body="The printer on floor 3 does not print.\n" * 3000)
SCAN = message("Scan", attachments=[("scan.png", "image/png", random.Random(3).randbytes(300_000))])


@pytest.mark.parametrize("raw", [b"", b"x", TEXT, SCAN], ids=["empty", "one byte", "text", "scan"])
def test_the_stored_copy_gives_back_the_exact_bytes(raw):
    assert blobs.decompress(blobs.compress(raw)) == raw
    assert blobs.decompress(b"".join(blobs.compress_pieces(raw, piece=4096))) == raw


def test_text_compresses_well_and_a_compressed_attachment_loses_only_its_base64_overhead():
    assert len(blobs.compress(TEXT)) < 0.05 * len(TEXT)
    assert len(blobs.compress(SCAN)) < 0.78 * len(SCAN)  # Huffman coding alone: about 3/4


def test_a_body_is_the_same_whatever_its_line_ends_or_its_header():
    """Two copies of one mail (spec §4.1) differ in their headers (Delivered-To, Received), and,
    through a Maildir, in their line ends: the same body. A list's footer is another one."""
    from helpdesk_fetch.store.write import same_body

    raw = message("VPN down", body="It is down.\nSince 9:00.\n")
    assert same_body(b"Delivered-To: helpdesk@example.com\r\n" + raw,
                     (b"Delivered-To: support@example.com\r\n" + raw).replace(b"\r\n", b"\n"))
    assert not same_body(raw, raw.replace(b"Since 9:00.", b"Since 9:00.\r\n-- \r\nThe list"))
    assert not same_body(raw, raw.replace(b"Since 9:00.", b"Since 9:01."))
    assert same_body(b"Subject: no body", b"Subject: no body either")
