"""``POST /v1/messages``: senders submit messages over HTTP.

The body is one message (a JSON object) or a batch (a JSON list, or
``{"messages": [...]}``, at most 500). Validation is all or nothing: one
invalid message refuses the whole request with 422 naming its index, and
nothing is produced. The reply is 202 only after the broker confirmed
every record of the request on ``mailyard.messages.submitted``.

A request body may be up to twice ``MAILYARD_MAX_MESSAGE_BYTES``, room for
base64 and JSON escaping; each message is then held to the limit itself.
It takes an API key with the ``send`` scope. A subaccount key sends for
its own subaccount only: a message that names no subaccount is stamped
with the key's, one that names another is refused with 403, and so is
every message of a suspended subaccount.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from connectors.submission import (
    MAX_BATCH,
    Submission,
    SubmissionError,
    SubmissionTooLarge,
    parse_submission,
)
from connectors.submission_errors import RecordTooLarge
from connectors.submission_publish import Sender, publish
from mailyard.access import refusal, requires
from mailyard.errors import BrokerUnavailable
from mailyard.settings import Settings
from mailyard.tenancy import ApiKey, TenantDirectory, sender_problem

log = logging.getLogger(__name__)

_JSON = "application/json"
RETRY_AFTER_S = 5


class MessageIn(BaseModel):
    """One message as ``POST /v1/messages`` takes it; for the OpenAPI document only.

    :func:`connectors.submission.parse_submission` is what checks a message.
    """

    model_config = ConfigDict(extra="forbid", title="Message")

    from_: str | None = Field(None, alias="from", description="Needed with parts.")
    to: str | list[str] = []
    cc: str | list[str] = []
    bcc: str | list[str] = []
    subject: str | None = None
    text: str | None = Field(None, description="Parts: text and/or html ...")
    html: str | None = None
    raw: str | None = Field(None, description="... or raw MIME, sent as is.")
    raw_base64: str | None = None
    headers: dict[str, str] = {}
    subaccount: str | None = Field(None, description="A subaccount key's own.")
    stream: str | None = None
    tags: list[str] = []
    metadata: dict[str, str] = {}


class Submitted(BaseModel):
    message_id: str


class SubmittedBatch(BaseModel):
    messages: list[Submitted]


def _request_body() -> dict[str, Any]:
    message = MessageIn.model_json_schema(by_alias=True)
    # A batch's items are spelled out once, in the single message's form.
    each = {"type": "object", "description": "A message, as in the single form."}
    batch = {"type": "array", "items": each, "minItems": 1, "maxItems": MAX_BATCH}
    wrapped = {
        "type": "object",
        "properties": {"messages": batch},
        "required": ["messages"],
        "additionalProperties": False,
    }
    return {
        "required": True,
        "content": {_JSON: {"schema": {"anyOf": [message, batch, wrapped]}}},
    }


_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": Submitted | SubmittedBatch,
        "description": "Stored on Kafka; a batch gets one id per message.",
    },
    400: refusal("The body is not JSON."),
    403: refusal(
        "The key lacks the send scope, or a message is for another "
        "subaccount than the key's, or for a suspended one."
    ),
    413: refusal(
        "The body is over twice `MAILYARD_MAX_MESSAGE_BYTES`, or a message is over it."
    ),
    415: refusal("The content type is not application/json."),
    422: refusal("A message is invalid; `field` names it, e.g. `messages[2].to[1]`."),
    503: refusal("The broker did not confirm every record in time.", retry_after=True),
}


def submission_router(
    settings: Settings, get_producer: Callable[[], Sender], tenants: TenantDirectory
) -> APIRouter:
    """The router for ``POST /v1/messages``; ``get_producer`` is called per request."""
    router = APIRouter()
    body_limit = 2 * settings.max_message_bytes
    sender = Depends(requires(tenants, "send"))

    @router.post(
        "/v1/messages",
        status_code=202,
        summary="Submit messages for sending",
        responses=_RESPONSES,
        openapi_extra={"requestBody": _request_body()},
    )
    async def submit(request: Request, key: ApiKey = sender) -> JSONResponse:
        refused = _check_request(request, body_limit)
        if refused is not None:
            return refused
        body = await _read_limited(request, body_limit)
        if body is None:
            return _error(413, f"The body is larger than the {body_limit}-byte limit.")

        try:
            payload = json.loads(body)
        except RecursionError:
            return _error(400, "The body's JSON nests too deeply.")
        except (UnicodeDecodeError, ValueError) as exc:
            return _error(400, f"The body is not valid JSON ({exc}).")
        try:
            submission = parse_submission(payload, max_bytes=settings.max_message_bytes)
        except SubmissionTooLarge as exc:
            return _error(413, str(exc), field=exc.field)
        except SubmissionError as exc:
            return _error(422, str(exc), field=exc.field)
        refused = _check_tenancy(submission, key, tenants)
        if refused is not None:
            return refused

        return await _accept(get_producer(), submission, settings.produce_timeout_s)

    return router


async def _accept(
    sender: Sender, submission: Submission, timeout_s: float
) -> JSONResponse:
    ids = [record["message_id"] for record in submission.records]
    try:
        await publish(sender, submission.records, timeout_s=timeout_s)
    except RecordTooLarge as exc:
        return _error(413, str(exc))
    except BrokerUnavailable as exc:
        log.error("submission not confirmed: %s", exc, extra={"message_ids": ids})
        return JSONResponse(
            {"error": "The message store is unavailable; retry later."},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    log.info("accepted %d message(s)", len(ids), extra={"message_ids": ids})
    if submission.batch:
        return JSONResponse({"messages": [{"message_id": i} for i in ids]}, 202)
    return JSONResponse({"message_id": ids[0]}, 202)


def _check_tenancy(
    submission: Submission, key: ApiKey, tenants: TenantDirectory
) -> JSONResponse | None:
    """Stamp or check each message's subaccount against the key's."""
    for index, record in enumerate(submission.records):
        problem = sender_problem(tenants, key, record)
        if problem is not None:
            return _error(403, f"Message {index}: {problem}", field="subaccount")
    return None


def _check_request(request: Request, limit: int) -> JSONResponse | None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != _JSON:
        shown = media or "missing"
        return _error(415, f"Content type {shown!r} is not accepted; send {_JSON}.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return _error(413, f"The body is larger than the {limit}-byte limit.")
    return None


async def _read_limited(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": detail, **extra}, status_code=status)
