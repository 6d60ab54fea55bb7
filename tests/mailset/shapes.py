"""Cases shaped like the mail a helpdesk gets every day: ordinary mail in several charsets and
the structures of Outlook/Exchange, S/MIME, PGP, calendar invitations and delivery reports."""

from __future__ import annotations

import quopri

from tests.mailset.base import CRLF, b64, blob, case, ctype, entity, multipart, top
from tests.mailset.headers import word

MIME = b"MIME-Version: 1.0"


def qp(text: str, charset: str = "utf-8") -> bytes:
    return quopri.encodestring(text.encode(charset)).replace(b"\n", CRLF).rstrip(CRLF)


def attached(content_type: bytes, name: bytes, content: bytes, *more: bytes) -> bytes:
    """A base64 attachment part named *name*."""
    return entity([ctype(content_type + b'; name="' + name + b'"'),
                   b'Content-Disposition: attachment; filename="' + name + b'"',
                   b"Content-Transfer-Encoding: base64", *more], b64(content))


# -- ordinary mail ----------------------------------------------------------------------------

PLAIN = "Hallo,\n\nder Drucker im 2. Stock zeigt „Papierstau“, ist aber leer.\n\nGrüße\nCarol\n"


@case(subject="Papierstau im 2. Stock", from_name="Carol Customer",
      from_addr="carol@example.org", text="„Papierstau“", to=["helpdesk@example.com"],
      attachments=[])
def plain_utf8(mid):
    """An ordinary plain-text mail from a current client: UTF-8, quoted-printable."""
    return entity(top(mid, word("UTF-8", b"Papierstau im 2. Stock"), MIME,
                      ctype(b"text/plain; charset=UTF-8; format=flowed"),
                      b"Content-Transfer-Encoding: quoted-printable"),
                  qp(PLAIN))


@case(duplicate_of="plain-utf8", message_id="plain-utf8@mailset.example",
      subject="Papierstau im 2. Stock", text="„Papierstau“")
def plain_utf8_lf_twin(mid):
    """plain-utf8 with LF line ends, as a Unix mailbox export writes it; IMAP and POP3 serve
    it with CRLF, so it is the same message and is stored once (spec §4.1)."""
    twin = plain_utf8(b"Message-ID: <plain-utf8@mailset.example>")
    return twin.replace(CRLF, b"\n")


@case(subject="会議の件", text="明日の会議", from_name="山田太郎")
def plain_iso_2022_jp(mid):
    """Japanese mail as most Japanese mailers still send it: ISO-2022-JP, 7bit, encoded words."""
    body = "明日の会議は十時からです。\n".encode("iso-2022-jp")
    return entity(top(mid, word("ISO-2022-JP", "会議の件".encode("iso-2022-jp")), MIME,
                      ctype(b"text/plain; charset=ISO-2022-JP"), b"Content-Transfer-Encoding: 7bit",
                      sender=word("ISO-2022-JP", "山田太郎".encode("iso-2022-jp"))
                      + b" <yamada@example.jp>"),
                  body.replace(b"\n", CRLF))


@case(text="Plain part wins", html="<b>HTML part</b>", attachments=[])
def alternative_utf8(mid):
    """multipart/alternative with text and HTML (the default of every webmail)."""
    return entity(top(mid, b"Alternative", MIME, ctype(b'multipart/alternative; boundary="alt"')),
                  multipart(b"alt",
                            entity([ctype(b"text/plain; charset=utf-8")], b"Plain part wins"),
                            entity([ctype(b"text/html; charset=utf-8")],
                                   b"<p><b>HTML part</b></p>")))


@case(text=("Printer", "- toner empty"), not_in_text="<", html="<li>toner empty</li>")
def html_only(mid):
    """Only HTML, with a style block and a list (marketing tools, some phone clients): the
    text is rendered from it."""
    html = (b"<html><head><style>p {color: red}</style></head><body><p>Printer</p>"
            b"<ul><li>toner empty</li></ul></body></html>")
    return entity(top(mid, b"HTML only", MIME, ctype(b"text/html; charset=utf-8")), html)


REPORT = blob("report", 1500, b"%PDF-1.7\n")
PHOTO = blob("photo", 1200, b"\x89PNG\r\n\x1a\n")


@case(text="Grüße", attachments=[("Bericht März.pdf", "application/pdf", REPORT),
                                 ("photo.png", "image/png", PHOTO)])
def attachments_latin9(mid):
    """Text in ISO-8859-15 with two attachments, one with a non-ASCII name in Latin-1
    (RFC 2231 with a charset)."""
    report = entity([ctype(b"application/pdf"),
                     b"Content-Disposition: attachment; filename*=iso-8859-1''Bericht%20M%E4rz.pdf",
                     b"Content-Transfer-Encoding: base64"], b64(REPORT))
    return entity(top(mid, b"Bericht", MIME, ctype(b'multipart/mixed; boundary="att"')),
                  multipart(b"att",
                            entity([ctype(b"text/plain; charset=iso-8859-15"),
                                    b"Content-Transfer-Encoding: quoted-printable"],
                                   qp("Anbei der Bericht. Grüße", "iso-8859-15")),
                            report, attached(b"image/png", b"photo.png", PHOTO)))


# -- Outlook / Exchange -----------------------------------------------------------------------

LOGO = blob("logo", 800, b"\x89PNG\r\n\x1a\n")
CID = b"image001.png@01DA6F2E.5B3C1A40"


@case(text="Kind regards", html="cid:image001.png@01DA6F2E.5B3C1A40",
      attachments=[("image001.png", "image/png", LOGO)])
def outlook_related_cid(mid):
    """Outlook's HTML mail: multipart/related holding multipart/alternative and the signature
    logo as an inline part that the HTML names by ``cid:``."""
    alternative = entity(
        [ctype(b'multipart/alternative; boundary="_000_alt_"')],
        multipart(b"_000_alt_",
                  entity([ctype(b'text/plain; charset="us-ascii"')], b"Kind regards, Dave"),
                  entity([ctype(b'text/html; charset="us-ascii"')],
                         b'<p>Kind regards, Dave</p><img src="cid:' + CID + b'">')))
    logo = entity([ctype(b'image/png; name="image001.png"'),
                   b"Content-Description: image001.png",
                   b'Content-Disposition: inline; filename="image001.png"; size=800',
                   b"Content-ID: <" + CID + b">", b"Content-Transfer-Encoding: base64"],
                  b64(LOGO))
    return entity(top(mid, b"Signature", MIME, b"X-MS-Has-Attach: yes",
                      b"X-MS-TNEF-Correlator:", b"Thread-Index: AdpvLkZ3QW5kcmVhcw==",
                      ctype(b'multipart/related; boundary="_004_rel_"; '
                            b'type="multipart/alternative"')),
                  multipart(b"_004_rel_", alternative, logo))


TNEF = blob("tnef", 1400, b"\x78\x9f\x3e\x22\x01\x00\x01\x06\x90\x08\x00")


@case(text="see the attachment", attachments=[("winmail.dat", "application/ms-tnef", TNEF)])
def outlook_tnef(mid):
    """Exchange's rich text: the real attachments wrapped in ``winmail.dat`` (TNEF). It is kept
    as an attachment, byte for byte, for the agent's TNEF reader."""
    return entity(top(mid, b"Contract", MIME, ctype(b'multipart/mixed; boundary="tnef"')),
                  multipart(b"tnef", entity([ctype(b"text/plain")], b"Please see the attachment."),
                            attached(b"application/ms-tnef", b"winmail.dat", TNEF)))


@case(name="exchange-automatic-reply", subject="Automatic reply: Papierstau",
      text="out of the office", ignored="auto_reply")
def exchange_automatic_reply(mid):
    """Exchange's out-of-office answer: "Automatic reply:" and X-Auto-Response-Suppress."""
    return entity(top(mid, b"Automatic reply: Papierstau", b"Auto-Submitted: auto-replied",
                      b"X-Auto-Response-Suppress: All", b"X-MS-Exchange-Inbox-Rules-Loop: a@b.c",
                      ctype(b"text/plain; charset=us-ascii")),
                  b"I am out of the office until Monday.")


# -- signed mail ------------------------------------------------------------------------------

SIGNATURE = blob("smime", 1800, b"\x30\x82\x06\xf5\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02")


@case(text="Signed request", attachments=[("smime.p7s", "application/pkcs7-signature",
                                           SIGNATURE)])
def smime_signed(mid):
    """S/MIME clear-signed (multipart/signed): the text stays readable, the signature is an
    attachment."""
    return entity(top(mid, b"Signed", MIME,
                      ctype(b'multipart/signed; protocol="application/pkcs7-signature"; '
                            b'micalg=sha-256; boundary="ms010203"')),
                  multipart(b"ms010203",
                            entity([ctype(b"text/plain; charset=utf-8"),
                                    b"Content-Transfer-Encoding: 7bit"], b"Signed request."),
                            attached(b"application/pkcs7-signature", b"smime.p7s", SIGNATURE,
                                     b"Content-Description: S/MIME Cryptographic Signature"),
                            preamble=b"This is a cryptographically signed message in MIME format."))


OPAQUE = blob("opaque", 1000, b"\x30\x82\x03\xe8")


@case(text_is="", attachments=[("smime.p7m", "application/pkcs7-mime", OPAQUE)])
def smime_opaque(mid):
    """S/MIME opaque-signed: the whole text is inside the signature blob; the agent gets the
    blob as an attachment."""
    return entity(top(mid, b"Opaque", MIME,
                      ctype(b'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"'),
                      b'Content-Disposition: attachment; filename="smime.p7m"',
                      b"Content-Transfer-Encoding: base64"), b64(OPAQUE))


PGP = (b"-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAdFiEE\r\n=abcd\r\n"
       b"-----END PGP SIGNATURE-----\r\n")


@case(text="PGP signed", attachments=[("signature.asc", "application/pgp-signature")])
def pgp_signed(mid):
    """PGP/MIME signed (RFC 3156): text part and detached signature."""
    return entity(top(mid, b"PGP", MIME,
                      ctype(b'multipart/signed; micalg=pgp-sha256; '
                            b'protocol="application/pgp-signature"; boundary="pgp"')),
                  multipart(b"pgp", entity([ctype(b"text/plain")], b"PGP signed text."),
                            entity([ctype(b'application/pgp-signature; name="signature.asc"'),
                                    b'Content-Disposition: attachment; filename="signature.asc"'],
                                   PGP)))


# -- calendar invitations, delivery reports ---------------------------------------------------

ICS = CRLF.join([b"BEGIN:VCALENDAR", b"METHOD:REQUEST", b"PRODID:-//mailset//EN",
                 b"VERSION:2.0", b"BEGIN:VEVENT", b"UID:mailset-1@example.com",
                 b"DTSTART:20240306T090000Z", b"DTEND:20240306T093000Z",
                 b"SUMMARY:Printer review", b"END:VEVENT", b"END:VCALENDAR", b""])


@case(text="Printer review", attachments=[("attachment.calendar", "text/calendar", ICS),
                                          ("invite.ics", "application/ics", ICS)])
def calendar_invite(mid):
    """An Outlook meeting request: text, HTML and text/calendar as alternatives, and the same
    event attached as invite.ics."""
    alternative = entity(
        [ctype(b'multipart/alternative; boundary="cal_alt"')],
        multipart(b"cal_alt", entity([ctype(b"text/plain; charset=utf-8")],
                                     b"When: Wednesday 10:00. Printer review."),
                  entity([ctype(b"text/html; charset=utf-8")], b"<p>Printer review</p>"),
                  entity([ctype(b'text/calendar; charset="utf-8"; method=REQUEST'),
                          b"Content-Transfer-Encoding: base64"], b64(ICS))))
    return entity(top(mid, b"Invitation: Printer review", MIME,
                      ctype(b'multipart/mixed; boundary="cal"')),
                  multipart(b"cal", alternative,
                            attached(b"application/ics", b"invite.ics", ICS)))


ORIGINAL = entity([b"From: helpdesk@example.com", b"To: gone@example.net",
                   b"Subject: [TicketID 1042QKXP] We have your request",
                   b"Message-ID: <out-1042@example.com>"], b"We have your request.")


@case(from_addr="mailer-daemon@mx.example.com", from_name="Mail Delivery System",
      text="could not be delivered",
      attachments=[("details.txt", "text/plain"),
                   ("[TicketID 1042QKXP] We have your request.eml", "message/rfc822")],
      ignored="bounce")
def delivery_report(mid):
    """A delivery status notification (RFC 3464) from Postfix: explanation, machine-readable
    status and the returned message."""
    status = entity([b"Reporting-MTA: dns; mx.example.com", b"Arrival-Date: Tue, 5 Mar 2024"],
                    b"Final-Recipient: rfc822; gone@example.net", b"Action: failed",
                    b"Status: 5.1.1", b"Diagnostic-Code: smtp; 550 5.1.1 User unknown")
    return entity(top(mid, b"Undelivered Mail Returned to Sender", MIME,
                      b"Auto-Submitted: auto-replied",
                      ctype(b'multipart/report; report-type=delivery-status; boundary="dsn"'),
                      sender=b"MAILER-DAEMON@mx.example.com (Mail Delivery System)"),
                  multipart(b"dsn",
                            entity([ctype(b"text/plain")],
                                   b"Your message could not be delivered to gone@example.net."),
                            entity([ctype(b"message/delivery-status")], status),
                            entity([ctype(b"message/rfc822")], ORIGINAL)))


@case(from_addr="postmaster", text="delayed",
      attachments=[("details.txt", "text/plain"),
                   ("attachment.rfc822-headers", "text/rfc822-headers")],
      ignored="bounce")
def delay_report_headers_only(mid):
    """A delay notice (Action: delayed) from a local postmaster without a domain, returning
    only the original's headers (text/rfc822-headers)."""
    status = entity([b"Reporting-MTA: dns; relay.example.com"],
                    b"Final-Recipient: rfc822; slow@example.net", b"Action: delayed",
                    b"Status: 4.4.7")
    headers = ORIGINAL.split(CRLF + CRLF)[0] + CRLF
    return entity(top(mid, b"Warning: message delayed", MIME,
                      ctype(b'multipart/report; report-type=delivery-status; boundary="dly"'),
                      sender=b"postmaster"),
                  multipart(b"dly", entity([ctype(b"text/plain")], b"Delivery is delayed."),
                            entity([ctype(b"message/delivery-status")], status),
                            entity([ctype(b"text/rfc822-headers")], headers)))
