"""Bytes of mail as text, in the charset the mail names or the one it is really written in
(spec §4.3: any charset Python knows; a wrong or unknown label falls back without loss of the raw).

Mail programs label text by the standard charset and write it in the Windows code page that
extends it: Outlook's ISO-8859-1 with curly quotes, dashes and the euro sign; Japanese Shift_JIS
and ISO-2022-JP with NEC's circled numbers and ㈱; GB2312 with GBK's characters; EUC-KR with
CP949's. Read strictly, one such byte failed the whole part, which then came out as mojibake.
Each label is read as its superset, as browsers and mail programs do (the WHATWG Encoding
Standard's reading): every byte the named charset defines means the same in it. Everything here is
linear in the size of its input.
"""

from __future__ import annotations

import codecs
import re

# codecs' name of a label -> its superset. A single-byte charset is read as the code page at
# once: the C1 controls it has at 0x80-0x9F are never meant in mail, the code page's punctuation
# always is. A multibyte one is read strictly first, and as the superset when that fails, so that
# its few characters the two map differently (Shift_JIS's wave dash) stay as the standard has them.
_INSTEAD = {"iso8859-1": "cp1252", "iso8859-9": "cp1254", "tis-620": "cp874",
            "iso8859-11": "cp874"}
_BEYOND = {"shift_jis": "cp932", "gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949",
           "big5": "big5hkscs"}
# Multibyte charsets (codecs' names): what nothing reads whole is read in them (their superset)
# with replacement characters
_MULTIBYTE = frozenset({*_BEYOND, *_BEYOND.values(), "cp950", "euc_jp", "iso2022_jp",
                        "iso2022_kr"})
# Labels under which UTF-8 is tried first: text in them that is valid UTF-8 (and not ASCII) is
# UTF-8 mislabelled, since their own accented letters never form valid UTF-8 sequences as words
# do ("DISCOVERÃ\x86" for DISCOVERÆ).
_WESTERN = {"ascii", "iso8859-1", "cp1252", "iso8859-15"}
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""",
                           re.IGNORECASE)
META_BYTES = 1024  # where an HTML document must declare its charset (HTML §4.2.5.4)


def decode_bytes(data: bytes, charset: str | None, *, utf8_first: bool = False) -> str:
    """Text from *data* in *charset* (read as its superset); mislabelled or unknown charsets
    fall back to UTF-8, then cp1252. What none reads whole is read in the named charset with
    replacement characters (a CJK text with one broken byte stays CJK), else as cp1252."""
    name = _lookup(charset)
    strict = ["utf-8"] if utf8_first or (name in _WESTERN and not data.isascii()) else []
    if name is not None:
        strict += [_INSTEAD.get(name, name), name, _BEYOND.get(name, name)]
    strict.append("utf-8")
    for candidate in dict.fromkeys(strict):
        try:
            return data.decode(candidate)
        except UnicodeError:  # UnicodeDecodeError, or a codec's own (idna's, punycode's)
            if candidate == "iso2022_jp" and (text := _iso2022jp_as_cp932(data)) is not None:
                return text
    if name in _MULTIBYTE:  # before cp1252, which reads nearly anything, and wrongly here
        return data.decode(_BEYOND.get(name, name), "replace")
    try:
        return data.decode("cp1252")
    except UnicodeError:
        return data.decode(_INSTEAD.get(name, name) if name is not None else "cp1252", "replace")


def html_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in a ``<meta>`` of its first kilobyte, if any: for
    an HTML part whose Content-Type names none. A meta that names UTF-16 or UTF-32 cannot be
    right (the meta itself was read as ASCII): UTF-8 then, as HTML has it (§4.2.5.4)."""
    found = _META_CHARSET.search(data, 0, META_BYTES)
    if found is None:
        return None
    label = found.group(1).decode("ascii")
    name = _lookup(label)
    if name is not None and name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
        return "utf-8"
    if name is None or name == "utf-7" or not _ascii_compatible(name):
        return None
    return label


def _ascii_compatible(name: str) -> bool:
    return b"charset=a".decode(name, "replace") == "charset=a"


def _lookup(charset: str | None) -> str | None:
    """codecs' name of *charset*, if it is a text encoding (not rot13, base64, zlib...)."""
    if not charset:
        return None
    try:
        info = codecs.lookup(charset.strip().strip('"').lower())
    except (LookupError, ValueError):
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B|\$\(D)")


def _iso2022jp_as_cp932(data: bytes) -> str | None:
    """ISO-2022-JP as Windows writes it (CP50220: with NEC's and IBM's extensions, which none
    of Python's ISO-2022-JP codecs know), read by turning its JIS X 0208 pairs into the
    Shift_JIS pairs of cp932; None when it is not that either (JIS X 0212, broken escapes)."""
    out = bytearray()
    mode = b"(B"
    at = 0
    for escape in _ESCAPE.finditer(data):
        if not _convert(data[at:escape.start()], mode, out):
            return None
        mode, at = escape.group(1), escape.end()
    if not _convert(data[at:], mode, out):
        return None
    try:
        return out.decode("cp932")
    except UnicodeDecodeError:
        return None


def _convert(chunk: bytes, mode: bytes, out: bytearray) -> bool:
    """Append *chunk*, written in *mode* (the designation of its escape sequence), as cp932."""
    if b"\x1b" in chunk or mode == b"$(D":  # an escape of no ISO-2022-JP, or JIS X 0212
        return False
    if mode in (b"(B", b"(J"):
        out += chunk
    elif mode == b"(I":  # half-width katakana
        out += bytes(b + 0x80 if 0x21 <= b <= 0x5F else b for b in chunk)
    else:  # $@ or $B: JIS X 0208 pairs, with line ends left as they are
        for line in chunk.splitlines(keepends=True):
            body = line.rstrip(b"\r\n")
            if len(body) % 2:
                return False
            for first, second in zip(body[::2], body[1::2], strict=True):
                if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
                    return False
                out += _sjis_pair(first, second)
            out += line[len(body):]
    return True


def _sjis_pair(first: int, second: int) -> bytes:
    """The Shift_JIS bytes of the JIS X 0208 pair (*first*, *second*)."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    if first % 2:
        trail = second + (0x1F if second <= 0x5F else 0x20)
    else:
        trail = second + 0x7E
    return bytes((lead, trail))
