"""Mail is untrusted content: attachment names never become paths outside a directory, HTML is
stored and never rendered or fetched, and nothing a sender writes reaches the administrator's
terminal as an escape sequence or as rich markup."""

from __future__ import annotations

import base64
import os
import sys
import threading
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pexpect
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk_fetch.message.parse import MAX_NAME_BYTES, safe_filename
from tests.mails import message
from tests.proc import ROOT, environment
from tests.test_ingest_maildir import make_maildir


def assert_safe(name: str, directory: Path = Path("/srv/attachments")) -> None:
    assert name and name not in (".", "..") and not name.startswith(".")
    assert "/" not in name and "\\" not in name
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    target = os.path.normpath(os.path.join(directory, name))
    assert os.path.dirname(target) == str(directory)


@pytest.mark.parametrize("evil, expected", [
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("..\\..\\Windows\\System32\\drivers\\etc\\hosts", "hosts"),
    ("C:\\autoexec.bat", "autoexec.bat"),
    ("report\x00.pdf.exe", "report_.pdf.exe"),
    ("..", "attachment"),
    ("...", "attachment"),
    ("", "attachment"),
    (".bashrc", "bashrc"),
    ("CON", "_CON"), ("nul.txt", "_nul.txt"), ("LPT1.doc", "_LPT1.doc"), ("conin$", "_conin$"),
    ("invoice\u202egpj.exe", "invoice_gpj.exe"),  # shows as "invoiceexe.jpg"
    ("zero\u200bwidth.txt", "zero_width.txt"),
    ("line\u2028break.txt", "line_break.txt"),
    ("esc\x1b[31mred.txt", "esc_[31mred.txt"),
    ("tab\there.txt", "tab_here.txt"),
    ('what?*"<>|:.txt', "what_______.txt"),
])
def test_known_evil_names(evil, expected):
    assert safe_filename(evil) == expected
    assert_safe(safe_filename(evil))


def test_very_long_names_keep_their_extension():
    assert safe_filename("x" * 5000 + ".pdf") == "x" * (MAX_NAME_BYTES - 4) + ".pdf"
    multibyte = safe_filename("ä" * 300 + ".txt")
    assert multibyte.endswith(".txt") and len(multibyte.encode()) <= MAX_NAME_BYTES
    assert_safe(safe_filename("é" * 1000))


@given(st.text())
def test_any_name_is_safe(name):
    assert_safe(safe_filename(name))


def test_evil_attachment_names_end_to_end(tmp_path, write_config, run):
    names = ["../../etc/passwd", "/etc/shadow", "..\\..\\boot.ini", "invoice\u202egpj.exe",
             "CON", "x" * 400 + ".pdf"]
    raw = message("Attachments", attachments=[(n, "application/octet-stream", b"data")
                                              for n in names])
    # An RFC 2231 encoded traversal, which the email library decodes to "../../etc/cron.d/x"
    evil_2231 = (b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; '
                 b"filename*=utf-8''..%2F..%2Fetc%2Fcron.d%2Fx\r\n"
                 b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"x") + b"\r\n")
    boundary = raw.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    raw = raw.replace(b"--" + boundary + b"--", b"--" + boundary + b"\r\n" + evil_2231 + b"--"
                      + boundary + b"--")
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    assert run("fetch", config=config).exit_code == 0

    shown = run.json("tickets", "show", "1001", config=config)["messages"][0]["attachments"]
    filenames = [a["filename"] for a in shown]
    assert filenames[:5] == ["passwd", "shadow", "boot.ini", "invoice_gpj.exe", "_CON"]
    assert filenames[5].endswith(".pdf") and filenames[6] == "x"
    for name in filenames:
        assert_safe(name)


class _Tracker(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        _Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_html_is_stored_never_rendered_or_fetched(tmp_path, write_config, run):
    tracker = ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{tracker.server_address[1]}"
    html = (f'<html><head><style>p {{ color: red }}</style>'
            f'<link rel="stylesheet" href="{url}/style.css">'
            f'<script src="{url}/evil.js"></script><script>alert("pwned")</script></head>'
            f'<body onload="steal()"><p>Hello <b>agent</b></p>'
            f'<img src="{url}/pixel.gif"><iframe src="{url}/frame"></iframe>'
            f'<a href="javascript:steal()">click</a></body></html>')
    make_maildir(tmp_path / "box", [message("HTML only", body=None, html=html)])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    try:
        assert run("fetch", config=config).exit_code == 0
        stored = run.json("tickets", "show", "1001", config=config)["messages"][0]
        shown = run("tickets", "show", "1001", config=config).output
    finally:
        tracker.shutdown()
        tracker.server_close()

    assert stored["html"].strip() == html  # kept as it came, for whoever needs it
    assert "Hello agent" in stored["text"] and "click" in stored["text"]
    for code in ("alert(", "color: red", "steal()", "<script", "<img"):
        assert code not in stored["text"] and code not in shown
    assert _Tracker.hits == []  # nothing was loaded: not the script, the pixel or the frame


def test_the_terminal_is_safe_from_the_sender(tmp_path, write_config):
    """A real terminal (a pty): escape sequences are shown, not obeyed; "[/]" is no markup."""
    evil = "[/] [bold]loud[/bold] \x1b]0;pwned\x07 \x1b[7;33;41mEVIL"
    subject = "=?utf-8?b?" + base64.b64encode(evil.encode()).decode() + "?="
    raw = (f"From: a@example.org\r\nTo: h@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <id\x1b[2J@example.org>\r\n\r\nbody \x1b[7;33;41mEVIL\r\n").encode()
    make_maildir(tmp_path / "box", [raw])
    config = write_config([{"name": "local", "protocol": "maildir", "path": "box"}])
    env = environment(COLUMNS="250")
    for argv in (["fetch", "--dry-run"], ["-v", "fetch"], ["tickets", "list"],
                 ["tickets", "show", "1001"]):
        child = pexpect.spawn(sys.executable, ["-m", "helpdesk_fetch", "--config", str(config),
                                               *argv], env=env, cwd=str(ROOT),
                              dimensions=(50, 250),
                              encoding="utf-8", timeout=60)
        output = child.read()
        child.close()
        assert child.exitstatus == 0, output
        assert "\x1b]" not in output and "\x1b[7;33;41m" not in output and "\x1b[2J" not in output
        if argv[0] == "tickets":
            assert "\u241b[7;33;41mEVIL" in output  # shown as a visible ESC picture
    assert "[/] [bold]loud[/bold]" in output
