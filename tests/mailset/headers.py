"""Cases about header fields: raw 8-bit bytes, encoded words, addresses, dates, sizes."""

from __future__ import annotations

import base64
import datetime as dt

from tests.mailset.base import CRLF, blob, case, ctype, entity, top


def word(charset: str, data: bytes) -> bytes:
    """One RFC 2047 encoded word in the B encoding."""
    return b"=?%s?B?%s?=" % (charset.encode(), base64.b64encode(data))


# -- 8-bit bytes in headers -------------------------------------------------------------------

@case(subject="Drucker im Büro defekt", from_name="Jürgen Weiß", from_addr="j.weiss@example.de",
      text="Toner", date=dt.datetime(2024, 3, 5, 9, 15))
def latin1_header_undeclared(mid):
    """Latin-1 bytes straight in Subject and From and no charset anywhere: old German clients
    and web forms that never heard of RFC 2047."""
    return entity(top(mid, "Drucker im Büro defekt".encode("latin-1"),
                      sender="Jürgen Weiß <j.weiss@example.de>".encode("latin-1")),
                  b"Der Toner ist leer.")


@case(subject="Réunion déplacée à jeudi", from_name="Amélie Dubois", text="Salle B à 14h")
def latin1_header_declared(mid):
    """Latin-1 bytes in the headers; only the body's Content-Type says iso-8859-1, which is
    what such a client meant for the headers too."""
    return entity(top(mid, "Réunion déplacée à jeudi".encode("latin-1"),
                      ctype(b"text/plain; charset=iso-8859-1"),
                      b"Content-Transfer-Encoding: 8bit",
                      sender="Amélie Dubois <amelie@example.fr>".encode("latin-1")),
                  "Salle B à 14h.".encode("latin-1"))


@case(subject="“Urgent” – invoice € 120 overdue", from_name="Zoë O’Brien", text="Dear team")
def cp1252_header_undeclared(mid):
    """Windows-1252 smart quotes, en dash and euro sign as raw bytes (Outlook's "Send as
    plain text" through a gateway that strips the encoding)."""
    return entity(top(mid, "“Urgent” – invoice € 120 overdue".encode("cp1252"),
                      sender="Zoë O’Brien <zoe@example.ie>".encode("cp1252")),
                  b"Dear team, please see the overdue invoice.")


@case(subject="表計算の請求書について", from_addr="tanaka@example.jp",
      text="請求書を添付します")
def shift_jis_header_declared(mid):
    """Raw Shift-JIS in the Subject (Japanese phones and old mailers), declared only by the
    body's charset; the first character's second byte is 0x5C, a backslash in ASCII."""
    return entity(top(mid, "表計算の請求書について".encode("shift_jis"),
                      ctype(b"text/plain; charset=Shift_JIS"), b"Content-Transfer-Encoding: 8bit",
                      sender=b"tanaka@example.jp"),
                  "請求書を添付します。".encode("shift_jis"))


@case(subject_has="Re: ", from_addr="sato@example.jp", text="order 4711")
def shift_jis_header_undeclared(mid):
    """Raw Shift-JIS in the Subject and no charset anywhere: nothing says what it is, so the
    subject may come out garbled, but the sender and the body must not be lost."""
    return entity(top(mid, b"Re: " + "注文の確認".encode("shift_jis"), sender=b"sato@example.jp"),
                  b"Please confirm order 4711.")


@case(subject="Счёт на оплату N 17", from_name="Ольга", text="Счёт во вложении")
def koi8r_header_declared(mid):
    """Raw KOI8-R in Subject and From, declared by the body's charset (Russian mail of the
    1990s and the mailers still configured that way)."""
    return entity(top(mid, "Счёт на оплату N 17".encode("koi8_r"),
                      ctype(b"text/plain; charset=koi8-r"), b"Content-Transfer-Encoding: 8bit",
                      sender="Ольга <olga@example.ru>".encode("koi8_r")),
                  "Счёт во вложении.".encode("koi8_r"))


@case(subject_has="17", from_addr="olga@example.ru", text="invoice is attached")
def koi8r_header_undeclared(mid):
    """Raw KOI8-R in the Subject and no charset at all: garbled at worst, never lost."""
    return entity(top(mid, "Счёт 17".encode("koi8_r"), sender=b"olga@example.ru"),
                  b"The invoice is attached.")


@case(name="8bit-headers", subject="case 8bit-headers Grüße", from_name="Jürgen",
      to=["m@example.org"])
def eight_bit_headers(mid):
    """UTF-8 in one header, Latin-1 in the next: mail that passed through two broken hands."""
    return (b"From: J\xc3\xbcrgen <j@example.org>\r\nSubject: case 8bit-headers Gr\xfc\xdfe\r\n"
            b"To: M\xfcller <m@example.org>\r\n" + mid + b"\r\n\r\nbody\r\n")


@case(subject="Bestellung für Übersee ✓", from_addr="jörg@bücher.example",
      from_name="Jörg Müller", to=["anfragen@bücher.example"], text="Grüße aus Köln")
def utf8_headers_rfc6532(mid):
    """RFC 6532: UTF-8 straight in the headers, addresses included (SMTPUTF8 mail)."""
    return entity(top(mid, "Bestellung für Übersee ✓".encode(),
                      ctype(b"text/plain; charset=utf-8"), b"Content-Transfer-Encoding: 8bit",
                      sender="Jörg Müller <jörg@bücher.example>".encode(),
                      to="anfragen@bücher.example".encode()),
                  "Grüße aus Köln".encode())


# -- encoded words (RFC 2047) and parameters (RFC 2231) ---------------------------------------

@case(name="rfc2047-split", subject="case rfc2047-split Grüße und Köln ist schön")
def rfc2047_split_q(mid):
    """An encoded word split in the middle of a UTF-8 character (ü is C3 BC), then two
    Latin-1 words folded with a tab: long subjects from mass mailers."""
    return (b"From: a@example.org\r\nSubject: case rfc2047-split =?utf-8?Q?Gr=C3?=\r\n"
            b" =?utf-8?Q?=BC=C3=9Fe?= und\r\n =?iso-8859-1?B?S/ZsbiBpc3Qg?=\r\n"
            b"\t=?iso-8859-1?B?c2No9m4=?=\r\n" + mid + b"\r\n\r\nbody\r\n")


@case(subject="Überweisung für März erhalten", from_name="Björn Åström")
def rfc2047_split_base64(mid):
    """Base64 encoded words cut at a fixed byte count, one of them inside "ä" (C3 A4)."""
    subject = "Überweisung für März erhalten".encode()
    cut = subject.index("ä".encode()) + 1
    name = "Björn Åström".encode()
    return entity(top(mid, word("UTF-8", subject[:cut]) + CRLF + b" "
                      + word("UTF-8", subject[cut:]),
                      sender=word("utf-8", name[:3]) + b" " + word("utf-8", name[3:])
                      + b" <bjorn@example.se>"),
                  b"Thanks.")


@case(subject="会議室の予約について", text="会議室")
def rfc2047_iso_2022_jp_split(mid):
    """An ISO-2022-JP subject cut into encoded words in the middle of a two-byte character,
    escape sequences and all (Japanese mailers folding at a byte count)."""
    subject = "会議室の予約について".encode("iso-2022-jp")
    half = len(subject) // 2 + 1
    body = "会議室を予約しました。".encode("iso-2022-jp")
    return entity(top(mid, word("ISO-2022-JP", subject[:half]) + CRLF + b" "
                      + word("ISO-2022-JP", subject[half:]),
                      ctype(b"text/plain; charset=ISO-2022-JP"),
                      b"Content-Transfer-Encoding: 7bit"),
                  body)


@case(name="unknown-charset", subject="case unknown-charset café", text="café crème")
def unknown_charset(mid):
    """A charset name no one knows, in an encoded word and on the body (spam kits and home-made
    mailers): read as the bytes most likely are."""
    return (b"From: a@example.org\r\nSubject: case unknown-charset =?x-unknown-42?Q?caf=E9?=\r\n"
            b'Content-Type: text/plain; charset="x-unknown-42"\r\nContent-Transfer-Encoding: 8bit'
            b"\r\n" + mid + b"\r\n\r\ncaf\xe9 cr\xe8me\r\n")


@case(subject_has=("Offer", "TEST"), text="Offer inside")
def rfc2047_malformed(mid):
    """Encoded words that are broken: a charset called NONE with bad padding, one never closed,
    one with an unknown encoding letter (seen in spam and in broken web mailers)."""
    return entity(top(mid, b"=?NONE?B?VEVTVA=?= Offer =?utf-8?Q?never_closed =?utf-8?X?abc?="),
                  b"Offer inside.")


@case(from_name="Müller, Hans", from_addr="hans.mueller@example.de", subject="Rückruf")
def rfc2047_inside_quotes(mid):
    """An encoded word inside a quoted display name, with an encoded comma: forbidden by
    RFC 2047 §5, written by many mailers anyway."""
    return entity(top(mid, b"=?utf-8?Q?R=C3=BCckruf?=",
                      sender=b'"=?utf-8?Q?M=C3=BCller=2C_Hans?=" <hans.mueller@example.de>'),
                  b"Bitte um Rueckruf.")


@case(attachments=[("Rechnung März 2024.pdf", "application/pdf")], text="Anbei die Rechnung")
def rfc2231_split_mid_character(mid):
    """An RFC 2231 file name continued over two parameters, cut inside "ä" (%C3 %A4), with a
    language tag on the first piece."""
    boundary = b"rfc2231"
    return entity(
        top(mid, b"Rechnung", b"MIME-Version: 1.0",
            ctype(b'multipart/mixed; boundary="' + boundary + b'"')),
        b"--rfc2231", ctype(b"text/plain; charset=us-ascii"), b"", b"Anbei die Rechnung.",
        b"--rfc2231", ctype(b"application/pdf"),
        b"Content-Disposition: attachment;",
        b" filename*0*=utf-8'de'Rechnung%20M%C3;",
        b" filename*1*=%A4rz%202024.pdf",
        b"Content-Transfer-Encoding: base64", b"",
        base64.b64encode(blob("rechnung", 300, b"%PDF-1.4\n")),
        b"--rfc2231--")


@case(attachments=[("Übersicht Q1.xlsx", "application/vnd.openxmlformats-officedocument"
                    ".spreadsheetml.sheet")], text="Zahlen")
def rfc2047_file_name(mid):
    """An RFC 2047 encoded word as a quoted file name (Outlook, Gmail, Thunderbird by default),
    not the RFC 2231 form the standard asks for."""
    xlsx = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return entity(
        top(mid, b"Zahlen", b"MIME-Version: 1.0", ctype(b'multipart/mixed; boundary="x"')),
        b"--x", ctype(b"text/plain"), b"", b"Die Zahlen anbei.",
        b"--x", ctype(xlsx + b'; name="' + word("UTF-8", "Übersicht Q1.xlsx".encode()) + b'"'),
        b'Content-Disposition: attachment; filename="'
        + word("UTF-8", "Übersicht Q1.xlsx".encode()) + b'"',
        b"Content-Transfer-Encoding: base64", b"",
        base64.b64encode(blob("xlsx", 200, b"PK\x03\x04")),
        b"--x--")


@case(name="name-star", subject="case name-star", text_is="hi", attachments=[
    ("attachment.pdf", "application/pdf", b"%PDF-")])
def name_star(mid):
    """``name*`` and ``filename*`` with no value at all: a parameter half written."""
    return (b"From: a@example.org\r\nSubject: case name-star\r\nMIME-Version: 1.0\r\n" + mid
            + b'\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: '
            b"text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name*\r\n"
            b"Content-Disposition: attachment; filename*\r\nContent-Transfer-Encoding: base64"
            b"\r\n\r\nJVBERi0=\r\n--b--\r\n")


# -- addresses --------------------------------------------------------------------------------

@case(from_addr="moderator", from_name="Moderator-Address", subject="Approve 3 messages")
def domainless_from(mid):
    """A sender without a domain: list software and local daemons write ``<moderator>``. The
    name and the bare local part are kept (no auto-mail ever goes to such an address)."""
    return entity(top(mid, b"Approve 3 messages", sender=b"Moderator-Address <moderator>"),
                  b"Three messages wait for approval.")


@case(from_addr="root", from_name="Cron Daemon", to=[], subject="Cron <root@host> backup",
      text="backup done")
def domainless_cron(mid):
    """Cron's own mail from a host without a mail domain: ``root (Cron Daemon)`` to ``root``."""
    return entity(top(mid, b"Cron <root@host> backup", sender=b"root (Cron Daemon)", to=b"root"),
                  b"backup done")


@case(from_addr="noreply@relay.example", from_name="support@vendor.example via Helpdesk",
      to=["helpdesk@example.com", "a@example.org"])
def at_sign_in_display_name(mid):
    """An address as the display name ("x@y via Group"), and a To with two addresses and an
    empty group: mailing-list rewriting and Outlook's undisclosed recipients."""
    return entity(top(mid, b"Licence renewal",
                      sender=b'"support@vendor.example via Helpdesk" <noreply@relay.example>',
                      to=b"helpdesk@example.com, undisclosed-recipients:;, <a@example.org>"),
                  b"Renewal due.")


@case(from_addr="first@example.org", subject="Two senders")
def two_senders(mid):
    """Two From fields, the first with two addresses: broken scripts that add their own."""
    return entity([b"From: first@example.org, second@example.org", b"From: third@example.org",
                   b"Subject: Two senders", mid], b"Who sent this?")


@case(name="to-quote", subject="case to-quote", to=[], text_is="body")
def to_quote(mid):
    """A To field that is a lone double quote."""
    return (b'From: a@example.org\r\nTo: "\r\nSubject: case to-quote\r\n' + mid
            + b"\r\n\r\nbody\r\n")


@case(subject="", to=[], text="Nothing above", date=None)
def empty_header_values(mid):
    """Fields present but empty (To, Cc, Subject, In-Reply-To, Date): web forms that fill
    a template with nothing."""
    return entity([b"From: form@example.org", b"To: ", b"Cc:", b"Subject: ", b"In-Reply-To: ",
                   b"Date:", b"References: <ok@example.org> not-an-id", mid],
                  b"Nothing above is filled in.")


@case(name="missing-from-date-id", subject="case missing-from-date-id", from_addr="",
      message_id=None, date=None)
def missing_from_date_id(mid):
    """No From, no Date, no Message-ID: a script's ``mail`` without a mailer behind it."""
    return b"Subject: case missing-from-date-id\r\n\r\nbody\r\n"


@case(name="exchange-id", subject="case exchange-id", message_id="[3f2a-b1@EXCH01.corp.local]")
def exchange_id(mid):
    """A Message-ID with brackets inside the angle brackets, as some Exchange setups write."""
    return (b"From: a@example.org\r\nSubject: case exchange-id\r\nMessage-ID: "
            b"<[3f2a-b1@EXCH01.corp.local]>\r\n\r\nbody\r\n")


# -- dates, sizes ------------------------------------------------------------------------------

@case(date=dt.datetime(2024, 3, 5, 18, 15), subject="Pacific time")
def date_obsolete_zone(mid):
    """A date with an obsolete zone name (PST) and no seconds: old Unix mailers."""
    return entity(top(mid, b"Pacific time", date=b"Tue, 5 Mar 2024 10:15 PST"), b"Hello.")


@case(date=None, subject="Bad date")
def date_nonsense(mid):
    """A Date field that is no date (a template's placeholder left in)."""
    return entity(top(mid, b"Bad date", date=b"Tuesday the %DATE% at noon"), b"Hello.")


LONG = 100_000


@case(subject="Log " + ("ab" * LONG)[:994], from_addr="monitor@example.net",
      text="see the log")
def header_lines_100k(mid):
    """Lines of 100,000 characters in the header: a monitoring script's Subject, a spam
    filter's report and a References list nobody folded."""
    references = b" ".join(b"<%d@example.net>" % n for n in range(LONG // 16))
    return entity(top(mid, b"Log " + (b"ab" * LONG)[:LONG], b"X-Report: " + b"x" * LONG,
                      b"References: " + references, sender=b"monitor@example.net"),
                  b"see the log")
