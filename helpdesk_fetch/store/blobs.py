"""Raw messages as stored: zlib, in pieces, at a level chosen for speed (spec §4.2: the raw
message is kept, compressed is fine)."""

from __future__ import annotations

import zlib


def compress(raw: bytes) -> bytes:
    """*raw* as stored (see ``compress_pieces``)."""
    return b"".join(compress_pieces(raw))


def compress_pieces(raw: bytes, piece: int = 1024 * 1024) -> list[bytes]:
    """*raw* compressed with zlib, in pieces: the output is never in memory twice, as
    ``zlib.compress`` has it while it assembles its result; sql.Insert writes the pieces.

    Level 1: a third less time than the default 6, copies ~5% larger. A large message that is
    mostly an attachment compressed already (an image, a PDF, an archive: base64 of random-looking
    bytes) is Huffman-coded only: the same size (3/4, the base64 overhead) in less than half the
    time, as string matching finds nothing there."""
    z = zlib.compressobj(1, zlib.DEFLATED, 15, 8, _strategy(raw))
    view = memoryview(raw)
    pieces = [z.compress(view[start:start + piece]) for start in range(0, len(view), piece)]
    pieces.append(z.flush())
    return [p for p in pieces if p]


def _strategy(raw: bytes) -> int:
    if len(raw) < 64 * 1024:
        return zlib.Z_DEFAULT_STRATEGY
    sample = raw[len(raw) // 2:len(raw) // 2 + 16384]  # in a large message: its attachment
    if len(zlib.compress(sample, 1)) > 0.7 * len(sample):
        return zlib.Z_HUFFMAN_ONLY
    return zlib.Z_DEFAULT_STRATEGY


def decompress(data: bytes) -> bytes:
    return zlib.decompress(data)
