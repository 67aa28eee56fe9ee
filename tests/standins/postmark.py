"""A strict stand-in for Postmark's Email API.

``POST /email`` with ``X-Postmark-Server-Token`` and a JSON body. Errors
are ``{"ErrorCode", "Message"}``: 401 for a missing or wrong token, 422
for a request Postmark refuses; success is 200 ``{"To", "SubmittedAt",
"MessageID", "ErrorCode": 0, "Message": "OK"}``. The server has the
streams in :data:`STREAMS`. Unknown fields are refused (stricter than
Postmark, so a misspelt field fails a test instead of being ignored).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.standins.base import SentMessage, StandIn, first_error, is_json

SERVER_TOKEN = "standin-postmark-server-token"
STREAMS = frozenset({"outbound", "broadcast"})
NO_TOKEN = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please "
    "add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token."
)
AUTH_ERROR = (
    "The Server Token you provided in the X-Postmark-Server-Token request "
    "header was invalid. Please verify that you are using a valid token."
)
# Postmark's documented metadata limits: 10 fields, 20-char keys, 80-char values.
MAX_METADATA_FIELDS, MAX_KEY, MAX_VALUE = 10, 20, 80
INVALID_REQUEST, INVALID_JSON, UNKNOWN_STREAM = 300, 402, 1235


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Header(_Strict):
    Name: Annotated[str, Field(min_length=1)]
    Value: str


class Email(_Strict):
    From: Annotated[str, Field(min_length=3)]
    To: Annotated[str, Field(min_length=3)]
    Cc: str | None = None
    Bcc: str | None = None
    Subject: str | None = None
    Tag: Annotated[str, Field(max_length=1000)] | None = None
    HtmlBody: str | None = None
    TextBody: str | None = None
    ReplyTo: str | None = None
    Headers: list[Header] | None = None
    TrackOpens: bool | None = None
    TrackLinks: str | None = None
    Metadata: dict[str, str] | None = None
    Attachments: list[dict[str, Any]] | None = None
    MessageStream: str | None = None


def error(status: int, message: str, code: int = INVALID_REQUEST) -> Response:
    return JSONResponse({"ErrorCode": code, "Message": message}, status_code=status)


def _success(message: SentMessage) -> Response:
    body = {
        "To": ", ".join(message.recipients),
        "SubmittedAt": datetime.now(timezone.utc).isoformat(),
        "MessageID": message.provider_message_id,
        "ErrorCode": 0,
        "Message": "OK",
    }
    return JSONResponse(body)


def _semantic_error(mail: Email) -> tuple[str, int] | None:
    if not (mail.TextBody or mail.HtmlBody):
        return "Provide either email TextBody or HtmlBody or both.", INVALID_REQUEST
    stream = mail.MessageStream or "outbound"
    if stream not in STREAMS:
        text = f"The message stream for the provided 'ID' ({stream}) was not found."
        return text, UNKNOWN_STREAM
    return _metadata_error(mail.Metadata or {})


def _metadata_error(metadata: dict[str, str]) -> tuple[str, int] | None:
    if len(metadata) > MAX_METADATA_FIELDS:
        text = f"Metadata may have at most {MAX_METADATA_FIELDS} fields."
        return text, INVALID_REQUEST
    for key, value in metadata.items():
        if len(key) > MAX_KEY or len(value) > MAX_VALUE:
            text = (
                f"Metadata field {key!r} is too long: keys may have {MAX_KEY} "
                f"characters and values {MAX_VALUE}."
            )
            return text, INVALID_REQUEST
    return None


def _record(mail: Email) -> SentMessage:
    return SentMessage(
        provider_message_id=str(uuid.uuid4()),
        recipients=[a.strip() for a in mail.To.split(",")],
        from_addr=mail.From,
        subject=mail.Subject,
        text=mail.TextBody,
        html=mail.HtmlBody,
        headers={h.Name: h.Value for h in mail.Headers or []},
        metadata=dict(mail.Metadata or {}),
        tags=[mail.Tag] if mail.Tag else [],
        body=mail.model_dump(exclude_none=True),
    )


async def send_email(request: Request) -> Response | SentMessage:
    token = request.headers.get("x-postmark-server-token")
    if not token:
        return error(401, NO_TOKEN, 10)
    if token != SERVER_TOKEN:
        return error(401, AUTH_ERROR, 10)
    if not is_json(request):
        return error(415, "Send the request body as application/json.")

    try:
        payload = json.loads(await request.body())
    except ValueError:
        return error(422, "Received invalid JSON input.", INVALID_JSON)
    try:
        mail = Email.model_validate(payload)
    except ValidationError as exc:
        field, text = first_error(exc)
        return error(422, f"Invalid email request: {field}: {text}")

    problem = _semantic_error(mail)
    if problem is not None:
        return error(422, problem[0], problem[1])
    return _record(mail)


def create() -> StandIn:
    """A fresh Postmark stand-in that accepts :data:`SERVER_TOKEN`."""
    return StandIn(
        "postmark",
        routes=[("POST", "/email", send_email)],
        error=error,
        success=_success,
    )
