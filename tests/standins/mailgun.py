"""A strict stand-in for Mailgun's Messages API.

``POST /v3/{domain}/messages`` (form: urlencoded or multipart) and
``POST /v3/{domain}/messages.mime`` (multipart with a ``message`` file),
with HTTP basic auth ``api:<key>``. A wrong key gets 401 and the plain
text ``Forbidden``; other errors are ``{"message": ...}``; success is 200
``{"id": "<...>", "message": "Queued. Thank you."}``.

Stricter than Mailgun on purpose: fields Mailgun does not define, more
than 3 tags and text fields sent as files are refused, so a misspelt
field fails a test instead of being ignored.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import time
import uuid

from fastapi import Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.datastructures import FormData, UploadFile

from tests.standins.base import SentMessage, StandIn

API_KEY = "key-standin-mailgun"
DOMAIN = "mg.standin.test"
AUTH_ERROR = "Forbidden"
MAX_TAGS = 3
FIELDS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "text", "html", "amp-html",
        "template", "recipient-variables", "attachment", "inline", "message",
    }
)  # fmt: skip
PREFIXES = ("o:", "h:", "v:", "t:")
FILE_FIELDS = frozenset({"attachment", "inline", "message"})
NO_BODY = (
    "Need at least one of 'text', 'html', 'amp-html' or 'template' "
    "parameters specified"
)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def error(status: int, message: str) -> Response:
    if status == 401:
        return PlainTextResponse(AUTH_ERROR, status_code=401)
    return JSONResponse({"message": message}, status_code=status)


def _success(message: SentMessage) -> Response:
    body = {"id": f"<{message.provider_message_id}>", "message": "Queued. Thank you."}
    return JSONResponse(body)


def _authorized(request: Request) -> bool:
    expected = base64.b64encode(f"api:{API_KEY}".encode()).decode()
    return request.headers.get("authorization") == f"Basic {expected}"


def _form_problem(form: FormData) -> str | None:
    for key, value in form.multi_items():
        if key not in FIELDS and not key.startswith(PREFIXES):
            return f"'{key}' parameter is not a Mailgun parameter"
        if isinstance(value, UploadFile) != (key in FILE_FIELDS):
            return f"'{key}' parameter has the wrong kind (file or text)"
    if len(form.getlist("o:tag")) > MAX_TAGS:
        return f"Too many tags: at most {MAX_TAGS} are allowed per message"
    return None


def _record_fields(form: FormData) -> SentMessage:
    variables: dict[str, str] = {}
    if "h:X-Mailgun-Variables" in form:
        variables.update(json.loads(str(form["h:X-Mailgun-Variables"])))
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    variables.update({k[2:]: v for k, v in fields if k.startswith("v:")})
    stamp = time.strftime("%Y%m%d%H%M%S")
    return SentMessage(
        provider_message_id=f"{stamp}.{uuid.uuid4().hex[:12]}@{DOMAIN}",
        recipients=[str(v) for v in form.getlist("to")],
        from_addr=_text(form, "from"),
        subject=_text(form, "subject"),
        text=_text(form, "text"),
        html=_text(form, "html"),
        headers={k[2:]: v for k, v in fields if k.startswith("h:")},
        metadata=variables,
        tags=[str(v) for v in form.getlist("o:tag")],
        body=[[k, v] for k, v in fields],
    )


def _text(form: FormData, key: str) -> str | None:
    value = form.get(key)
    return value if isinstance(value, str) else None


async def _checked_form(
    request: Request, domain: str, types: tuple[str, ...]
) -> FormData | Response:
    if not _authorized(request):
        return error(401, AUTH_ERROR)
    if domain != DOMAIN:
        return error(404, f"Domain not found: {domain}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in types:
        return error(400, f"Content-Type must be one of {', '.join(types)}")

    form = await request.form()
    problem = _form_problem(form)
    return error(400, problem) if problem else form


async def messages(request: Request) -> Response | SentMessage:
    form = await _checked_form(request, request.path_params["domain"], FORM_TYPES)
    if isinstance(form, Response):
        return form

    # Mailgun needs a sender and recipient; the subject must be present.
    for required in ("from", "to"):
        if not form.get(required):
            return error(400, f"'{required}' parameter is missing")
    if "subject" not in form:
        return error(400, "'subject' parameter is missing")
    if not any(form.get(k) for k in ("text", "html", "amp-html", "template")):
        return error(400, NO_BODY)
    return _record_fields(form)


async def messages_mime(request: Request) -> Response | SentMessage:
    domain = request.path_params["domain"]
    form = await _checked_form(request, domain, ("multipart/form-data",))
    if isinstance(form, Response):
        return form

    if not form.get("to"):
        return error(400, "'to' parameter is missing")
    upload = form.get("message")
    if not isinstance(upload, UploadFile):
        return error(400, "'message' parameter is missing")

    raw = await upload.read()
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    message = _record_fields(form)
    message.raw_mime = raw.decode("utf-8", "replace")
    message.headers = {k: str(v) for k, v in parsed.items()}
    message.from_addr, message.subject = parsed["From"], parsed["Subject"]
    return message


def create() -> StandIn:
    """A fresh Mailgun stand-in for :data:`DOMAIN` that accepts :data:`API_KEY`."""
    return StandIn(
        "mailgun",
        routes=[
            ("POST", "/v3/{domain}/messages", messages),
            ("POST", "/v3/{domain}/messages.mime", messages_mime),
        ],
        error=error,
        success=_success,
    )
