"""Authentication-Results (RFC 8601): which domains the organisation's own server vouches for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk_fetch.message import authres
from helpdesk_fetch.message.authres import parse, sender_trusted, vouched_domains, vouches_for
from helpdesk_fetch.message.parse import parse as parse_message
from tests.mails import message

MX = "mx.example.com"


def test_parse_a_typical_header():
    header = parse("mx.example.com;\r\n\tdkim=pass (2048-bit key; unprotected) "
                   "header.d=example.com header.i=@example.com header.b=Ab/c+d==;\r\n"
                   "\tspf=pass (mx.example.com: domain of a@example.com designates 192.0.2.1 "
                   "as permitted sender) smtp.mailfrom=a@example.com;\r\n"
                   "\tdmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com")
    assert header.authserv_id == MX
    assert [(r.method, r.result) for r in header.results] == [
        ("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert header.results[0].properties == {"header.d": "example.com",
                                            "header.i": "@example.com",
                                            "header.b": "Ab/c+d=="}
    assert header.results[1].properties == {"smtp.mailfrom": "a@example.com"}


@pytest.mark.parametrize("value, domains", [
    ("mx.example.com; dkim=pass header.d=example.com", {"example.com"}),
    ("mx.example.com; dmarc=pass header.from=example.com", {"example.com"}),
    ("mx.example.com; dkim=pass header.i=alice@sub.example.com", {"sub.example.com"}),
    ("mx.example.com 1; dkim=pass header.d=example.com", {"example.com"}),  # a version
    ('"mx.example.com"; dkim=pass header.d="example.com"', {"example.com"}),  # quoted
    ("MX.Example.COM; DKIM=Pass Header.D=Example.COM.", {"example.com"}),  # case, root dot
    ("mx.example.com; dkim/1=pass header.d=example.com", {"example.com"}),  # method version
    ("mx.example.com (our MX) ; (c) dkim (rsa) = (x) pass (good) header (p) . (q) d (r) = "
     "example.com (end)", {"example.com"}),  # CFWS everywhere
    ("mx.example.com; dkim=pass (a (nested) comment; with a semicolon) header.d=example.com",
     {"example.com"}),
    ("mx.example.com; dkim=pass (escaped \\) paren) header.d=example.com", {"example.com"}),
    ('mx.example.com; dkim=pass reason="(not a comment; not a separator)" '
     "header.d=example.com", {"example.com"}),
    ("mx.example.com; dkim=pass reason=ok header.d=example.com", {"example.com"}),
    ("mx.example.com; spf=pass smtp.mailfrom=a@example.com", set()),  # SPF alone: no
    ("mx.example.com; dkim=fail header.d=example.com", set()),
    ("mx.example.com; dkim=neutral header.d=example.com", set()),
    ("mx.example.com; dmarc=pass", set()),  # which domain?
    ("mx.example.com; none", set()),
    ("mx.example.com; dkim=pass header.d=example.com; dkim=fail header.d=other.example",
     {"example.com"}),  # two signatures, one good
    ("mx.example.com; dkim=pass header.d=example.com; dmarc=fail header.from=example.com",
     set()),  # a DMARC failure outweighs a pass for the same domain
    ("mx.example.com; dkim=pass header.d=a.example; dmarc=fail header.from=b.example",
     {"a.example"}),
])
def test_vouched_domains(value, domains):
    assert vouched_domains([value], MX) == domains


@pytest.mark.parametrize("value", [
    "mx.example.com dkim=pass header.d=example.com",  # the ; is missing
    "; dkim=pass header.d=example.com",  # no authserv-id
    "mx.example.com; dkim=pass header.d=example.com (unclosed comment",
    'mx.example.com; dkim=pass header.d="unclosed',
    "mx.example.com; dkim=pass header.d=example.com garbage",  # not ptype.property=value
    "mx.example.com; =pass header.d=example.com",
    "mx.example.com extra words; dkim=pass header.d=example.com",
    "",
])
def test_what_cannot_be_read_vouches_for_nothing(value):
    assert vouched_domains([value], MX) == set()


def test_only_the_configured_authserv_id_counts():
    forged = "mx.evil.example; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"
    lookalike = "mx.example.com.evil.example; dmarc=pass header.from=example.com"
    ours = "mx.example.com; dkim=pass header.d=partner.example"
    assert vouched_domains([forged, lookalike, ours], MX) == {"partner.example"}
    assert vouched_domains([forged], "mx.evil.example") == {"example.com"}


def test_a_forged_pass_under_our_id_is_cancelled_by_our_real_failure():
    """If the server let a forged header with its id through, its own DMARC verdict still
    decides."""
    real = "mx.example.com; dkim=none; dmarc=fail (p=reject) header.from=example.com"
    forged = "mx.example.com; dmarc=pass header.from=example.com"
    assert vouched_domains([real, forged], MX) == set()


def test_several_headers_from_our_server_add_up():
    values = ["mx.example.com; dkim=pass header.d=a.example",
              "mx.example.com; dmarc=pass header.from=b.example"]
    assert vouched_domains(values, MX) == {"a.example", "b.example"}


@pytest.mark.parametrize("address, trusted", [
    ("alice@example.com", True), ("Alice@EXAMPLE.com", True), ("bob@sub.example.com", False),
    ("mallory@example.com.evil.example", False), ("example.com", False), ("", False),
])
def test_vouches_for_an_address(address, trusted):
    values = ["mx.example.com; dkim=pass header.d=example.com"]
    assert vouches_for(values, MX, address) is trusted


def test_sender_trusted_without_an_authserv_id_trusts_from():
    assert sender_trusted([], "alice@example.com", authserv_id="") is True
    assert sender_trusted([], "alice@example.com", authserv_id=MX) is False
    assert sender_trusted(["mx.example.com; dmarc=pass header.from=example.com"],
                          "alice@example.com", authserv_id=MX) is True


def test_from_a_parsed_message():
    """The headers as the pipeline has them: every Authentication-Results, in order."""
    raw = message("Re: x", sender="Alice <alice@example.com>", headers={
        "Authentication-Results": "mx.example.com; dkim=pass header.d=example.com"})
    raw = b"Authentication-Results: mx.evil.example; dmarc=pass header.from=evil.example\r\n" + raw
    parsed = parse_message(raw)
    values = parsed.headers.get("authentication-results", [])
    assert len(values) == 2
    assert sender_trusted(values, parsed.from_addr, authserv_id=MX)
    assert not sender_trusted(values, "eve@evil.example", authserv_id=MX)


@given(st.text())
def test_never_raises(value):
    header = authres.parse(value)
    assert header is None or isinstance(header.authserv_id, str)
    vouched_domains([value], MX)


@given(st.lists(st.sampled_from(["mx.example.com", ";", " ", "(", ")", '"', "\\", "dkim", "=",
                                 "pass", "fail", "header", ".", "d", "example.com", "dmarc",
                                 "from", "none", "\r\n\t", "1", "/"]), max_size=40))
def test_never_raises_on_near_misses(parts):
    vouched_domains(["".join(parts)], MX)
