"""Everything that reaches into imapclient's and imaplib's private parts, in one place (bounds
in setup.cfg; tests/test_adapters.py notices when one changes).

imaplib connects, does TLS and reads the greeting inside its constructor, where the run's
cutoff could not reach the socket; imapclient builds that object in a private factory, and
leaves imaplib's protocol trace on for good.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
from typing import Any

from imapclient import IMAPClient
from imapclient.imapclient import SocketTimeout

from helpdesk_fetch.sources.base import Cutoff
from helpdesk_fetch.sources.net import BadGreeting


def connect(cutoff: Cutoff, host: str, port: int, *, timeout: float,
            context: ssl.SSLContext, tls: bool) -> IMAPClient:
    """An IMAP session, in TLS from the start when *tls* (IMAPS), the cutoff watching its
    socket from the first byte, and no protocol trace unless it is logged (-vvv)."""
    client = _Client(host, port, ssl=tls, ssl_context=context,
                     timeout=SocketTimeout(timeout, timeout), cutoff=cutoff)
    quiet_protocol_trace(client)
    return client


class _Client(IMAPClient):
    """IMAPClient whose raw socket the cutoff watches from the start: imaplib connects, does
    TLS and reads the greeting inside its constructor, where nothing else could reach it."""

    def __init__(self, *args: Any, cutoff: Cutoff, **kwargs: Any) -> None:
        self._cutoff = cutoff
        super().__init__(*args, **kwargs)

    def _create_IMAP4(self) -> _Connection:  # imapclient's factory; ours: plain and TLS alike
        return _Connection(self._cutoff, self.host, self.port,
                           self.ssl_context if self.ssl else None, self._timeout.connect)


class _Connection(imaplib.IMAP4):
    """imaplib's connection on the cutoff's socket, telling a greeting that is not IMAP's from
    other errors (imaplib raises error(None) for a POP3 server's "+OK"): BadGreeting."""

    _greeting: str | None = None

    def __init__(self, cutoff: Cutoff, host: str, port: int, context: ssl.SSLContext | None,
                 timeout: float | None) -> None:
        self._cutoff, self._context = cutoff, context
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return self._cutoff.connect(self.host, self.port, timeout, self._context)

    # imaplib's private methods are not in the stdlib's stubs: these overrides declare them,
    # and their calls into imaplib's own are marked.

    def _connect(self) -> None:
        try:
            super()._connect()  # type: ignore[misc]
        except TimeoutError:
            if self._greeting is None:  # connected, and then nothing: a TLS port?
                raise BadGreeting(None) from None
            raise
        except self.abort:
            raise
        except self.error:
            greeting = self._greeting or ""
            if greeting.upper().startswith(("* OK", "* PREAUTH")):
                raise  # greeted as IMAP: something after the greeting
            raise BadGreeting(greeting) from None

    def _get_line(self) -> bytes:
        line: bytes = super()._get_line()  # type: ignore[misc]
        if self._greeting is None:
            self._greeting = line.decode("utf-8", "replace")
        return line


def quiet_protocol_trace(client: IMAPClient) -> None:
    """No protocol trace unless it is logged (-vvv).

    imapclient turns imaplib's trace on for good and filters it in its logger; imaplib formats
    each line first, a fetched message included (its repr: 2-3 times its size in memory, and
    time, for every message)."""
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0
