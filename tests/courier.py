"""Courier IMAP and POP3 for the tests' server matrix (tests/SERVERS.md), from Debian's
courier-imap and courier-pop, which conflict with Dovecot: tests/install-servers.sh unpacks them
into PREFIX and installs what they depend on (courier-authlib among it).

Courier's authentication library has its paths built in: the daemon's socket is
/run/courier/authdaemon/socket, its settings and the user database are in /etc/courier. So the
server runs in a private mount namespace (we are root) where this instance's own directories are
mounted on those two; nothing of the machine's /etc/courier or /run/courier is touched.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
from pathlib import Path

from tests.daemons import Daemons
from tests.servers import (
    MailServer,
    ServerMissing,
    free_port,
    maildir_deliver,
    make_certificate,
    wait_for_port,
)

PREFIX = Path(os.environ.get("HELPDESK_TEST_SERVERS", "/opt/helpdesk-fetch-test-servers"))
AUTHDAEMOND = Path("/usr/lib/courier/courier-authlib/authdaemond")  # courier-authlib
MAKEUSERDB = Path("/usr/sbin/makeuserdb")  # courier-authlib-userdb
HINT = ("run `sudo make test-deps` (tests/install-servers.sh unpacks Debian's courier-imap and "
        f"courier-pop into {PREFIX} and installs courier-authlib)")

# Debian's /etc/courier/{imapd,imapd-ssl,pop3d,pop3d-ssl} are used as they are, with these
# lines appended: loopback, our ports, our certificate, no TLS session cache file, and more
# connections per address than Debian's 20 (IMAP) and 4 (POP3), since every test comes from
# 127.0.0.1.
_OVERRIDES = {
    "imapd": "ADDRESS=127.0.0.1\nPORT={imap}\nMAXPERIP=100\n",
    "imapd-ssl": "SSLADDRESS=127.0.0.1\nSSLPORT={imaps}\n{tls}",
    "pop3d": "ADDRESS=127.0.0.1\nPORT={pop3}\nMAXPERIP=100\n",
    "pop3d-ssl": "SSLADDRESS=127.0.0.1\nSSLPORT={pop3s}\n{tls}",
}
_TLS = ("COURIERTLS={prefix}/usr/bin/couriertls\nTLS_CERTFILE=/etc/courier/server.pem\n"
        "TLS_DHPARAMS=\nTLS_CACHEFILE=\n")

# The packages' init scripts (/usr/lib/courier/{imapd,imapd-ssl,pop3d,pop3d-ssl}), without
# courierlogger (output goes to our log) and the IMAP access file.
_LISTENERS = """
( set -a; . /etc/courier/imapd; . /etc/courier/imapd-ssl; IMAP_STARTTLS=$IMAPDSTARTTLS
  exec {bin}/couriertcpd -address=$ADDRESS -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP $TCPDOPTS \\
      $PORT {lib}/imaplogin {prefix}/usr/bin/imapd $MAILDIRPATH ) &
( set -a; . /etc/courier/imapd; . /etc/courier/imapd-ssl; IMAP_TLS=1
  exec {bin}/couriertcpd -address=$SSLADDRESS -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP \\
      $TCPDOPTS $SSLPORT $COURIERTLS -server -tcpd -user=courier \\
      {lib}/imaplogin {prefix}/usr/bin/imapd $MAILDIRPATH ) &
( set -a; . /etc/courier/pop3d; . /etc/courier/pop3d-ssl
  exec {bin}/couriertcpd -address=$ADDRESS -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP $TCPDOPTS \\
      $PORT {lib}/courierpop3login {lib}/courierpop3d $MAILDIRPATH ) &
( set -a; . /etc/courier/pop3d; . /etc/courier/pop3d-ssl
  POP3_TLS=1; POP3_STARTTLS=NO; POP3_TLS_REQUIRED=0
  exec {bin}/couriertcpd -address=$SSLADDRESS -maxprocs=$MAXDAEMONS -maxperip=$MAXPERIP \\
      $TCPDOPTS $SSLPORT $COURIERTLS -server -tcpd -user=courier \\
      {lib}/courierpop3login {lib}/courierpop3d $MAILDIRPATH ) &
"""


def check_installed() -> None:
    """Courier can run here, or a ServerMissing that says how to make it so."""
    needed = [PREFIX / "usr/bin/imapd", PREFIX / "usr/sbin/couriertcpd",
              PREFIX / "etc/courier/imapd", AUTHDAEMOND, MAKEUSERDB]
    missing = [str(path) for path in needed if not path.exists()]
    if missing:
        raise ServerMissing(f"Courier is not installed ({', '.join(missing)} missing); {HINT}")
    if not Path("/etc/courier").is_dir():
        raise ServerMissing(f"/etc/courier (where Courier's directories are mounted) is "
                            f"missing; {HINT}")
    if os.geteuid() != 0:
        raise ServerMissing("Courier's test server needs root (a private mount namespace for "
                            "/etc/courier and /run/courier); run the tests as root, as CI does")
    try:
        pwd.getpwnam("courier")
    except KeyError:
        raise ServerMissing(f"there is no 'courier' user (courier-authlib creates it); "
                            f"{HINT}") from None


class Courier(MailServer):
    """A private Courier: IMAP (STARTTLS), IMAPS, POP3 (STLS) and POP3S on free ports.

    Users are lines of a userdb file (courier-authlib's authuserdb), added on first use by
    ``add_user``; their Maildirs belong to nobody. ``deliver`` writes into the Maildir.
    """

    name = "courier"
    namespace = ("INBOX.", ".")
    delivery = "maildir-lf"

    def __init__(self, base: Path) -> None:
        check_installed()
        self.base = base
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        self.cert, self.key = make_certificate(base)
        self.etc, self.run, self.mail = base / "etc", base / "run", base / "mail"
        self.log = base / "courier.log"
        nobody = pwd.getpwnam("nobody")
        self._owner = (nobody.pw_uid, nobody.pw_gid)
        self._users: set[str] = set()
        self._lock = threading.Lock()
        self._daemons: Daemons | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Courier:
        self._configure()
        lib = PREFIX / "usr/lib/courier/courier"
        script = (f"mkdir -p /run/courier\n"
                  f"mount --bind {self.etc} /etc/courier\n"
                  f"mount --bind {self.run} /run/courier\n"
                  f"{AUTHDAEMOND} &\n"
                  + _LISTENERS.format(bin=PREFIX / "usr/sbin", lib=lib, prefix=PREFIX))
        self._daemons = Daemons(script, self.log, mount_namespace=True,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        self._daemons.start()
        try:
            for port in self.ports.values():
                wait_for_port(port)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(self._daemons.describe_failure(f"Courier did not start: {exc}"))
        return self

    def stop(self) -> None:
        if self._daemons is not None:
            self._daemons.stop()

    def _configure(self) -> None:
        for directory in (self.etc, self.run / "authdaemon", self.mail):
            directory.mkdir(parents=True, exist_ok=True)
        (self.etc / "authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n'
            'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n')
        values = {**self.ports, "tls": _TLS.format(prefix=PREFIX)}
        for name, override in _OVERRIDES.items():
            debian = (PREFIX / "etc/courier" / name).read_text()
            (self.etc / name).write_text(debian + "\n# helpdesk-fetch tests\n"
                                         + override.format(**values))
        pem = self.etc / "server.pem"  # couriertls wants key and certificate in one file
        pem.write_bytes(self.key.read_bytes() + self.cert.read_bytes())
        courier = pwd.getpwnam("courier")
        os.chown(pem, courier.pw_uid, courier.pw_gid)  # read after couriertls -user=courier
        pem.chmod(0o600)
        self._hash = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=self.password,
                                    capture_output=True, text=True, check=True).stdout.strip()
        userdb = self.etc / "userdb"
        userdb.write_text("")
        userdb.chmod(0o600)  # makeuserdb insists
        self._make_userdb()

    def _make_userdb(self) -> None:
        subprocess.run([str(MAKEUSERDB), "-f", str(self.etc / "userdb")], check=True,
                       capture_output=True)

    # -- helpers for tests ------------------------------------------------------------------
    def add_user(self, user: str) -> None:
        """A userdb entry for *user* (password ``password``) and an empty Maildir."""
        with self._lock:
            if user in self._users:
                return
            home = self.mail / user
            maildir = home / "Maildir"
            for sub in ("cur", "new", "tmp"):
                (maildir / sub).mkdir(parents=True, exist_ok=True)
            for path in (home, maildir, *(maildir / sub for sub in ("cur", "new", "tmp"))):
                os.chown(path, *self._owner)
            uid, gid = self._owner
            with open(self.etc / "userdb", "a") as userdb:
                userdb.write(f"{user}\tuid={uid}|gid={gid}|home={home}|mail={maildir}"
                             f"|systempw={self._hash}\n")
            self._make_userdb()
            self._users.add(user)

    def later_arrival(self) -> None:
        """Courier's POP3 sorts a Maildir by the file name's leading second, then by the rest of
        the name as text, where its microseconds are not zero-padded: within one second the
        order of arrival is lost. Wait for the next second."""
        time.sleep(1.05 - time.time() % 1)

    def deliver(self, user: str, messages: list[bytes]) -> None:
        """Write *messages* into *user*'s Maildir as an MTA on Unix does: CRLF line ends
        become LF, every other byte as given (bare CR, bare LF, NUL, 8-bit). Courier serves
        each stored LF as CRLF without looking for a CR before it, so a file with CRLF line
        ends would come out with CR CR LF (its deliverquota stores what it is given)."""
        self.add_user(user)
        maildir_deliver(self.mail / user / "Maildir",
                        [raw.replace(b"\r\n", b"\n") for raw in messages])

