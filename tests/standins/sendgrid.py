"""A strict stand-in for SendGrid's v3 Mail Send API.

``POST /v3/mail/send`` with ``Authorization: Bearer <key>`` and a JSON
body. Errors are ``{"errors": [{"message", "field", "help"}]}``; success
is 202 with an empty body and ``X-Message-Id``. Unknown fields anywhere
are refused (stricter than SendGrid, so a misspelt field fails a test
instead of being ignored in production).
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.standins.base import SentMessage, StandIn, first_error, is_json

API_KEY = "SG.standin-test-key"
AUTH_ERROR = "The provided authorization grant is invalid, expired, or revoked"
NO_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required."
)
NO_SUBJECT = (
    "The subject is required. You can get around this requirement if you use "
    "a template with a subject defined or if every personalization has a "
    "subject defined."
)
# Headers SendGrid sets itself and refuses in the headers object.
RESERVED_HEADERS = frozenset(
    {
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
        "content-transfer-encoding", "to", "from", "subject", "reply-to",
        "cc", "bcc",
    }
)  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EmailObject(_Strict):
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    name: str | None = None


class Personalization(_Strict):
    to: Annotated[list[EmailObject], Field(min_length=1, max_length=1000)]
    cc: list[EmailObject] | None = None
    bcc: list[EmailObject] | None = None
    subject: str | None = None
    headers: dict[str, str] | None = None
    custom_args: dict[str, str] | None = None
    send_at: int | None = None


class ContentPart(_Strict):
    type: str
    value: Annotated[str, Field(min_length=1)]


Category = Annotated[str, Field(min_length=1, max_length=255)]


class MailSend(_Strict):
    personalizations: Annotated[list[Personalization], Field(min_length=1)]
    from_: Annotated[EmailObject, Field(alias="from")]
    reply_to: EmailObject | None = None
    subject: str | None = None
    content: Annotated[list[ContentPart], Field(min_length=1)] | None = None
    template_id: str | None = None
    headers: dict[str, str] | None = None
    categories: Annotated[list[Category], Field(max_length=10)] | None = None
    custom_args: dict[str, str] | None = None
    send_at: int | None = None
    batch_id: str | None = None
    ip_pool_name: str | None = None
    mail_settings: dict[str, Any] | None = None
    tracking_settings: dict[str, Any] | None = None


def error(status: int, message: str, field: str | None = None) -> Response:
    body = {"errors": [{"message": message, "field": field, "help": None}]}
    return JSONResponse(body, status_code=status)


def _success(message: SentMessage) -> Response:
    headers = {"X-Message-Id": message.provider_message_id}
    return Response(status_code=202, headers=headers)


def _semantic_error(mail: MailSend) -> tuple[str, str] | None:
    if mail.template_id is None and not mail.content:
        return "content", NO_CONTENT
    subjects = [mail.subject] + [p.subject for p in mail.personalizations]
    if mail.template_id is None and not any(subjects):
        return "subject", NO_SUBJECT
    kinds = [part.type for part in mail.content or []]
    if "text/plain" in kinds and kinds[0] != "text/plain":
        return "content", "If present, text/plain content must be first."
    for name in mail.headers or {}:
        if name.lower() in RESERVED_HEADERS:
            return "headers", f"The header {name} is reserved and cannot be set."
    if len(set(mail.categories or [])) != len(mail.categories or []):
        return "categories", "The categories must be unique."
    return None


def _record(mail: MailSend) -> SentMessage:
    personalization = mail.personalizations[0]
    parts = {c.type: c.value for c in mail.content or []}
    return SentMessage(
        provider_message_id=uuid.uuid4().hex[:22],
        recipients=[to.email for p in mail.personalizations for to in p.to],
        from_addr=mail.from_.email,
        subject=personalization.subject or mail.subject,
        text=parts.get("text/plain"),
        html=parts.get("text/html"),
        headers={**(mail.headers or {}), **(personalization.headers or {})},
        metadata={**(mail.custom_args or {}), **(personalization.custom_args or {})},
        tags=list(mail.categories or []),
        body=mail.model_dump(by_alias=True, exclude_none=True),
    )


async def mail_send(request: Request) -> Response | SentMessage:
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return error(401, AUTH_ERROR)
    if not is_json(request):
        return error(415, "Content-Type should be application/json.")

    try:
        payload = json.loads(await request.body())
    except ValueError:
        return error(400, "Bad Request: the body is not valid JSON.")
    try:
        mail = MailSend.model_validate(payload)
    except ValidationError as exc:
        field, message = first_error(exc)
        return error(400, message, field)

    problem = _semantic_error(mail)
    if problem is not None:
        return error(400, problem[1], problem[0])
    return _record(mail)


def create() -> StandIn:
    """A fresh SendGrid stand-in that accepts :data:`API_KEY`."""
    return StandIn(
        "sendgrid",
        routes=[("POST", "/v3/mail/send", mail_send)],
        error=error,
        success=_success,
    )
