"""A strict stand-in for Amazon SES v2 SendEmail.

``POST /v2/email/outbound-emails``, signed with SigV4 for service ``ses``
in :data:`REGION` by :data:`ACCESS_KEY_ID` (the signature is checked by
signing again with the known secret). Errors are REST-JSON: the type in
``x-amzn-ErrorType``, ``{"message": ...}`` in the body; success is 200
``{"MessageId": ...}``. Only senders in :data:`VERIFIED_DOMAINS` are
verified identities, as in the SES sandbox. Unknown fields are refused.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import json
import uuid
from email.message import Message
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.standins.base import SentMessage, StandIn, first_error, is_json
from tests.standins.sigv4 import SignatureRefused, verify

ACCESS_KEY_ID = "AKIASTANDINEXAMPLE01"
SECRET_ACCESS_KEY = "standin/ses/secret/key/0123456789abcdefEXAMPLE"
REGION = "eu-west-1"
SERVICE = "ses"
VERIFIED_DOMAINS = frozenset({"example.com"})
ERROR_TYPES: dict[int, str] = {
    400: "BadRequestException",
    403: "AccessDeniedException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    429: "TooManyRequestsException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
NOT_JSON = "Start of structure or map found where not expected."
TagText = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Part(_Strict):
    Data: str
    Charset: str | None = None


class BodyParts(_Strict):
    Text: Part | None = None
    Html: Part | None = None


class MessageHeader(_Strict):
    Name: Annotated[str, Field(min_length=1, max_length=126)]
    Value: Annotated[str, Field(max_length=870)]


class SimpleContent(_Strict):
    Subject: Part
    Body: BodyParts
    Headers: Annotated[list[MessageHeader], Field(max_length=15)] | None = None


class RawContent(_Strict):
    Data: str


class EmailContent(_Strict):
    Simple: SimpleContent | None = None
    Raw: RawContent | None = None
    Template: dict[str, Any] | None = None


class DestinationSpec(_Strict):
    ToAddresses: list[str] | None = None
    CcAddresses: list[str] | None = None
    BccAddresses: list[str] | None = None


class MessageTag(_Strict):
    Name: TagText
    Value: TagText


class SendEmailRequest(_Strict):
    FromEmailAddress: str | None = None
    FromEmailAddressIdentityArn: str | None = None
    Destination: DestinationSpec | None = None
    ReplyToAddresses: list[str] | None = None
    FeedbackForwardingEmailAddress: str | None = None
    Content: EmailContent
    EmailTags: list[MessageTag] | None = None
    ConfigurationSetName: str | None = None
    ListManagementOptions: dict[str, Any] | None = None


def error(status: int, message: str, error_type: str | None = None) -> Response:
    headers = {
        "x-amzn-ErrorType": error_type or ERROR_TYPES.get(status, "InternalFailure"),
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _success(message: SentMessage) -> Response:
    return JSONResponse({"MessageId": message.provider_message_id})


def _content_problem(req: SendEmailRequest) -> str | None:
    content = req.Content
    given = [p for p in (content.Simple, content.Raw, content.Template) if p]
    if len(given) != 1:
        return "Exactly one of Simple, Raw or Template content must be given."
    if content.Raw is not None:
        try:
            base64.b64decode(content.Raw.Data, validate=True)
        except binascii.Error:
            return "Content.Raw.Data is not valid base64."
        return None
    if not req.FromEmailAddress:
        return "Missing required parameter: FromEmailAddress."
    if req.Destination is None or not req.Destination.ToAddresses:
        return "Missing required parameter: Destination."
    parts = content.Simple.Body if content.Simple else None
    if parts is not None and not (parts.Text or parts.Html):
        return "Body must contain a Text or an Html part."
    return None


def _unverified(req: SendEmailRequest, raw: Message | None) -> str | None:
    sender = req.FromEmailAddress or (raw["From"] if raw else None) or ""
    domain = sender.rsplit("@", 1)[-1].strip(" >").lower()
    if domain in VERIFIED_DOMAINS:
        return None
    return (
        "Email address is not verified. The following identities failed the "
        f"check in region {REGION.upper()}: {sender}"
    )


def _record(req: SendEmailRequest, raw: Message | None) -> SentMessage:
    destination = req.Destination or DestinationSpec()
    simple = req.Content.Simple
    message = SentMessage(
        provider_message_id=f"0102{uuid.uuid4().hex[:12]}-{uuid.uuid4()}-000000",
        recipients=list(destination.ToAddresses or []),
        from_addr=req.FromEmailAddress,
        metadata={tag.Name: tag.Value for tag in req.EmailTags or []},
        body=req.model_dump(exclude_none=True),
    )
    if simple is not None:
        message.subject = simple.Subject.Data
        message.text = simple.Body.Text.Data if simple.Body.Text else None
        message.html = simple.Body.Html.Data if simple.Body.Html else None
        message.headers = {h.Name: h.Value for h in simple.Headers or []}
    if raw is not None and req.Content.Raw is not None:
        message.raw_mime = base64.b64decode(req.Content.Raw.Data).decode("utf-8")
        message.headers = {k: str(v) for k, v in raw.items()}
        message.subject = raw["Subject"]
    return message


async def send_email(request: Request) -> Response | SentMessage:
    body = await request.body()
    try:
        verify(
            method=request.method,
            url=str(request.url),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            secrets={ACCESS_KEY_ID: SECRET_ACCESS_KEY},
            region=REGION,
            service=SERVICE,
        )
    except SignatureRefused as refused:
        return error(403, refused.message, refused.error_type)
    if not is_json(request):
        return error(400, "Content-Type must be application/json.")

    req = _parse(body)
    if isinstance(req, Response):
        return req
    problem = _content_problem(req)
    if problem is not None:
        return error(400, problem)
    raw = _raw_message(req)
    refused = _unverified(req, raw)
    if refused is not None:
        return error(400, refused, "MessageRejected")
    return _record(req, raw)


def _parse(body: bytes) -> SendEmailRequest | Response:
    try:
        payload = json.loads(body)
    except ValueError:
        return error(400, NOT_JSON, "SerializationException")
    try:
        return SendEmailRequest.model_validate(payload)
    except ValidationError as exc:
        field, text = first_error(exc)
        message = f"1 validation error detected: Value at '{field}' failed: {text}"
        return error(400, message)


def _raw_message(req: SendEmailRequest) -> Message | None:
    if req.Content.Raw is None:
        return None
    data = base64.b64decode(req.Content.Raw.Data)
    return email.message_from_bytes(data, policy=email.policy.compat32)


def create() -> StandIn:
    """A fresh SES stand-in that accepts :data:`ACCESS_KEY_ID` in :data:`REGION`."""
    return StandIn(
        "amazon_ses",
        routes=[("POST", "/v2/email/outbound-emails", send_email)],
        error=error,
        success=_success,
    )
