"""The raw floor of issue 7: the least a program must do to move mail from the server into SQLite
safely, so that helpdesk-fetch's figures have something to be compared with.

IMAPS: SEARCH ALL, then per batch of 100 one ``UID FETCH BODY.PEEK[]``, each message stored in its
own transaction (WAL, ``synchronous=FULL``), then ``UID STORE +FLAGS \\Deleted`` and
``UID EXPUNGE``. POP3S: UIDL, then RETR, store, DELE per message, QUIT. The same libraries as
helpdesk-fetch (imapclient, poplib), no parsing, no tickets.

    python -m bench.floor imaps|pop3s HOST PORT USER PASSWORD CA_FILE DATABASE
"""

from __future__ import annotations

import poplib
import sqlite3
import ssl
import sys

BATCH = 100


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, source_key TEXT UNIQUE, "
               "data BLOB)")
    return db


def store(db: sqlite3.Connection, key: str, data: bytes) -> None:
    db.execute("BEGIN")
    db.execute("INSERT INTO raw (source_key, data) VALUES (?, ?)", (key, data))
    db.execute("COMMIT")


def imaps(host: str, port: int, user: str, password: str, context: ssl.SSLContext,
          db: sqlite3.Connection) -> int:
    from imapclient import DELETED, IMAPClient

    client = IMAPClient(host, port, ssl_context=context)
    client._imap.debug = 0  # imapclient formats a trace of every message otherwise (see imap.py)
    client.login(user, password)
    client.select_folder("INBOX")
    uids = sorted(client.search("ALL"))
    for start in range(0, len(uids), BATCH):
        batch = uids[start:start + BATCH]
        data = client.fetch(batch, ["BODY.PEEK[]"])
        for uid in batch:
            store(db, f"imap:{uid}", data.pop(uid)[b"BODY[]"])
        client.add_flags(batch, [DELETED], silent=True)
        client.uid_expunge(batch)
    client.logout()
    return len(uids)


def pop3s(host: str, port: int, user: str, password: str, context: ssl.SSLContext,
          db: sqlite3.Connection) -> int:
    conn = poplib.POP3_SSL(host, port, context=context)
    conn.user(user)
    conn.pass_(password)
    uidls = [line.split() for line in conn.uidl()[1]]
    for num, uidl in uidls:
        lines = conn.retr(int(num))[1]
        store(db, f"pop3:{uidl.decode()}", b"\r\n".join(lines) + b"\r\n")
        conn.dele(int(num))
    conn.quit()
    return len(uidls)


def main(argv: list[str]) -> None:
    protocol, host, port, user, password, ca_file, database = argv
    context = ssl.create_default_context(cafile=ca_file)
    run = {"imaps": imaps, "pop3s": pop3s}[protocol]
    count = run(host, int(port), user, password, context, open_db(database))
    print(count)


if __name__ == "__main__":
    main(sys.argv[1:])
