"""Cases about bodies: broken transfer encodings, missing, wrong and unknown charsets."""

from __future__ import annotations

import base64
import binascii
import quopri

from tests.mailset.base import b64, blob, case, ctype, entity, multipart, top

MIME = b"MIME-Version: 1.0"
TEXT = "Grüße aus dem Lager: die Lieferung 4711 ist angekommen."


# -- transfer encodings -----------------------------------------------------------------------

@case(text=TEXT)
def base64_with_junk(mid):
    """A base64 text body with characters outside the alphabet, a blank in a line and the
    final padding missing (hand-rolled encoders, mangling gateways)."""
    encoded = base64.b64encode(TEXT.encode()).rstrip(b"=")
    mangled = encoded[:20] + b"!" + encoded[20:40] + b" " + encoded[40:]
    return entity(top(mid, b"Lieferung", MIME, ctype(b"text/plain; charset=utf-8"),
                      b"Content-Transfer-Encoding: base64"), mangled)


SCAN = blob("scan", 3000, b"\xff\xd8\xff\xe0")


@case(text="scan attached", attachments=[("scan.jpg", "image/jpeg")])
def base64_truncated_attachment(mid):
    """An attachment whose base64 stops in the middle of a line and of a quantum (a download
    cut short): the part is kept with what can be decoded."""
    encoded = b64(SCAN)
    return entity(top(mid, b"Scan", MIME, ctype(b'multipart/mixed; boundary="s"')),
                  multipart(b"s", entity([ctype(b"text/plain")], b"scan attached"),
                            entity([ctype(b'image/jpeg; name="scan.jpg"'),
                                    b"Content-Transfer-Encoding: base64"],
                                   encoded[:len(encoded) // 2 + 3])))


@case(text=("café au lait", "=ZZ", "soft break joined"), not_in_text="=\r\n")
def quoted_printable_broken(mid):
    """Quoted-printable with lower-case hex, an escape that is no hex (``=ZZ``), soft line
    breaks and a lone "=" at the very end (web mailers' own encoders)."""
    return entity(top(mid, b"QP", MIME, ctype(b"text/plain; charset=iso-8859-1"),
                      b"Content-Transfer-Encoding: Quoted-Printable"),
                  b"caf=e9 au lait costs =ZZ 3 =", b"euros, soft break jo=", b"ined=")


@case(text="plain words", attachments=[])
def unknown_transfer_encodings(mid):
    """Content-Transfer-Encoding values that do not exist (``8-bit``, ``plain``, with a stray
    ";"): the body is read as it stands."""
    return entity(top(mid, b"CTE", MIME, ctype(b"text/plain; charset=us-ascii"),
                      b"Content-Transfer-Encoding: 8-bit;"), b"plain words as they stand")


NOTES = b"Printer 3 needs toner.\nPrinter 5 is fine.\n"


@case(text="notes attached", attachments=[("notes.txt", "application/octet-stream", NOTES)])
def uuencoded_attachment(mid):
    """An attachment in x-uuencode (old Eudora and Outlook versions, Usenet gateways)."""
    lines = [b"begin 644 notes.txt",
             *(binascii.b2a_uu(NOTES[i:i + 45]).rstrip(b"\n") for i in range(0, len(NOTES), 45)),
             b"`", b"end"]
    return entity(top(mid, b"Notes", MIME, ctype(b'multipart/mixed; boundary="u"')),
                  multipart(b"u", entity([ctype(b"text/plain")], b"notes attached"),
                            entity([ctype(b'application/octet-stream; name="notes.txt"'),
                                    b"Content-Transfer-Encoding: x-uuencode"], *lines)))


RAW = bytes(b for b in blob("binary", 2000) if b not in b"\x00\r\n")


@case(attachments=[("data.bin", "application/octet-stream", RAW)])
def binary_transfer_encoding(mid):
    """``Content-Transfer-Encoding: binary``: 8-bit bytes straight in the part (allowed only
    with BINARYMIME, sent by scanners and scripts anyway)."""
    return entity(top(mid, b"Binary", MIME, ctype(b'multipart/mixed; boundary="bin"')),
                  multipart(b"bin", entity([ctype(b"text/plain")], b"raw data"),
                            entity([ctype(b"application/octet-stream"),
                                    b'Content-Disposition: attachment; filename="data.bin"',
                                    b"Content-Transfer-Encoding: binary"], RAW)))


# -- charsets ---------------------------------------------------------------------------------

@case(text="Grüße aus dem Lager")
def charset_missing_utf8(mid):
    """8-bit UTF-8 text with no charset parameter (scripts, cron jobs, curl)."""
    return entity(top(mid, b"No charset", MIME, ctype(b"text/plain")), TEXT.encode())


@case(text="Grüße aus dem Lager")
def charset_missing_latin1(mid):
    """8-bit Latin-1 text and no Content-Type at all (old Windows tools)."""
    return entity(top(mid, b"No charset"), TEXT.encode("latin-1"))


@case(text="naïve café")
def charset_mislabelled(mid):
    """UTF-8 bytes labelled us-ascii (a mailer's default left unchanged)."""
    return entity(top(mid, b"Labelled ASCII", MIME, ctype(b"text/plain; charset=us-ascii")),
                  "A naïve café.".encode())


@case(text="안녕하세요")
def charset_ks_c_5601(mid):
    """Korean Outlook's ``ks_c_5601-1987`` (which means cp949), in base64."""
    return entity(top(mid, b"Korean", MIME, ctype(b"text/plain; charset=ks_c_5601-1987"),
                      b"Content-Transfer-Encoding: base64"),
                  b64("안녕하세요, 프린터가 고장났습니다.".encode("cp949")))


@case(text="Принтер не печатает")
def charset_windows_1251_qp(mid):
    """Russian in windows-1251, quoted-printable, with a quoted charset name in capitals."""
    return entity(top(mid, b"Printer", MIME, ctype(b'text/plain; charset="WINDOWS-1251"'),
                      b"Content-Transfer-Encoding: quoted-printable"),
                  quopri.encodestring("Принтер не печатает.".encode("cp1251")))


@case(text="Ein Drucker kostet 300 €", attachments=[])
def charset_iso_8859_15(mid):
    """ISO-8859-15, where 0xA4 is the euro sign (Latin-1 has ¤ there)."""
    return entity(top(mid, b"Preis", MIME, ctype(b"text/plain; charset=ISO-8859-15"),
                      b"Content-Transfer-Encoding: 8bit"),
                  "Ein Drucker kostet 300 €.".encode("iso-8859-15"))


@case(text="tschüss", attachments=[])
def charset_empty_and_aliased(mid):
    """``charset=""`` on one part, ``charset=utf8`` (no hyphen) on the next."""
    return entity(top(mid, b"Aliases", MIME, ctype(b'multipart/alternative; boundary="al"')),
                  multipart(b"al", entity([ctype(b'text/plain; charset=""')], b"hello"),
                            entity([ctype(b"text/plain; charset=utf8")], "tschüss".encode())))

