"""Real servers for the tests (and the benchmark): Dovecot on loopback high ports, with a
self-signed certificate the tests trust through ``ca_file``; ``MailServer``, what every IMAP/POP3
server of the tests' matrix offers (Dovecot in three configurations here, Courier in
tests/courier.py, Cyrus in tests/cyrus.py; tests/SERVERS.md tells how they differ).

Nothing here installs anything: ``make test-deps`` (or ``.ci/run``) does, as root. A missing
server is an error that says so, never a skipped test.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import itertools
import logging
import os
import poplib
import pwd
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PASSWORD = "dovecot-test-secret"
_deliveries = itertools.count(1)


class ServerMissing(RuntimeError):
    pass


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port for a server that binds it a little later.

    It is taken below the kernel's ephemeral range: a port from that range could, in the moment
    between this check and the server's bind, become the local port of any outgoing connection
    or port-0 listener on the machine (the suite runs many), and the server would fail to start
    or, worse, a client would reach the wrong server."""
    low = _ephemeral_low()
    candidates = list(range(max(1024, low - 12000), low)) if low > 4000 else []
    random.shuffle(candidates)
    for port in candidates[:500]:
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # an unusual port range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def make_certificate(directory: Path, name: str = "localhost",
                     names: str = "DNS:localhost,IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for *names* (a private CA of its own)."""
    cert, key = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "3650", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True)
    return cert, key


def dovecot_base():
    """A directory Dovecot's unprivileged mail processes can reach (pytest's are mode 700)."""
    return server_base("dovecot")


@contextlib.contextmanager
def server_base(name: str):
    """A directory a server's unprivileged mail processes can reach, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=f"helpdesk-fetch-{name}-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


class MailServer:
    """A real IMAP (and maybe POP3) server on loopback ports, with the helpers tests use.

    Subclasses set ``name`` (the matrix's name), ``namespace`` (the personal namespace's prefix
    and separator, RFC 2342), ``ports`` (imap, imaps and, where the server has POP3, pop3 and
    pop3s: the plain ports offer STARTTLS/STLS) and ``cert`` (its self-signed certificate, which
    is also the CA that verifies it). Every user logs in with ``password``; a helper given a user
    name creates the user first where the server needs that (``add_user``), so a fresh name is a
    fresh, empty mailbox on every server.
    """

    name = "?"
    namespace = ("", ".")
    password = PASSWORD
    # How deliver() puts a message in: "maildir" (the bytes as given, into the Maildir),
    # "maildir-lf" (the same with LF line ends, as Courier's store keeps them) or "lmtp".
    delivery = "maildir"
    ports: dict[str, int]
    cert: Path

    def add_user(self, user: str) -> None:
        """Let *user* log in with ``password`` (idempotent). Dovecot takes any name as it is."""

    def folder(self, *parts: str) -> str:
        """The full name of a personal folder: ``folder("HD Error Messages")`` is
        "INBOX.HD Error Messages" where the namespace prefix is "INBOX."."""
        if parts == ("INBOX",):
            return "INBOX"
        prefix, separator = self.namespace
        return prefix + separator.join(parts)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def connect_imap(self, port: str = "imaps"):
        """An IMAP connection not yet logged in (TLS from the start on imaps)."""
        from imapclient import IMAPClient

        return IMAPClient("127.0.0.1", self.ports[port], ssl=port == "imaps",
                          ssl_context=self.ssl_context(), timeout=30)

    def imap(self, user: str):
        """An IMAP connection (imaps) logged in as *user*."""
        self.add_user(user)
        client = self.connect_imap()
        client.login(user, self.password)
        return client

    def pop3(self, user: str) -> poplib.POP3_SSL:
        """A POP3 connection (pop3s) logged in as *user*."""
        self.add_user(user)
        client = poplib.POP3_SSL("127.0.0.1", self.ports["pop3s"], context=self.ssl_context(),
                                 timeout=30)
        client.user(user)
        client.pass_(self.password)
        return client

    def append(self, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
        """APPEND *messages* to *folder* (created when missing; a full name, see ``folder``)."""
        with contextlib.closing(_Logout(self.imap(user))) as wrapper:
            client = wrapper.client
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in messages:
                client.append(folder, raw)

    def messages(self, user: str, folder: str = "INBOX", *,
                 include_deleted: bool = False) -> list[bytes]:
        """The raw messages in *folder* (not \\Deleted ones unless asked), in UID order."""
        with contextlib.closing(_Logout(self.imap(user))) as wrapper:
            client = wrapper.client
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"] if include_deleted else ["NOT", "DELETED"])
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [data[uid][b"BODY[]"] for uid in sorted(data)]

    def deliver(self, user: str, messages: list[bytes]) -> None:
        """Put *messages* into *user*'s INBOX as a local MTA would (see ``delivery``)."""
        raise NotImplementedError

    def later_arrival(self) -> None:
        """Make what is appended next arrive after what came before, in the POP3 order too.
        Dovecot and Cyrus list POP3 messages by UID, in the order of arrival."""

    def account(self, name: str, user: str, protocol: str = "imap", security: str = "ssl",
                **extra) -> dict:
        """An [[accounts]] table for *user* on this server."""
        self.add_user(user)
        key = {("imap", "ssl"): "imaps", ("pop3", "ssl"): "pop3s"}.get(
            (protocol, security), protocol)
        if key not in self.ports:
            raise ValueError(f"{self.name} has no {key} port (it offers {sorted(self.ports)})")
        table = {"name": name, "protocol": protocol, "host": "127.0.0.1",
                 "port": self.ports[key], "security": security, "username": user,
                 "password": self.password, "ca_file": str(self.cert)}
        table.update(extra)
        return table


class Dovecot(MailServer):
    """A private Dovecot instance: IMAP (STARTTLS), IMAPS, POP3 (STLS) and POP3S on free ports.

    Any user name logs in with PASSWORD, so each test uses fresh mailboxes by using fresh names.
    """

    name = "dovecot"

    def __init__(self, base: Path, *, ssl_enabled: bool = True, extra_config: str = "",
                 oauth2_introspection_url: str | None = None) -> None:
        if shutil.which("dovecot") is None:
            raise ServerMissing("Dovecot is not installed; run `sudo make test-deps` (Debian "
                                "packages dovecot-imapd dovecot-pop3d)")
        self.base = base
        self.ssl_enabled = ssl_enabled
        self.extra_config = extra_config
        self.oauth2_introspection_url = oauth2_introspection_url
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.cert, self.key = make_certificate(base)
        self.config = base / "dovecot.conf"
        self.log = base / "dovecot.log"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Dovecot:
        (self.base / "run").mkdir(exist_ok=True)
        mail = self.base / "mail"
        mail.mkdir(exist_ok=True)
        uid, gid, login_user, internal_user = self._users()
        os.chown(mail, uid, gid)
        self.config.write_text(self._config_text(uid, gid, login_user, internal_user))
        # Dovecot daemonizes; a captured pipe would stay open, so its early errors go to a file.
        with open(self.base / "startup.log", "wb") as errors:
            done = subprocess.run(["dovecot", "-c", str(self.config)], stdout=errors,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError("Dovecot did not start: "
                               + (self.base / "startup.log").read_text(errors="replace"))
        # Without TLS Dovecot opens no imaps/pop3s listener (they inherit ssl = yes).
        listening = [port for name, port in self.ports.items()
                     if self.ssl_enabled or not name.endswith("s")]
        try:
            for port in listening:
                wait_for_port(port)
        except RuntimeError:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.config), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def _users(self) -> tuple[int, int, str, str]:
        """Mail processes may not run as root; as root use nobody and Dovecot's own users."""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid, "dovenull", "dovecot"
        me = getpass.getuser()
        return os.geteuid(), os.getegid(), me, me

    def _config_text(self, uid: int, gid: int, login_user: str, internal_user: str) -> str:
        p = self.ports
        ssl_lines = (f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.key}\n"
                     if self.ssl_enabled else "ssl = no\n")
        secure = "\n    ssl = yes" if self.ssl_enabled else ""
        return f"""
base_dir = {self.base}/run
state_dir = {self.base}/run/state
instance_name = hdtest-{p['imap']}
protocols = imap pop3
listen = 127.0.0.1
log_path = {self.log}
default_login_user = {login_user}
default_internal_user = {internal_user}
mail_location = maildir:{self.base}/mail/%u/Maildir
{ssl_lines}disable_plaintext_auth = no
{self._passdbs()}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {p['imap']}
  }}
  inet_listener imaps {{
    port = {p['imaps']}{secure}
  }}
  process_min_avail = 1
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {p['pop3']}
  }}
  inet_listener pop3s {{
    port = {p['pop3s']}{secure}
  }}
}}
service anvil {{
  chroot =
  # Every test connects from 127.0.0.1, so Dovecot's per-IP penalty after a failed login would
  # slow down every later login by up to 15 s; an unreachable penalty socket turns it off.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
mail_max_userip_connections = 100
auth_failure_delay = 0
pop3_uidl_format = %08Xu%08Xv
{self.extra_config}
"""

    def _passdbs(self) -> str:
        """Any user logs in with PASSWORD; with an introspection URL also with XOAUTH2 and
        OAUTHBEARER, whose tokens Dovecot's oauth2 passdb checks there (RFC 7662, POST)."""
        static = f"passdb {{\n  driver = static\n  args = password={PASSWORD}\n"
        if not self.oauth2_introspection_url:
            return f"auth_mechanisms = plain login\n{static}}}"
        settings = self.base / "dovecot-oauth2.conf.ext"
        settings.write_text(f"introspection_mode = post\n"
                            f"introspection_url = {self.oauth2_introspection_url}\n"
                            "force_introspection = yes\nusername_attribute = username\n"
                            "active_attribute = active\nactive_value = true\n")
        return (f"auth_mechanisms = plain login xoauth2 oauthbearer\n"
                f"{static}  mechanisms = plain login\n}}\n"
                f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {settings}\n}}")

    # -- helpers for tests ------------------------------------------------------------------
    def deliver(self, user: str, messages: list[bytes]) -> None:
        """Put *messages* into *user*'s Maildir byte for byte, as a local MTA would (APPEND
        would turn NUL into 0x80 and bare CR or LF into CRLF)."""
        self.messages(user)  # the first login creates the Maildir
        maildir_deliver(self.base / "mail" / user / "Maildir", messages)

    def reset_uidvalidity(self, user: str, first: list[bytes] = ()) -> None:
        """Make Dovecot renumber *user*'s INBOX, as after a restore from backup or a move to
        another server: without its UID list and index it gives every message a new UID under
        the next UIDVALIDITY (kept in dovecot-uidvalidity, so never the same one again). The
        messages *first* are delivered and numbered before the ones already there (from 1):
        Dovecot's own order of renumbering is that of the directory listing."""
        maildir = self.base / "mail" / user / "Maildir"
        there = [p for folder in ("cur", "new") for p in (maildir / folder).iterdir()]
        aside = Path(tempfile.mkdtemp(dir=maildir.parent))
        for path in there:
            path.rename(aside / f"{path.parent.name}-{path.name}")
        for path in maildir.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()
        maildir_deliver(maildir, first)
        self.messages(user)  # numbered now
        for path in there:
            (aside / f"{path.parent.name}-{path.name}").rename(path)
        aside.rmdir()


# Dovecot 2.3's capabilities after login (`imap_capability` replaces them), less MOVE and UIDPLUS.
DOVECOT_WITHOUT_MOVE_UIDPLUS = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN "
    "CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE "
    "LITERAL+")


class DovecotInboxNamespace(Dovecot):
    """Dovecot with the Courier/cPanel layout: the personal namespace has the prefix "INBOX."
    and the separator ".", so folders are "INBOX.Foo" and a top-level "Foo" cannot be made."""

    name = "dovecot-inbox-ns"
    namespace = ("INBOX.", ".")

    def __init__(self, base: Path) -> None:
        super().__init__(base, extra_config="namespace inbox {\n  inbox = yes\n"
                                             "  prefix = INBOX.\n  separator = .\n}\n")


class DovecotWithoutMove(Dovecot):
    """Dovecot that does not announce MOVE and UIDPLUS after login (`imap_capability`). It
    still carries out UID MOVE and UID EXPUNGE when asked (tests/SERVERS.md)."""

    name = "dovecot-nomove"

    def __init__(self, base: Path) -> None:
        super().__init__(base,
                         extra_config=f"imap_capability = {DOVECOT_WITHOUT_MOVE_UIDPLUS}\n")


def maildir_deliver(maildir: Path, messages: list[bytes]) -> None:
    """Write *messages* into *maildir*/new byte for byte, owned like the folder, as a local MTA
    does (Dovecot and Courier both store Maildirs)."""
    new = maildir / "new"
    owner = new.stat()
    for raw in messages:
        path = new / f"{time.time_ns()}.P{os.getpid()}Q{next(_deliveries)}.test"
        path.write_bytes(raw)
        os.chown(path, owner.st_uid, owner.st_gid)


class _Logout:
    def __init__(self, client) -> None:
        self.client = client

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.logout()


def _auth(login: tuple[str, str] | None) -> dict:
    """aiosmtpd's settings for requiring *login* (what clients send: UTF-8 bytes)."""
    if login is None:
        return {}
    from aiosmtpd.smtp import AuthResult, LoginPassword

    logging.getLogger("mail.log").setLevel(logging.ERROR)  # its warnings about AUTH without TLS
    wanted = LoginPassword(login[0].encode(), login[1].encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data == wanted)

    return {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps what it receives.

    With *tls* (certificate, key) it offers STARTTLS and requires it before MAIL; with
    *implicit_tls* as well, it speaks TLS from the first byte instead (port 465 style, RFC 8314);
    *smtputf8* offers SMTPUTF8; *login* (username, password) requires AUTH (PLAIN or LOGIN,
    also without TLS); ``refuse`` maps recipients to the reply RCPT TO gets for them
    (e.g. "451 4.7.1 Greylisted").
    """

    def __init__(self, *, tls: tuple[Path, Path] | None = None, implicit_tls: bool = False,
                 smtputf8: bool = False, login: tuple[str, str] | None = None) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:  # pragma: no cover - a missing test dependency
            raise ServerMissing("aiosmtpd is not installed; run `make test`") from exc
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: dict[str, str] = {}
        self.port = free_port()
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        starttls = context is not None and not implicit_tls
        self._controller = functools.partial(
            Controller, self, hostname="127.0.0.1", port=self.port,
            ssl_context=context if implicit_tls else None,
            tls_context=context if starttls else None, require_starttls=starttls,
            enable_SMTPUTF8=smtputf8, **_auth(login))
        self._running: Any = None  # the controller while the server runs

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              bytes(envelope.original_content or envelope.content)))
        return "250 OK"

    def start(self) -> SmtpSink:
        """Start the server, on the same port again after a ``stop`` (an outage that ends)."""
        self._running = self._controller()
        self._running.start()
        return self

    def stop(self) -> None:
        """Stop the server (a test may stop it early: then this does nothing)."""
        if self._running is not None:
            self._running.stop()
            self._running = None

    def config(self, **extra) -> dict:
        """An [smtp] table for this server."""
        table = {"host": "127.0.0.1", "port": self.port, "security": "none",
                 "from_address": "IT Helpdesk <helpdesk@example.com>"}
        table.update(extra)
        return table

    def mails(self):
        """The received mails as (recipients, parsed message)."""
        import email
        from email import policy

        return [(rcpts, email.message_from_bytes(raw, policy=policy.default))
                for _, rcpts, raw in self.messages]
