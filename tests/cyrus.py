"""Cyrus IMAP and POP3 for the tests' server matrix (tests/SERVERS.md), from Debian's
cyrus-imapd and cyrus-pop3d, which conflict with Dovecot: tests/install-servers.sh unpacks them
(with cyrus-common and sasl2-bin) into PREFIX and installs what they depend on.

Cyrus takes every path from its configuration (``-C`` on every command), so it needs no mount
namespace. Its daemons run as ``nobody`` (``cyrus_user``), and they log only to syslog.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import smtplib
import subprocess
import threading
from pathlib import Path

from tests.courier import PREFIX
from tests.daemons import Daemons
from tests.servers import MailServer, ServerMissing, free_port, make_certificate, wait_for_port

BIN = PREFIX / "usr/lib/cyrus/bin"
SASLPASSWD2 = PREFIX / "usr/sbin/saslpasswd2"
ADMIN = "cyrus"  # `admins:` in imapd.conf; creates the users' mailboxes
REALM = "localhost"  # = servername: Cyrus looks SASL users up in this realm
HINT = ("run `sudo make test-deps` (tests/install-servers.sh unpacks Debian's cyrus-imapd, "
        f"cyrus-pop3d, cyrus-common and sasl2-bin into {PREFIX})")

# Debian's /etc/imapd.conf (cyrus-common 3.6), with this instance's paths, plus the lines after
# the blank one. popminpoll is 0 here: Debian's 1 lets a user log in to POP3 once a minute only.
_IMAPD_CONF = """\
configdirectory: {base}/lib
proc_path: {base}/run/proc
mboxname_lockpath: {base}/run/lock
defaultpartition: default
partition-default: {base}/spool
altnamespace: no
unixhierarchysep: no
lmtp_downcase_rcpt: yes
allowanonymouslogin: no
popminpoll: {popminpoll}
autocreate_quota: 0
umask: 077
sieveusehomedir: false
sievedir: {base}/sieve
hashimapspool: true
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auto_transition: no
tls_client_ca_dir: /etc/ssl/certs
tls_session_timeout: 1440
lmtpsocket: {base}/run/socket/lmtp
idlesocket: {base}/run/socket/idle
notifysocket: {base}/run/socket/notify
syslog_prefix: cyrus-test

servername: {realm}
admins: {admin}
cyrus_user: nobody
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {base}/sasldb2
sasl_mech_list: PLAIN LOGIN
tls_server_cert: {cert}
tls_server_key: {key}
"""

# Debian's /etc/cyrus.conf, less nntp, http, sieve and notify, plus imaps and pop3s; the
# master passes no -C to what it starts, so every command names the configuration.
_CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb {c} -r"
}}
SERVICES {{
  imap cmd="{bin}/imapd {c} -U 30" listen="127.0.0.1:{imap}" prefork=0 maxchild=100
  imaps cmd="{bin}/imapd {c} -s -U 30" listen="127.0.0.1:{imaps}" prefork=0 maxchild=100
  pop3 cmd="{bin}/pop3d {c} -U 30" listen="127.0.0.1:{pop3}" prefork=0 maxchild=50
  pop3s cmd="{bin}/pop3d {c} -s -U 30" listen="127.0.0.1:{pop3s}" prefork=0 maxchild=50
  lmtpunix cmd="{bin}/lmtpd {c}" listen="{base}/run/socket/lmtp" prefork=0 maxchild=20
}}
EVENTS {{
  checkpoint cmd="{bin}/ctl_cyrusdb {c} -c" period=30
}}
"""


_CRLF = re.compile(rb"\r\n|\r|\n")


def library_path() -> str:
    """Where the unpacked libcyrus*.so are (the multiarch directory of this machine)."""
    found = glob.glob(str(PREFIX / "usr/lib/*/libcyrus.so.0"))
    return os.path.dirname(found[0]) if found else ""


def check_installed() -> None:
    """Cyrus can run here, or a ServerMissing that says how to make it so."""
    needed = [BIN / "master", BIN / "imapd", BIN / "pop3d", BIN / "lmtpd", SASLPASSWD2]
    missing = [str(path) for path in needed if not path.exists()]
    if missing or not library_path():
        raise ServerMissing(f"Cyrus is not installed ({', '.join(missing) or 'libcyrus'} "
                            f"missing); {HINT}")
    if os.geteuid() != 0:
        raise ServerMissing("Cyrus's test server runs its daemons as nobody and needs root to "
                            "start them; run the tests as root, as CI does")


class Cyrus(MailServer):
    """A private Cyrus: IMAP (STARTTLS), IMAPS, POP3 (STLS), POP3S, and LMTP on a socket.

    Users are SASL users in a sasldb of this instance (``saslpasswd2``); ``add_user`` adds one
    and creates its mailbox ("user.NAME") as the admin. ``deliver`` goes through LMTP, as an
    MTA delivers to Cyrus: not byte for byte (tests/SERVERS.md).
    """

    name = "cyrus"
    namespace = ("INBOX.", ".")
    delivery = "lmtp"

    def __init__(self, base: Path, *, popminpoll: int = 0) -> None:
        check_installed()
        self.base = base
        self.popminpoll = popminpoll
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.cert, self.key = make_certificate(base)
        self.config = base / "imapd.conf"
        self.lmtp_socket = base / "run/socket/lmtp"
        self.log = base / "cyrus.log"
        self._users: set[str] = set()
        self._lock = threading.Lock()
        self._daemons: Daemons | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Cyrus:
        self._configure()
        self._saslpasswd(ADMIN)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": library_path()}
        self._daemons = Daemons(f"{BIN}/master -C {self.config} -M {self.base}/cyrus.conf "
                                f"-p {self.base}/run/master.pid -D &\n", self.log, env=env)
        self._daemons.start()
        try:
            for port in self.ports.values():
                wait_for_port(port)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(self._daemons.describe_failure(f"Cyrus did not start: {exc}"))
        return self

    def stop(self) -> None:
        if self._daemons is not None:
            self._daemons.stop()

    def _configure(self) -> None:
        nobody = pwd.getpwnam("nobody")
        for sub in ("lib/socket", "spool", "sieve", "run/proc", "run/lock", "run/socket"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.config.write_text(_IMAPD_CONF.format(
            base=self.base, realm=REALM, admin=ADMIN, cert=self.cert, key=self.key,
            popminpoll=self.popminpoll))
        (self.base / "cyrus.conf").write_text(_CYRUS_CONF.format(
            bin=BIN, c=f"-C {self.config}", base=self.base, **self.ports))
        # lib/socket holds the master's locks, run/socket the LMTP socket
        owned = ["lib", "lib/socket", "spool", "sieve", "run", "run/proc", "run/lock",
                 "run/socket"]
        for path in [*(self.base / sub for sub in owned), self.key]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def _saslpasswd(self, user: str) -> None:
        subprocess.run([str(SASLPASSWD2), "-p", "-c", "-u", REALM, "-f",
                        str(self.base / "sasldb2"), user], input=self.password.encode(),
                       check=True, capture_output=True,
                       env={**os.environ, "LD_LIBRARY_PATH": library_path()})
        nobody = pwd.getpwnam("nobody")
        os.chown(self.base / "sasldb2", nobody.pw_uid, nobody.pw_gid)

    # -- helpers for tests ------------------------------------------------------------------
    def add_user(self, user: str) -> None:
        """A SASL user *user* (password ``password``) with an empty INBOX ("user.NAME")."""
        with self._lock:
            if user in self._users:
                return
            if "." in user:  # the hierarchy separator: "user.a.b" is a folder of "a"
                raise ValueError(f"Cyrus (unixhierarchysep: no) takes no '.' in a user name: "
                                 f"{user!r}")
            self._saslpasswd(user)
            admin = self.connect_imap("imap")  # loopback: no TLS, a tenth of the time
            try:
                admin.login(ADMIN, self.password)
                admin.create_folder(f"user.{user}")
            finally:
                with contextlib.suppress(Exception):
                    admin.logout()
            self._users.add(user)

    def deliver(self, user: str, messages: list[bytes]) -> None:
        """Deliver *messages* to *user*'s INBOX over LMTP, as an MTA does to Cyrus: every line
        ends in CRLF on the wire, and Cyrus adds Return-Path, Received and more (and Message-ID
        and Date where missing). A message Cyrus refuses (NUL) raises smtplib's error."""
        self.add_user(user)
        with contextlib.closing(smtplib.LMTP(str(self.lmtp_socket))) as lmtp:
            lmtp.ehlo("localhost")
            for raw in messages:
                lmtp.sendmail("sender@example.com", [user], _CRLF.sub(b"\r\n", raw))
            lmtp.quit()
