"""``deliver`` and ``errors retry`` send the auto-mails their messages queue, after the commit,
as ``fetch`` does (spec §6) — through a real SMTP server."""

from __future__ import annotations

import pytest

from tests.mails import message, message_id_of
from tests.proc import helpdesk_fetch
from tests.test_ingest_maildir import make_maildir

pytestmark = pytest.mark.both_backends  # SQLite and PostgreSQL

STAFF = ["alice@example.com", "bob@example.com"]


def kinds(smtp) -> list[tuple[str, list[str]]]:
    return sorted((m["X-Helpdesk-Fetch"].split(";")[0], rcpts) for rcpts, m in smtp.mails())


def test_deliver_sends_the_auto_mails_of_its_message(write_config, smtp, run):
    config = write_config([], smtp=smtp.config(),
                          resources=[{"name": "it-support", "members": STAFF}])
    request = message("VPN down", sender="Carol <carol@example.org>")

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config, input=request)

    assert result.returncode == 0, result.stderr
    assert kinds(smtp) == [("new_ticket", ["carol@example.org"]),
                           ("new_ticket_resource", STAFF)]
    answer = next(m for _, m in smtp.mails() if m["X-Helpdesk-Fetch"].startswith("new_ticket;"))
    assert answer["In-Reply-To"] == f"<{message_id_of(request)}>"
    assert run.json("status", config=config)["outbox_pending"] == 0
    assert helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                          input=request).returncode == 0
    assert len(smtp.mails()) == 2  # the same message again: stored before, nothing sent


def test_deliver_stores_even_when_smtp_is_down(write_config, run):
    config = write_config([], smtp={"host": "127.0.0.1", "port": 1, "security": "none",
                                    "from_address": "helpdesk@example.com"})

    result = helpdesk_fetch("deliver", "--resource", "it-support", config=config,
                            input=message("Queued for later"))

    assert result.returncode == 0, result.stderr
    assert b"auto-mails not sent" in result.stderr
    status = run.json("status", config=config)
    assert status["outbox_pending"] == 2 and status["outbox"]["failing"] == 2
    assert "2 of them not sent so far (the last error below)" in " ".join(
        run("status", config=config).output.split())


def test_retry_sends_the_auto_mails_of_the_messages_it_stores(tmp_path, write_config, smtp,
                                                              run):
    box = make_maildir(tmp_path / "Maildir", [message("Huge", sender="dave@example.org",
                                                      body="h" * 4000)])
    account = {"name": "local", "protocol": "maildir", "path": str(box),
               "resource": "it-support"}
    resources = [{"name": "it-support", "members": STAFF}]
    config = write_config([account], smtp=smtp.config(), resources=resources,
                          settings={"max_message_bytes": 2000})
    run("fetch", config=config)
    assert smtp.mails() == []
    write_config([account], smtp=smtp.config(), resources=resources,
                 settings={"max_message_bytes": 20000})

    assert run("errors", "retry", "--all", config=config).exit_code == 0

    assert kinds(smtp) == [("new_ticket", ["dave@example.org"]),
                           ("new_ticket_resource", STAFF)]
    run("errors", "retry", "--all", config=config)
    assert len(smtp.mails()) == 2
