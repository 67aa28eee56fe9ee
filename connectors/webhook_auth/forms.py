"""Form fields of a webhook body, for the ESPs that sign or carry them there."""

from __future__ import annotations

from connectors.bodies import media_type, parse_multipart, parse_urlencoded
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.model import WebhookRequest
from mailyard.errors import WebhookError

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


def is_form(request: WebhookRequest) -> bool:
    return media_type(request.content_type)[0] in (FORM, MULTIPART)


def form_fields(request: WebhookRequest) -> dict[str, list[str]]:
    """Every text field with all its values in body order, or a malformed refusal."""
    media = media_type(request.content_type)[0]
    if media == FORM:
        return parse_urlencoded(request.body)
    if media != MULTIPART:
        detail = (
            f"The content type {media!r} is not a form; expected {FORM} or {MULTIPART}."
        )
        raise WebhookAuthError(request.esp, "malformed", detail)
    try:
        return parse_multipart(request.esp, request.body, request.content_type)
    except WebhookError as exc:
        raise WebhookAuthError(
            request.esp, "malformed", f"The form {exc.detail}"
        ) from None
