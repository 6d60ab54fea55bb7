"""Text in the charset mail names, or in the one it is really written in (message/charsets.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk_fetch.message.charsets import decode_bytes, html_charset
from helpdesk_fetch.message.parse import parse


@pytest.mark.parametrize(("text", "written_in", "label"), [
    # Outlook: ISO-8859-1 named, Windows-1252's quotes, dash and euro sign written
    ("It’s “broken” – 5 € a month", "cp1252", "iso-8859-1"),
    ("Türkçe “tırnak”", "cp1254", "iso-8859-9"),
    # Japanese signatures: NEC's circled numbers and ㈱ in Shift_JIS
    ("①確認済み ㈱テスト", "cp932", "shift_jis"),
    ("鍶 简体字", "gbk", "gb2312"),
    ("똠방각하", "cp949", "euc-kr"),
    ("ks_c_5601 똠", "cp949", "ks_c_5601-1987"),
])
def test_a_label_is_read_as_the_code_page_that_extends_it(text, written_in, label):
    assert decode_bytes(text.encode(written_in), label) == text


def test_iso_2022_jp_with_nec_characters_is_read_as_windows_writes_it():
    """CP50220: JIS X 0208's row 13 holds NEC's ①②; none of Python's ISO-2022-JP codecs know it."""
    data = b"\x1b$B-!-\"\x1b(B abc \x1b$B$\"$$\x1b(I12\x1b(B\r\n\x1b$B$&\x1b(B"
    assert decode_bytes(data, "iso-2022-jp") == "①② abc あいｱｲ\r\nう"


def test_iso_2022_jp_that_is_none_falls_back_without_a_crash():
    for data in (b"\x1b$(D!!\x1b(B", b"\x1b$B$\x1b(B", b"\x1b$B\x7f\x7f\x1b(B"):
        assert isinstance(decode_bytes(data, "iso-2022-jp"), str)


def test_strict_text_keeps_the_standards_own_characters():
    """Valid Shift_JIS is read as Shift_JIS: its wave dash stays U+301C (cp932 has U+FF5E)."""
    assert decode_bytes("〜".encode("shift_jis"), "shift_jis") == "〜"
    assert decode_bytes("Grüße aus Köln".encode("latin-1"), "iso-8859-1") == "Grüße aus Köln"
    assert decode_bytes(b"\x81 \xe9", "iso-8859-1") == "\x81 é"  # not in cp1252: Latin-1 then


def test_utf8_labelled_western_is_read_as_utf8():
    assert decode_bytes("DISCOVERÆ".encode(), "iso-8859-1") == "DISCOVERÆ"
    assert decode_bytes("naïve “x”".encode(), "windows-1252") == "naïve “x”"
    assert decode_bytes(b"plain", "us-ascii") == "plain"


@given(st.text(alphabet=st.characters(min_codepoint=0xA0, max_codepoint=0xFF), min_size=1,
               max_size=30).filter(lambda t: not t.encode("latin-1").isascii()))
def test_latin1_that_is_no_utf8_is_read_as_latin1(text):
    """Latin-1 is valid UTF-8 only where each accented capital is followed by a symbol (Â©):
    all other Latin-1 (any word with a small accented letter) is read as Latin-1."""
    data = text.encode("latin-1")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert decode_bytes(data, "iso-8859-1") == text


def test_html_declares_its_charset_in_a_meta():
    assert html_charset(b'<html><head><meta http-equiv="Content-Type" '
                        b'content="text/html; charset=Shift_JIS"></head>') == "Shift_JIS"
    assert html_charset(b"<meta charset='utf-8'>") == "utf-8"
    assert html_charset(b" " * 2000 + b"<meta charset=utf-8>") is None  # past the first KB
    assert html_charset(b"<p>charset=utf-8</p>") is None


def test_an_html_part_without_a_charset_is_read_in_its_meta_charset():
    html = '<html><head><meta charset="shift_jis"></head><body>お問い合わせ①</body></html>'
    raw = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + html.encode("cp932") + b"\r\n")
    parsed = parse(raw)
    assert "お問い合わせ①" in (parsed.html or "") and "お問い合わせ①" in parsed.text


def test_a_subject_in_a_mislabelled_encoded_word_is_read():
    raw = (b"From: a@example.org\r\nTo: b@example.org\r\n"
           b"Subject: =?iso-8859-1?q?It=92s_=93urgent=94?=\r\n\r\nbody\r\n")
    assert parse(raw).subject == "It’s “urgent”"


@pytest.mark.parametrize("label", ["rot13", "base64", "hex", "zlib", "bz2", "uu", "quopri",
                                   "undefined", "idna", "punycode"])
def test_a_codec_that_is_no_charset_is_an_unknown_label(label):
    """Anyone can write `=?rot13?q?Jane?=`: Python's codecs include bytes-to-bytes ones, which
    raise on decode(); the mail must still be read (spec §4.3)."""
    assert decode_bytes(b"Jane \xe9", label) == "Jane é"
    raw = (f"From: =?{label}?q?Jane?= <jane@example.com>\r\nTo: a@example.org\r\n"
           f"Subject: x\r\nContent-Type: text/plain; charset={label}\r\n\r\nbody\r\n").encode()
    parsed = parse(raw)
    assert (parsed.from_addr, parsed.text) == ("jane@example.com", "body\n")


def test_what_no_charset_reads_whole_keeps_its_own_letters():
    """A byte that is in no candidate: the named charset with a replacement character, never a
    whole part in the wrong one."""
    assert decode_bytes(b"Caf\xe9 cr\xe8me \x81", "windows-1252") == "Café crème \ufffd"
    assert decode_bytes("한국어".encode("euc_kr") + b"\xff", "euc-kr") == "한국어\ufffd"
    assert decode_bytes("日本語".encode("shift_jis") + b"\xff", "shift_jis").startswith("日本語")


def test_a_meta_charset_that_cannot_be_right_is_not_taken():
    assert html_charset(b'<meta charset="utf-16">') == "utf-8"  # HTML's own rule
    assert html_charset(b'<meta charset="UTF-32LE">') == "utf-8"
    assert html_charset(b'<meta charset="utf-7">') is None
    assert html_charset(b'<meta charset="rot13">') is None
