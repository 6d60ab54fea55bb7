"""Messages for tests, built with the stdlib so that they are valid unless meant not to be."""

from __future__ import annotations

import datetime as dt
import itertools
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

_counter = itertools.count(1)


def message(subject: str = "Printer broken", sender: str = "Carol Customer <carol@example.org>",
            body: str = "It does not print.\n", *, to: str = "helpdesk@example.com",
            message_id: str | None = "auto", in_reply_to: str | None = None,
            references: list[str] | None = None, html: str | None = None,
            attachments: list[tuple[str, str, bytes]] = (), charset: str = "utf-8",
            headers: dict[str, str] | None = None, date="now") -> bytes:
    """A message as bytes, dated now as a mail program dates it; message_id=None and
    date=None leave the header out."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    if date == "now":
        date = dt.datetime.now(dt.UTC)
    if date is not None:
        msg["Date"] = format_datetime(date)
    if message_id == "auto":
        message_id = make_msgid(f"t{next(_counter)}", "example.org")
    if message_id is not None:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    if body is not None:
        msg.set_content(body, charset=charset)
    if html is not None:
        if body is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    for filename, ctype, content in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP)


def message_id_of(raw: bytes) -> str:
    for line in raw.split(b"\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode().strip("<>")
    raise ValueError("no Message-ID")
