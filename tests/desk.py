"""A helpdesk seen through the command line, as the end-to-end tests of mail kinds and rules use
it: IMAP mailboxes on Dovecot in, a real SMTP server out."""

from __future__ import annotations


class Desk:
    """Accounts (name -> Dovecot user) in one accounts file, driven through the CLI."""

    def __init__(self, dovecot, users: dict[str, str], config, smtp, run) -> None:
        self.dovecot, self.users, self.config, self.smtp, self.run = (dovecot, users, config,
                                                                      smtp, run)

    def send(self, *raws: bytes, account: str = "helpdesk") -> None:
        self.dovecot.append(self.users[account], list(raws))

    def fetch(self, *args: str):
        result = self.run("fetch", *args, config=self.config)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str):
        return self.run.json(*args, config=self.config)
