"""A strict stand-in for SparkPost's Transmissions API.

``POST /api/v1/transmissions`` with the bare API key as ``Authorization``
(a ``Bearer`` prefix is refused) and a JSON body. Errors are
``{"errors": [{"message", "description", "code"}]}``; success is 200
``{"results": {"total_rejected_recipients", "total_accepted_recipients",
"id"}}``. Unknown fields are refused (stricter than SparkPost, so a
misspelt field fails a test instead of being ignored).
"""

from __future__ import annotations

import email
import email.policy
import json
import random
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.standins.base import SentMessage, StandIn, first_error, is_json

API_KEY = "standin-sparkpost-key"
AUTH_ERROR = "Unauthorized."
_REQUIRED = ("required field is missing", "1400")
_FORMAT = ("invalid data format/type", "1300")
COMPAT32 = email.policy.compat32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Address(_Strict):
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    name: str | None = None
    header_to: str | None = None


class Recipient(_Strict):
    address: Address
    tags: Annotated[list[str], Field(max_length=10)] | None = None
    metadata: dict[str, Any] | None = None
    substitution_data: dict[str, Any] | None = None


class Content(_Strict):
    from_: Annotated[str | None, Field(alias="from")] = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    amp_html: str | None = None
    reply_to: str | None = None
    headers: dict[str, str] | None = None
    email_rfc822: str | None = None
    template_id: str | None = None


class Transmission(_Strict):
    recipients: Annotated[list[Recipient], Field(min_length=1)]
    content: Content
    metadata: dict[str, Any] | None = None
    campaign_id: Annotated[str, Field(max_length=64)] | None = None
    description: str | None = None
    options: dict[str, Any] | None = None
    substitution_data: dict[str, Any] | None = None
    return_path: str | None = None


def error(
    status: int, message: str, description: str | None = None, code: str | None = None
) -> Response:
    entry = {"message": message}
    if description:
        entry["description"] = description
    if code:
        entry["code"] = code
    return JSONResponse({"errors": [entry]}, status_code=status)


def _success(message: SentMessage) -> Response:
    results = {
        "total_rejected_recipients": 0,
        "total_accepted_recipients": len(message.recipients),
        "id": message.provider_message_id,
    }
    return JSONResponse({"results": results})


def _content_problem(content: Content) -> str | None:
    simple = {"from": content.from_, "subject": content.subject}
    bodies = (content.text, content.html, content.amp_html)
    if content.email_rfc822 is not None:
        if any(simple.values()) or any(bodies) or content.headers:
            return "email_rfc822 cannot be combined with other content fields"
        head = content.email_rfc822.replace("\r\n", "\n").split("\n\n", 1)[0]
        if not any(line.lower().startswith("from:") for line in head.split("\n")):
            return "email_rfc822 is missing a From header"
        return None
    if content.template_id is not None:
        return None
    for key, value in simple.items():
        if not value:
            return f"content.{key} is a required field"
    if not any(bodies):
        return "At least one of text or html needs to exist in content"
    return None


def _record(tx: Transmission) -> SentMessage:
    content, first = tx.content, tx.recipients[0]
    metadata = {**(tx.metadata or {}), **(first.metadata or {})}
    message = SentMessage(
        provider_message_id=str(random.randrange(10**16, 10**17)),
        recipients=[r.address.email for r in tx.recipients],
        from_addr=content.from_,
        subject=content.subject,
        text=content.text,
        html=content.html,
        headers=dict(content.headers or {}),
        metadata={k: str(v) for k, v in metadata.items()},
        tags=list(first.tags or []),
        body=tx.model_dump(by_alias=True, exclude_none=True),
    )
    if content.email_rfc822 is not None:
        parsed = email.message_from_string(content.email_rfc822, policy=COMPAT32)
        message.raw_mime = content.email_rfc822
        message.headers = {k: str(v) for k, v in parsed.items()}
        message.from_addr, message.subject = parsed["From"], parsed["Subject"]
    return message


async def transmissions(request: Request) -> Response | SentMessage:
    if request.headers.get("authorization") != API_KEY:
        return error(401, AUTH_ERROR)
    if not is_json(request):
        return error(415, "Unsupported Media Type", "Send application/json")

    try:
        payload = json.loads(await request.body())
    except ValueError:
        return error(400, _FORMAT[0], "Problems parsing request as json", _FORMAT[1])
    try:
        tx = Transmission.model_validate(payload)
    except ValidationError as exc:
        field, text = first_error(exc)
        kind = _REQUIRED if exc.errors()[0]["type"] == "missing" else _FORMAT
        return error(422, kind[0], f"{field}: {text}", kind[1])

    problem = _content_problem(tx.content)
    if problem is not None:
        return error(422, _REQUIRED[0], problem, _REQUIRED[1])
    return _record(tx)


def create() -> StandIn:
    """A fresh SparkPost stand-in that accepts :data:`API_KEY`."""
    return StandIn(
        "sparkpost",
        routes=[("POST", "/api/v1/transmissions", transmissions)],
        error=error,
        success=_success,
    )
