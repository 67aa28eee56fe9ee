"""SMTP submission: applications hand Mailyard a message over SMTP.

An :mod:`aiosmtpd` server on 127.0.0.1 turns each DATA into the same
``SubmittedMessage`` record as ``POST /v1/messages``: the envelope (MAIL
FROM, RCPT TO) decides sender and recipients, the headers are kept as
written, and ``X-Mailyard-Subaccount``, ``X-Mailyard-Stream`` and
``X-Mailyard-Tags`` (comma-separated) set those fields. The reply is
``250 2.0.0 Queued as <message_id>`` only once the broker confirmed the
record; ``451 4.3.0`` asks the client to retry when it could not.

A client authenticates with AUTH PLAIN or LOGIN, an API key with the
``send`` scope as the password (the user name is not checked); MAIL is
refused with 530 until it has. A subaccount key sends for its own
subaccount only, as over HTTP. The server offers no STARTTLS yet, so it
offers AUTH in the clear and binds 127.0.0.1 only, whatever
``MAILYARD_HOST`` says.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, AnyStr

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from connectors.submission import SubmissionError, SubmissionTooLarge, smtp_record
from connectors.submission_addresses import MAX_RECIPIENTS, address_problem
from connectors.submission_errors import RecordTooLarge
from connectors.submission_publish import Sender, publish
from mailyard.errors import BrokerUnavailable, ConfigError
from mailyard.settings import Settings
from mailyard.tenancy import AccessError, ApiKey, TenantDirectory, sender_problem

log = logging.getLogger(__name__)
# aiosmtpd logs every command, addresses included, at INFO on "mail.log".
logging.getLogger("mail.log").setLevel(logging.WARNING)

HOST = "127.0.0.1"
_REPLY_CHARS = 480  # RFC 5321 4.5.3.1.5: a reply line is at most 512 octets

# Refusals by cause, most specific first: RFC 3463 enhanced status codes.
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (SubmissionTooLarge, "552 5.3.4"),
    (RecordTooLarge, "552 5.3.4"),
    (BrokerUnavailable, "451 4.3.0"),
    (SubmissionError, "554 5.6.0"),
)


class SubmissionHandler:
    """aiosmtpd hooks: check addresses as they come, publish at end of DATA."""

    def __init__(
        self, settings: Settings, sender: Sender, tenants: TenantDirectory
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._tenants = tenants

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """AUTH PLAIN/LOGIN: the password is an API key that may send."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            key = self._tenants.authenticate(
                auth_data.password.decode("utf-8", "replace")
            )
        except AccessError as exc:
            log.warning(
                "refused SMTP AUTH: %s", exc.detail, extra={"peer": session.peer}
            )
            return AuthResult(success=False, handled=False)
        if not (key.is_admin or "send" in key.scopes):
            return AuthResult(
                success=False,
                handled=False,
                message=f"535 5.7.8 API key {key.key_id} lacks the send scope.",
            )
        # The key text stays with the session, so every message checks it
        # again: a key revoked or expired mid-session stops sending at once.
        return AuthResult(success=True, auth_data=_SessionKey(key, auth_data.password))

    def current_key(self, session: Session) -> ApiKey:
        """The session's key as the directory knows it now (AccessError if unusable)."""
        held: _SessionKey = session.auth_data
        key = self._tenants.authenticate(held.text.decode("utf-8", "replace"))
        if not (key.is_admin or "send" in key.scopes):
            raise AccessError(403, f"API key {key.key_id} lacks the send scope.")
        return key

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authenticate first: AUTH PLAIN with an API key."
        if not address:
            return "553 5.1.7 A null sender (MAIL FROM:<>) cannot submit mail."
        why = address_problem(address)
        if why is not None:
            return _reply("553 5.1.7", f"Sender <{address}> is not valid: {why}.")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        why = address_problem(address)
        if why is not None:
            return _reply("553 5.1.3", f"Recipient <{address}> is not valid: {why}.")
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 At most {MAX_RECIPIENTS} recipients per message."
        # A repeated RCPT is accepted once: the message goes to each address once.
        known = {rcpt.lower() for rcpt in envelope.rcpt_tos}
        if address.lower() not in known:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        try:
            key = self.current_key(session)
        except AccessError as exc:
            log.warning("refused SMTP submission: %s", exc.detail,
                        extra={"peer": session.peer})
            return _reply("535 5.7.8", f"Not sent: {exc.detail}")
        wait = self._tenants.throttle(key)
        if wait > 0:
            return _reply(
                "451 4.7.1",
                f"API key {key.key_id} is over its "
                f"{key.rate_per_s:g} messages/s; retry in {wait:.1f}s.",
            )
        try:
            record = smtp_record(
                content,
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                max_bytes=self._settings.max_message_bytes,
            )
            problem = sender_problem(self._tenants, key, record)
            if problem is not None:
                return _reply("550 5.7.1", f"Not sent: {problem}")
            await publish(
                self._sender, [record], timeout_s=self._settings.produce_timeout_s
            )
        except (SubmissionError, RecordTooLarge, BrokerUnavailable) as exc:
            log.warning(
                "refused SMTP submission: %s", exc, extra={"peer": session.peer}
            )
            return _refusal(exc)

        message_id = record["message_id"]
        log.info("accepted SMTP submission", extra={"message_id": message_id})
        return f"250 2.0.0 Queued as {message_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class _SessionKey:
    key: ApiKey
    text: bytes = dataclasses.field(repr=False)


def _refusal(exc: Exception) -> str:
    code = next(code for kind, code in _REFUSALS if isinstance(exc, kind))
    if isinstance(exc, BrokerUnavailable):
        return _reply(code, "The message store is unavailable; try again later.")
    return _reply(code, str(exc))


def _reply(code: str, text: str) -> str:
    """One reply line: ASCII only (no SMTPUTF8 needed), no line breaks."""
    flat = " ".join(text.split())
    safe = flat.encode("ascii", "backslashreplace").decode("ascii")
    return f"{code} {safe[:_REPLY_CHARS]}"


class _SubmissionSMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes on its size refusals."""

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd refuses oversize DATA and MAIL SIZE= itself, as "552 Error:".
        if isinstance(status, str) and status.startswith("552 Error"):
            limit = self.data_size_limit
            status = _reply(
                "552 5.3.4",
                f"The message is over the {limit}-byte limit "
                "(MAILYARD_MAX_MESSAGE_BYTES).",
            )
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SubmissionSMTP(self.handler, **self.SMTP_kwargs)


class SmtpSubmission:
    """A running SMTP submission server; :meth:`stop` ends it."""

    def __init__(self, controller: Controller, port: int) -> None:
        self._controller = controller
        self.host = HOST
        self.port = port

    def stop(self) -> None:
        self._controller.stop()


def start_smtp_submission(
    settings: Settings, producer: Sender, tenants: TenantDirectory
) -> SmtpSubmission:
    """Listen on 127.0.0.1:``settings.smtp_port`` in a thread of its own."""
    handler = SubmissionHandler(settings, producer, tenants)
    options: dict[str, Any] = {
        "data_size_limit": settings.max_message_bytes,
        "enable_SMTPUTF8": True,
        "ident": "Mailyard submission",
        # AUTH in the clear, on loopback only; MAIL checks it (handle_MAIL).
        "authenticator": handler.authenticate,
        "auth_require_tls": False,
    }
    controller = _Controller(
        handler,
        hostname=HOST,
        port=settings.smtp_port,
        server_hostname="mailyard",
        **options,
    )
    try:
        controller.start()
    except OSError as exc:
        raise ConfigError(
            f"Cannot listen for SMTP on {HOST}:{settings.smtp_port} ({exc}); "
            "set MAILYARD_SMTP_PORT to a free port."
        ) from exc

    log.info("SMTP submission on %s:%s", HOST, settings.smtp_port)
    return SmtpSubmission(controller, settings.smtp_port)
