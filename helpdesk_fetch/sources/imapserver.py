"""What differs between the IMAP servers people run, decided in one place.

Everything here is read from what the server announces *after* login, never before: the
greeting's list and the list before login are incomplete on purpose (evidence in
tests/SERVERS.md, asserted by tests/test_server_matrix.py):

======================  ================================================  ========================
difference              seen on                                           what helpdesk-fetch does
======================  ================================================  ========================
CAPABILITY after login  Dovecot sends it with the LOGIN answer; Cyrus     ask once after login:
                        as a response code; Courier not at all (and      imapclient takes the
                        Cyrus's greeting lists six names, Dovecot's       LOGIN answer's list,
                        pre-login list lacks MOVE and UIDPLUS)            else sends CAPABILITY
MOVE (RFC 6851)         Dovecot, Cyrus; **not Courier 5** (any MOVE is    ``move``: UID MOVE, else
                        "NO Error in IMAP command"), nor a Dovecot        COPY + \\Deleted +
                        configured without it                             expunge (a crash between
                                                                          is found again:
                                                                          imap.py
                                                                          ``_in_error_folder``)
UIDPLUS (RFC 4315)      all five announce it but a Dovecot configured     ``uidplus``: UID EXPUNGE
                        without; a plain EXPUNGE removes every            of ours, else EXPUNGE
                        \\Deleted message, someone else's too             (the only way there is)
CONDSTORE               Dovecot, Cyrus; Courier answers ENABLE with       not used: nothing here
                        an empty ``* ENABLED``                            depends on it
NAMESPACE (RFC 2342)    personal prefix "" (Dovecot's default) or         ``Namespaces.full_name``:
                        "INBOX." (Courier, Cyrus, cPanel's Dovecot);      the error folder inside
                        a name outside it is refused                      the personal namespace
CREATE of a folder      only Dovecot says ``[ALREADYEXISTS]``; Courier    imap.py never reads the
that exists             "Cannot create this folder.", Cyrus "Mailbox      text: after a NO it asks
                        already exists"                                   LIST whether it is there
SEARCH LARGER/SMALLER   Courier compares the size it stores (LF line      sizes are fetched
                        ends), not RFC822.SIZE (CRLF, as FETCH gives)     (RFC822.SIZE), never
                                                                          searched
8-bit header bytes      Cyrus turns each into ``X`` on APPEND and LMTP    nothing a client can
                        (``munge8bit``)                                   undo: README table
Timings in answers      Dovecot ends a tagged answer with how long it     ``without_timings``:
                        took: "NO Mailbox doesn't exist: X (0.001 +       dropped from what is
                        0.000 secs)."                                     reported (errors.py)
======================  ================================================  ========================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INBOX = "INBOX"
# Dovecot's "(0.001 + 0.000 secs)" or "(0.001 + 0.000 + 0.002 secs)" at the end of an answer
@dataclass(frozen=True, slots=True)
class Namespaces:
    """The server's namespaces (RFC 2342): the personal one's prefix and separator, and the
    non-empty prefixes of the others (other users', shared)."""

    prefix: str = ""
    separator: str = "."
    others: tuple[str, ...] = ()

    @classmethod
    def from_reply(cls, reply: Any) -> Namespaces:
        """From imapclient's ``namespace()``: (personal, other, shared), each None or a list
        of (prefix, separator); the first personal namespace is the one folders live in."""
        personal, other, shared = (list(part or ()) for part in reply)
        prefix, separator = personal[0] if personal else ("", None)
        others = tuple(p for p, _ in [*personal[1:], *other, *shared] if p)
        return cls(prefix or "", separator or ".", others)

    def full_name(self, name: str) -> str:
        """The folder an administrator means by *name*: a name that is already full is kept
        (INBOX, one that starts with the personal prefix, or with another namespace's prefix,
        e.g. "#shared." or "user."); any other is put inside the personal namespace, so
        "HD Error Messages" is "INBOX.HD Error Messages" where the prefix is "INBOX.". The
        name's own levels are the administrator's, with the server's separator."""
        if _is_inbox(name) or not self.prefix:
            return name
        if any(_starts_with(name, p) for p in (self.prefix, *self.others)):
            return name
        joint = "" if self.prefix.endswith(self.separator) else self.separator
        return f"{self.prefix}{joint}{name}"

    def describe(self) -> str:
        return f'prefix "{self.prefix}", separator "{self.separator}"'


@dataclass(frozen=True, slots=True)
class ServerTraits:
    """What a logged-in IMAP session may rely on (the table above)."""

    move: bool = False
    uidplus: bool = False
    namespaces: Namespaces | None = None  # None: the server has no NAMESPACE; names as given

    @classmethod
    def after_login(cls, client: Any) -> ServerTraits:
        """Read from an imapclient session that has logged in (one CAPABILITY at most, and
        NAMESPACE where announced)."""
        capabilities = set(client.capabilities())
        namespaces = None
        if b"NAMESPACE" in capabilities:
            namespaces = Namespaces.from_reply(client.namespace())
        return cls(move=b"MOVE" in capabilities, uidplus=b"UIDPLUS" in capabilities,
                   namespaces=namespaces)

    def full_name(self, name: str) -> str:
        """*name* as a full folder name on this server (``Namespaces.full_name``); a server
        without NAMESPACE takes names as they are given."""
        return name if self.namespaces is None else self.namespaces.full_name(name)


def _is_inbox(name: str) -> bool:
    return name.upper() == INBOX


def _starts_with(name: str, prefix: str) -> bool:
    """Whether *name* lies under *prefix*; INBOX is one name in any case (RFC 3501), so
    "inbox.Foo" is under "INBOX."."""
    if prefix[:5].upper() == INBOX and name[:5].upper() == INBOX:
        return name[5:].startswith(prefix[5:])
    return name.startswith(prefix)
