"""Cases about the shape of a message: boundaries, nesting, line ends, the header block."""

from __future__ import annotations

from tests.mailset.base import CRLF, b64, blob, case, ctype, entity, multipart, top

MIXED = b"MIME-Version: 1.0"
PDF = blob("boundary-pdf", 900, b"%PDF-1.5\n")


def pdf_part(name: bytes = b"report.pdf", content: bytes = PDF) -> bytes:
    return entity([ctype(b'application/pdf; name="' + name + b'"'),
                   b'Content-Disposition: attachment; filename="' + name + b'"',
                   b"Content-Transfer-Encoding: base64"], b64(content))


def text_part(text: bytes, charset: bytes = b"us-ascii") -> bytes:
    return entity([ctype(b"text/plain; charset=" + charset)], text)


# -- boundaries -------------------------------------------------------------------------------

@case(text="The report", attachments=[("report.pdf", "application/pdf", PDF)])
def boundary_folded(mid):
    """The boundary parameter folded inside its quotes (``boundary="foo`` / `` bar"``): some
    mailers fold long Content-Type lines wherever a space is; unfolding (RFC 5322 §2.2.3)
    removes only the line break, so the boundary is ``foo bar``."""
    return entity(top(mid, b"Monthly report", MIXED,
                      ctype(b'multipart/mixed; boundary="=_monthly' + CRLF + b' report_42"')),
                  multipart(b"=_monthly report_42", text_part(b"The report is attached."),
                            pdf_part()))


@case(text="no boundary at all", attachments=[])
def boundary_missing(mid):
    """multipart/mixed without a boundary parameter: the body cannot be split, so it is text."""
    return entity(top(mid, b"Broken multipart", MIXED, ctype(b"multipart/mixed")),
                  b"--whatever", ctype(b"text/plain"), b"", b"There is no boundary at all.",
                  b"--whatever--")


@case(text="never used", attachments=[])
def boundary_never_appears(mid):
    """A boundary declared but never used: the body is kept as text."""
    return entity(top(mid, b"Unused boundary", MIXED, ctype(b'multipart/mixed; boundary="zz"')),
                  b"This boundary is declared but never used.")


@case(name="boundary-never-closes", subject="case boundary-never-closes",
      text="no closing boundary")
def boundary_never_closes(mid):
    """The closing delimiter is missing (a truncated download, a mailer that forgets it)."""
    return (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n" + mid
            + b"\r\nSubject: case boundary-never-closes\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="never"\r\n\r\n--never\r\nContent-Type: '
            b"text/plain\r\n\r\nfirst part, and no closing boundary\r\n")


@case(text="truncated", attachments=[("report.pdf", "application/pdf", PDF)])
def boundary_unterminated_attachment(mid):
    """The message ends inside its last part, an attachment, with no closing delimiter."""
    return entity(top(mid, b"Cut off", MIXED, ctype(b'multipart/mixed; boundary="cut"')),
                  multipart(b"cut", text_part(b"Sent from a truncated upload."), pdf_part(),
                            close=False))


@case(text=("first words", "second words"), attachments=[("report.pdf", "application/pdf", PDF)])
def boundary_repeated(mid):
    """Delimiter lines written twice in a row (an empty part between them) and the closing
    delimiter twice: generators that loop once too often."""
    body = multipart(b"rep", text_part(b"first words"), b"", text_part(b"second words"),
                     pdf_part())
    return entity(top(mid, b"Doubled", MIXED, ctype(b'multipart/mixed; boundary="rep"')),
                  body + b"--rep--" + CRLF)


@case(text="outer text", attachments=[("inner.pdf", "application/pdf", PDF)])
def boundary_prefix_of_another(mid):
    """An inner boundary that starts with the outer one ("part" and "part_1"): a delimiter is
    the whole line, so neither may swallow the other."""
    inner = entity([ctype(b'multipart/mixed; boundary="part_1"')],
                   multipart(b"part_1", pdf_part(b"inner.pdf")))
    return entity(top(mid, b"Prefix boundaries", MIXED,
                      ctype(b'multipart/mixed; boundary="part"')),
                  multipart(b"part", text_part(b"outer text"), inner))


@case(text="Outlook Express", attachments=[("report.pdf", "application/pdf", PDF)])
def boundary_unquoted_with_specials(mid):
    """An unquoted boundary with "=" and "." in it, delimiter lines with trailing blanks and a
    preamble (Outlook Express, Exchange)."""
    boundary = b"----=_NextPart_000_0012_01DA6F2E.5B3C1A40"
    body = multipart(boundary, text_part(b"Sent with Outlook Express."), pdf_part(),
                     preamble=b"This is a multi-part message in MIME format.")
    body = body.replace(boundary + CRLF, boundary + b"  " + CRLF)
    return entity(top(mid, b"Specials", MIXED, ctype(b"multipart/mixed; boundary=" + boundary)),
                  body)


def nested(depth: int, prefix: bytes) -> tuple[bytes, bytes]:
    """The opening and the closing of *depth* multiparts, each the only part of the one before:
    put a message's last header lines and innermost part between them."""
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="%s%d"\r\n\r\n--%s%d\r\n'
                       % (prefix, i, prefix, i) for i in range(depth))
    closing = b"".join(b"\r\n--%s%d--\r\n" % (prefix, i) for i in reversed(range(depth)))
    return opening, closing


@case(text="two hundred levels down", attachments=[("bottom.txt", "text/plain", b"the bottom")])
def nested_200_deep(mid):
    """200 multiparts inside each other: mail bombs, and forwarding loops that wrap each time."""
    opening, closing = nested(200, b"n")
    leaf = (text_part(b"two hundred levels down") + b"\r\n--n199\r\n"
            + entity([ctype(b"text/plain"),
                      b'Content-Disposition: attachment; filename="bottom.txt"'], b"the bottom")
            .removesuffix(CRLF))
    return CRLF.join(top(mid, b"Deep", MIXED)) + CRLF + opening + leaf + closing


@case(name="nested-1000-deep", subject="case nested-1000-deep", text="deep down")
def nested_1000_deep(mid):
    """1000 levels: deeper than any parser's recursion; the text is still found."""
    opening, closing = nested(1000, b"b")
    return (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n" + mid
            + b"\r\nSubject: case nested-1000-deep\r\nMIME-Version: 1.0\r\n" + opening
            + b"Content-Type: text/plain\r\n\r\ndeep down" + closing)



@case(text="See below", not_in_text=("outer note", "innermost"),
      attachments=[("Fwd_ Server down.eml", "message/rfc822")])
def rfc822_inside_rfc822(mid):
    """A forward of a forward: message/rfc822 whose message holds another message/rfc822."""
    innermost = entity([b"From: ops@example.net", b"Subject: Server down",
                        b"Message-ID: <innermost@example.net>"], b"The innermost text.")
    middle = entity([b"From: boss@example.com", b"Subject: Fwd: Server down", MIXED,
                     ctype(b'multipart/mixed; boundary="mid"')],
                    multipart(b"mid", text_part(b"outer note"),
                              entity([ctype(b"message/rfc822")], innermost)))
    return entity(top(mid, b"Fwd: Fwd: Server down", MIXED,
                      ctype(b'multipart/mixed; boundary="out"')),
                  multipart(b"out", text_part(b"See below."),
                            entity([ctype(b"message/rfc822"),
                                    b"Content-Disposition: attachment"], middle)))


@case(text="no Content-Type here", attachments=[("data.csv", "text/csv")])
def part_without_content_type(mid):
    """A part with no Content-Type (defaults to text/plain, RFC 2045 §5.2) next to one whose
    type is written in capitals."""
    return entity(top(mid, b"Types", MIXED, ctype(b'Multipart/Mixed; Boundary="t"')),
                  multipart(b"t", entity([b"Content-Transfer-Encoding: 7bit"],
                                         b"no Content-Type here"),
                            entity([ctype(b'TEXT/CSV; NAME="data.csv"'),
                                    b"Content-Disposition: ATTACHMENT"], b"a,b\r\n1,2")))


@case(text="only a preamble", attachments=[])
def multipart_without_parts(mid):
    """A multipart with a preamble and a closing delimiter but no part (a mailer that lost its
    attachments on the way)."""
    return entity(top(mid, b"Empty multipart", MIXED, ctype(b'multipart/mixed; boundary="e"')),
                  b"only a preamble", b"--e--")


# -- lines, bytes and the header block --------------------------------------------------------

@case(name="nul-bytes", subject="case nul-bytes", text="NUL", not_in_text="\x00")
def nul_bytes(mid):
    """NUL bytes in the body (a C program's buffer written whole)."""
    return (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n" + mid
            + b"\r\nSubject: case nul-bytes\r\n\r\nbody with \x00NUL\x00 bytes\r\n")


@case(name="bare-cr", subject="case bare-cr", text="line two", from_addr="a@example.org")
def bare_cr(mid):
    """Lines ended by CR alone (classic Mac OS, some fax gateways)."""
    return b"From: a@example.org\r" + mid + b"\rSubject: case bare-cr\r\rbody\rline two\r"


@case(name="bare-lf", subject="case bare-lf", text="line two")
def bare_lf(mid):
    """Lines ended by LF alone (Unix tools that write mail files)."""
    return b"From: a@example.org\n" + mid + b"\nSubject: case bare-lf\n\nbody\nline two\n"


@case(subject="Mixed ends", text=("first line", "third line"))
def mixed_line_ends(mid):
    """CRLF headers, then a body of LF lines with one CR in the middle of a line (a gateway that
    converted only half the message)."""
    return entity(top(mid, b"Mixed ends"), b"first line\nsecond\rline\nthird line\n")


@case(subject="VPN down", from_addr="carol@example.org", text="VPN")
def no_header_body_separator(mid):
    """No empty line between header and body: the first line that is no header starts the
    body (scripts that print headers and text without the blank line)."""
    return CRLF.join(top(mid, b"VPN down") + [b"The VPN has been down since 9:00.",
                                              b"Please help.", b""])


@case(subject="Header only", from_addr="carol@example.org", text_is="")
def header_block_only(mid):
    """Only a header block: no empty line, no body (a message cut after its headers)."""
    return CRLF.join(top(mid, b"Header only"))


@case(subject="Obsolete colon", text="hello")
def space_before_colon(mid):
    """``Subject : x``, the obsolete syntax of RFC 5322 §4.5 (white space before the colon)."""
    return entity([b"From : carol@example.org", b"Subject : Obsolete colon", mid], b"hello")


@case(subject="From the archive", text=("From the start", ">From quoted"))
def mbox_from_line(mid):
    """An mbox "From " separator line before the headers and a ">From " line in the body
    (a message cut out of a Unix mailbox file)."""
    return b"From carol@example.org Tue Mar  5 10:15:00 2024" + CRLF + entity(
        top(mid, b"From the archive"), b"From the start, this is the text.", b">From quoted")


@case(name="5000-byte-line", subject="case 5000-byte-line", text_is="x" * 5000)
def line_of_5000_bytes(mid):
    """A body line of 5,000 bytes (RFC 5322 allows 998): HTML generators without line breaks."""
    return (b"From: Carol <carol@example.org>\r\nTo: helpdesk@example.com\r\n" + mid
            + b"\r\nSubject: case 5000-byte-line\r\n\r\n" + b"x" * 5000 + b"\r\n")


@case(set_aside=True, message_id=None)
def only_line_breaks(mid):
    """Nothing but line breaks: not a message at all (a mailbox file truncated to nothing)."""
    return CRLF * 7
