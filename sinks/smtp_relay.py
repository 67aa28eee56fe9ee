"""The SMTP relay sink: deliveries handed to one relay host over SMTP.

A relay keeps a small pool of open connections to its host and reuses
them, one message per SMTP transaction, with RSET between messages; the
pool size is also the number of sends in flight. Every server answer is
a :class:`~mailyard.outbound.SendResult` (see :mod:`sinks.smtp_replies`),
never an exception; network and TLS failures are ``deferred`` with the
reason, a refused login is ``failed`` (a configuration problem).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.errors
import logging
import socket
import ssl
from typing import Literal, Self, get_args

import aiosmtplib

from mailyard.errors import ConfigError, MailyardError
from mailyard.outbound import Delivery, SendResult
from sinks import smtp_message, smtp_session

log = logging.getLogger(__name__)

StartTls = Literal["off", "opportunistic", "required"]

_SESSION_ERRORS = smtp_session.SESSION_ERRORS


class RelayClosedError(MailyardError, RuntimeError):
    """``send`` was called after ``aclose``."""


class _SetupFailure(Exception):
    """The session could not be set up the way the relay is configured."""

    def __init__(self, outcome: Literal["deferred", "failed"], detail: str) -> None:
        super().__init__(detail)
        self.outcome: Literal["deferred", "failed"] = outcome
        self.detail = detail


@dataclasses.dataclass(slots=True)
class _Connection:
    smtp: aiosmtplib.SMTP
    number: int
    messages: int = 0


class SmtpRelay:
    """Sends deliveries through one SMTP relay, reusing connections.

    ``starttls``: ``"off"`` never upgrades, ``"opportunistic"`` upgrades
    when the server offers STARTTLS, ``"required"`` defers every message
    when it does not. ``tls_context`` replaces the system trust store (a
    private CA, a test certificate). ``timeout_s`` bounds each connect
    and each command, not a whole send. A connection is closed after
    ``max_messages_per_connection`` messages, since providers cap messages
    per connection (KumoMTA ships 100 by default, 50 for Gmail).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        starttls: StartTls = "opportunistic",
        tls_context: ssl.SSLContext | None = None,
        timeout_s: float = 30,
        max_connections: int = 4,
        helo_name: str | None = None,
        max_messages_per_connection: int = 100,
    ) -> None:
        _validate(starttls, timeout_s, max_connections, max_messages_per_connection)
        if (username is None) != (password is None):
            raise ConfigError(
                "SMTP relay needs both username and password, or neither."
            )

        self.host = host
        self.port = port
        self._credentials = None
        if username is not None and password is not None:
            self._credentials = (username, password)
        self._starttls = starttls
        self._tls_context = tls_context
        self._timeout_s = timeout_s
        self._helo_name = helo_name
        self._max_per_connection = max_messages_per_connection
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False
        self.connections_opened = 0

    async def send(self, delivery: Delivery) -> SendResult:
        """Send one delivery; the result says what the relay answered."""
        if self._closed:
            raise RelayClosedError("This SmtpRelay is closed; create a new one.")
        try:
            sender = smtp_message.envelope_address(delivery.from_addr)
            recipient = smtp_message.envelope_address(delivery.recipient)
            content = smtp_message.message_bytes(delivery)
        except (ValueError, email.errors.MessageError) as exc:
            return SendResult("failed", f"Message not sent: {exc}")

        async with self._slots:
            result = await self._send_pooled(sender, recipient, content)

        level = logging.DEBUG if result.outcome == "accepted" else logging.INFO
        log.log(
            level,
            "smtp relay %s:%s %s: %s",
            self.host,
            self.port,
            result.outcome,
            result.detail,
            extra={"message_id": delivery.message_id, "smtp_code": result.smtp_code},
        )
        return result

    async def aclose(self) -> None:
        """Close the idle connections; busy ones close when their send ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._retire(conn) for conn in idle))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send_pooled(
        self, sender: str, recipient: str, content: bytes
    ) -> SendResult:
        try:
            conn = await self._checkout()
        except _SetupFailure as exc:
            return SendResult(exc.outcome, exc.detail)
        except _SESSION_ERRORS as exc:
            return smtp_session.result_from_error(exc)

        try:
            result = await smtp_session.transact(conn.smtp, sender, recipient, content)
        except _SESSION_ERRORS as exc:
            # The session is in an unknown state: never reuse it.
            conn.smtp.close()
            return smtp_session.result_from_error(exc)
        except BaseException:
            conn.smtp.close()
            raise

        conn.messages += 1
        await self._checkin(conn)
        return result

    async def _checkout(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            try:
                usable = await smtp_session.still_usable(conn.smtp)
            except BaseException:
                conn.smtp.close()
                raise
            if usable:
                return conn
            conn.smtp.close()
        return await self._open()

    async def _checkin(self, conn: _Connection) -> None:
        full = conn.messages >= self._max_per_connection
        if self._closed or full or not conn.smtp.is_connected:
            await self._retire(conn)
        else:
            self._idle.append(conn)

    async def _open(self) -> _Connection:
        if self._helo_name is None:
            self._helo_name = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            local_hostname=self._helo_name,
            timeout=self._timeout_s,
            tls_context=self._tls_context,
            start_tls=False,
        )

        try:
            await smtp.connect()
            await self._secure(smtp)
            await self._login(smtp)
            if smtp.is_ehlo_or_helo_needed:
                await smtp_session.greet(smtp)
        except BaseException:
            smtp.close()
            raise

        self.connections_opened += 1
        log.debug(
            "smtp relay %s:%s connection %d open",
            self.host,
            self.port,
            self.connections_opened,
        )
        return _Connection(smtp, self.connections_opened)

    async def _secure(self, smtp: aiosmtplib.SMTP) -> None:
        if self._starttls == "off":
            return
        await smtp_session.greet(smtp)
        if smtp.supports_extension("starttls"):
            await smtp.starttls()
        elif self._starttls == "required":
            raise _SetupFailure(
                "deferred",
                f"STARTTLS is required (starttls='required') but {self.host}:"
                f"{self.port} did not offer it.",
            )

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        if self._credentials is None:
            return
        if smtp.is_ehlo_or_helo_needed:
            await smtp_session.greet(smtp)

        # No AUTH offered, or no mechanism in common: a setting to fix.
        if not smtp.supported_auth_methods:
            offered = smtp.esmtp_extensions.get("auth", "").strip() or "none"
            raise _SetupFailure(
                "failed",
                f"Credentials are set but {self.host}:{self.port} offers no AUTH "
                f"mechanism aiosmtplib speaks (offered: {offered}).",
            )

        await smtp.login(*self._credentials)

    async def _retire(self, conn: _Connection) -> None:
        # RFC 5321 4.1.1.10: a polite QUIT; the reply does not matter.
        try:
            await conn.smtp.quit(timeout=min(self._timeout_s, 5.0))
        except _SESSION_ERRORS:
            pass
        finally:
            conn.smtp.close()


def _validate(
    starttls: str, timeout_s: float, max_connections: int, max_per_connection: int
) -> None:
    if starttls not in get_args(StartTls):
        choices = ", ".join(get_args(StartTls))
        raise ConfigError(f"starttls={starttls!r} is not one of {choices}.")
    if timeout_s <= 0:
        raise ConfigError(f"timeout_s={timeout_s} must be positive.")
    if max_connections < 1:
        raise ConfigError(f"max_connections={max_connections} must be at least 1.")
    if max_per_connection < 1:
        raise ConfigError(
            f"max_messages_per_connection={max_per_connection} must be at least 1."
        )
