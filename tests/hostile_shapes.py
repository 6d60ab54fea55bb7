"""Adversarial mail (issue 20.1): shapes that once made a step of parsing grow with the square of
its input, generated at any size. The tests parse each at 100 KB and 1 MB; ``make bench``
reports the parse time per KB of the worst.

Each shape is a function of a target size in bytes that returns one message of about that size,
with a Subject naming the shape so that a test can find what became of it.
"""

from __future__ import annotations

from collections.abc import Callable

_HEAD = (b"From: Mallory <mallory@example.org>\r\nTo: helpdesk@example.com\r\n"
         b"Message-ID: <%s@hostile.example.org>\r\nSubject: shape %s\r\nMIME-Version: 1.0\r\n")


def _head(name: str) -> bytes:
    return _HEAD % (name.encode(), name.encode())


def _repeat(unit: bytes, size: int) -> bytes:
    return unit * max(1, size // len(unit))


def headers_8bit(size: int) -> bytes:
    """Thousands of distinct headers with 8-bit bytes: the stdlib had them deleted and re-added
    one name at a time."""
    count = max(1, size // 18)
    return (_head("headers-8bit") + b"".join(b"X-H%d: caf\xe9\r\n" % i for i in range(count))
            + b"\r\nbody\r\n")


def pre_spaces(size: int) -> bytes:
    """HTML: ``<pre>`` and a long run of spaces that no line break ends (``[ \\t]+\\n``)."""
    return (_head("pre-spaces") + b"Content-Type: text/html\r\n\r\n<pre>" + b" " * size
            + b"x</pre>\r\n")


def open_tags(size: int) -> bytes:
    """HTML: ``<a `` repeated, a tag that never closes (html.parser rescans to the end)."""
    return _head("open-tags") + b"Content-Type: text/html\r\n\r\n" + _repeat(b"<a ", size)


def open_comments(size: int) -> bytes:
    """HTML: ``<!--`` repeated, comments that never close."""
    return _head("open-comments") + b"Content-Type: text/html\r\n\r\n" + _repeat(b"<!--", size)


def long_subject(size: int) -> bytes:
    """A Subject of RFC 2047 words, folded, far longer than any subject is kept."""
    word = b"=?utf-8?q?" + b"=C3=A4" * 10 + b"?=\r\n "
    return (b"From: m@example.org\r\nTo: helpdesk@example.com\r\nMessage-ID: "
            b"<long-subject@hostile.example.org>\r\nSubject: shape long-subject "
            + _repeat(word, size) + b"end\r\n\r\nbody\r\n")


def auth_results(size: int) -> bytes:
    """Authentication-Results with thousands of properties (the result loop sliced the rest of
    the header once per property)."""
    return (_head("auth-results") + b"Authentication-Results: mx.example.com; dkim=pass"
            + _repeat(b" header.d=example.org", size) + b"\r\n\r\nbody\r\n")


def quoted_semicolons(size: int) -> bytes:
    """A quoted file name made of semicolons (the stdlib recounted the quotes from the start of
    the value at each one)."""
    return (_head("quoted-semicolons") + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b'--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n'
            b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; '
            b'filename="' + _repeat(b";", size) + b'"\r\n\r\nAAAA\r\n--b--\r\n')


def many_params(size: int) -> bytes:
    """A Content-Type with thousands of parameters (the stdlib copied the rest of the value once
    per parameter)."""
    return (_head("many-params") + b"Content-Type: text/plain; charset=utf-8"
            + _repeat(b";a=1", size) + b"\r\n\r\nbody\r\n")


def many_addresses(size: int) -> bytes:
    """A To header of thousands of addresses with comments and quoted names."""
    return (b"From: m@example.org\r\nMessage-ID: <many-addresses@hostile.example.org>\r\n"
            b"Subject: shape many-addresses\r\nTo: "
            + _repeat(b'"a (b)" <a@example.org> (c),\r\n ', size)
            + b"x@example.org\r\n\r\nbody\r\n")


def many_parts(size: int) -> bytes:
    """Thousands of tiny MIME parts (more than are walked)."""
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (_head("many-parts") + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            + _repeat(part, size) + b"--b--\r\n")


def long_boundary(size: int) -> bytes:
    """A multipart boundary as long as the message."""
    boundary = b"b" * max(1, size // 3)
    return (_head("long-boundary") + b'Content-Type: multipart/mixed; boundary="' + boundary
            + b'"\r\n\r\n--' + boundary + b"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--"
            + boundary + b"--\r\n")


def attached_long_header(size: int) -> bytes:
    """An attached message whose header is one long unbreakable word."""
    return (_head("attached-long-header") + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nX-Long: "
            + _repeat(b"x;", size) + b"\r\n\r\ninner body\r\n--b--\r\n")


def delivery_status_fold(size: int) -> bytes:
    """A delivery report whose status block has one long folded field."""
    return (b"From: MAILER-DAEMON@example.org\r\nTo: helpdesk@example.com\r\nMessage-ID: "
            b"<delivery-status-fold@hostile.example.org>\r\nSubject: shape delivery-status-fold"
            b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
            b'report-type=delivery-status; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain'
            b"\r\n\r\nfailed\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; x@example.org\r\n"
            b"Action: failed\r\nDiagnostic-Code: smtp; "
            + _repeat(b"x,\r\n ", size) + b"end\r\n\r\n--b--\r\n")


def spaced_sender(size: int) -> bytes:
    """A From of two words with a long run of spaces between them (the local-sender pattern
    tried every split of the run)."""
    return (b"From: a" + b" " * size + b"b c\r\nTo: helpdesk@example.com\r\nMessage-ID: "
            b"<spaced-sender@hostile.example.org>\r\nSubject: shape spaced-sender\r\n\r\nbody\r\n")


def many_references(size: int) -> bytes:
    """References with tens of thousands of Message-IDs."""
    return (_head("many-references") + b"References: "
            + _repeat(b"<a@example.org>\r\n ", size) + b"<z@example.org>\r\n\r\nbody\r\n")


def unclosed_quotes(size: int) -> bytes:
    """A To the stdlib cannot read (two addresses without a comma), then an opened quote and
    escaped quotes to its end (blanking quoted strings with a regex rescanned to the end from
    every quote)."""
    return (_head("unclosed-quotes").replace(b"To: helpdesk@example.com\r\n", b"")
            + b'To: a@example.com helpdesk@example.com "' + _repeat(b'\\"', size)
            + b"\r\n\r\nbody\r\n")


SHAPES: dict[str, Callable[[int], bytes]] = {
    "headers-8bit": headers_8bit, "pre-spaces": pre_spaces, "open-tags": open_tags,
    "open-comments": open_comments, "long-subject": long_subject, "auth-results": auth_results,
    "quoted-semicolons": quoted_semicolons, "many-params": many_params,
    "many-addresses": many_addresses, "many-parts": many_parts, "long-boundary": long_boundary,
    "attached-long-header": attached_long_header, "delivery-status-fold": delivery_status_fold,
    "many-references": many_references, "spaced-sender": spaced_sender,
    "unclosed-quotes": unclosed_quotes,
}
SIZES = (100_000, 1_000_000)


def generate(sizes=SIZES) -> list[tuple[str, int, bytes]]:
    """(shape, size, message) for every shape at every size; each size has Message-IDs of its
    own, so that no two are taken for copies of one mail (spec §4.1)."""
    return [(name, size, make(size).replace(b"@hostile.example.org>", b".%d@hostile.example.org>"
                                            % size, 1))
            for size in sizes for name, make in SHAPES.items()]
