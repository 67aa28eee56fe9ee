"""One SMTP session step by step, and how its answers become results.

Used by :mod:`sinks.smtp_relay`; kept apart so the pool there reads as
pool logic only.
"""

from __future__ import annotations

import ssl

import aiosmtplib
from aiosmtplib import errors as smtp_errors

from mailyard.outbound import Outcome, SendResult
from sinks import smtp_replies

# Errors that end a session attempt; anything else is a bug and raises.
SESSION_ERRORS = (smtp_errors.SMTPException, OSError)


async def greet(smtp: aiosmtplib.SMTP) -> None:
    # RFC 5321 3.2: fall back to HELO for servers without ESMTP.
    try:
        await smtp.ehlo()
    except smtp_errors.SMTPHeloError:
        await smtp.helo()


async def still_usable(smtp: aiosmtplib.SMTP) -> bool:
    """RSET before reusing a connection; it also proves the server is there."""
    if not smtp.is_connected:
        return False
    try:
        await smtp.rset()
    except SESSION_ERRORS:
        return False
    return True


async def transact(
    smtp: aiosmtplib.SMTP, sender: str, recipient: str, content: bytes
) -> SendResult:
    # RFC 6531: non-ASCII addresses need the server's SMTPUTF8.
    utf8 = not (sender.isascii() and recipient.isascii())
    if utf8 and not smtp.supports_extension("smtputf8"):
        return SendResult(
            "failed",
            "The relay does not offer SMTPUTF8, which the "
            f"address {recipient!r} or {sender!r} needs.",
        )
    options = ["SMTPUTF8"] if utf8 else []
    encoding = "utf-8" if utf8 else "ascii"
    # RFC 6152: 8-bit content (raw MIME, or UTF-8 headers under SMTPUTF8).
    if not content.isascii() and smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")

    try:
        await smtp.mail(sender, options=options, encoding=encoding)
        await smtp.rcpt(recipient, encoding=encoding)
        reply = await smtp.data(content)
    except smtp_errors.SMTPResponseException as exc:
        return result_from_reply(exc.code, exc.message)
    return result_from_reply(reply.code, reply.message)


def result_from_reply(code: int, text: str) -> SendResult:
    verdict = smtp_replies.classify(code, text)
    queue_id = smtp_replies.queue_id(text) if verdict.outcome == "accepted" else None
    return SendResult(
        verdict.outcome,
        text,
        smtp_code=code,
        enhanced_status=verdict.enhanced_status,
        provider_message_id=queue_id,
        retry_after_s=verdict.retry_after_s,
    )


def result_from_error(exc: BaseException) -> SendResult:
    """The one place where session errors become results."""
    if isinstance(exc, smtp_errors.SMTPAuthenticationError):
        # A refused login is a setting to fix, unless the server says later.
        outcome: Outcome = "deferred" if 400 <= exc.code < 500 else "failed"
        status = smtp_replies.enhanced_status(exc.message)
        return SendResult(outcome, exc.message, exc.code, status)
    if isinstance(exc, smtp_errors.SMTPResponseException):
        return result_from_reply(exc.code, exc.message)
    if isinstance(exc, TimeoutError):
        return SendResult("deferred", f"Timed out talking to the relay: {exc}")
    if isinstance(exc, ssl.SSLError):
        return SendResult("deferred", f"TLS negotiation failed: {exc}")
    return SendResult("deferred", f"Relay unreachable or connection lost: {exc}")
