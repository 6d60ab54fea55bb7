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
