"""Mailgun webhooks: current JSON posts and legacy form posts, one event each.

The content type tells the two apart. JSON posts carry ``event-data``;
legacy posts are url-encoded, or multipart when the original message is
attached, and merge user variables into the form fields.
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import (
    bare_address,
    build_event,
    is_enhanced_status,
    parse_timestamp,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import (
    Record,
    load_json,
    media_type,
    parse_multipart,
    parse_urlencoded,
)
from mailyard.errors import WebhookError
from mailyard.model import EmailEvent

NAME = "mailgun"

EVENT_TYPES: dict[str, str] = {
    "accepted": "queued",
    "rejected": "rejected",
    "delivered": "delivered",
    "failed": "bounced",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
    "complained": "complained",
}

# A temporary failure will be retried by Mailgun: it is a deferral.
FAILED_SEVERITIES: dict[str | None, tuple[str, str | None]] = {
    "permanent": ("bounced", "hard"),
    "temporary": ("deferred", "soft"),
}

LEGACY_EVENT_TYPES: dict[str, str] = {
    "delivered": "delivered",
    "dropped": "rejected",
    "bounced": "bounced",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "opened": "opened",
    "clicked": "clicked",
}

LEGACY_BOUNCE_CLASSES: dict[str, str] = {"bounced": "hard"}

# Mailgun's own codes (no MX, unreachable, suppressed, complained), not SMTP.
INTERNAL_CODES = frozenset({498, 499, 605, 607})

# Mailgun puts its value of these last when a user variable collides.
SIGNATURE_FIELDS = frozenset({"signature", "timestamp", "token"})
# Fields that repeat by design, not because a user variable collided.
REPEATED_FIELDS = frozenset({"tag", "X-Mailgun-Tag"})

LEGACY_FIELDS = frozenset(
    {
        "event", "recipient", "domain", "Message-Id", "message-id",
        "message-headers", "X-Mailgun-Sid", "X-Mailgun-Tag", "X-Mailgun-Variables",
        "code", "error", "notification", "description", "reason", "url", "ip",
        "country", "region", "city", "user-agent", "device-type", "client-type",
        "client-name", "client-os", "campaign-id", "campaign-name", "tag",
        "mailing-list", "h", "attachment-count", "body-plain",
    }
) | SIGNATURE_FIELDS  # fmt: skip

Form = dict[str, list[str]]


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """The one event of a Mailgun webhook POST."""
    media = media_type(content_type)[0]
    parser = CONTENT_PARSERS.get(media)
    if parser is None:
        known = ", ".join(CONTENT_PARSERS)
        detail = f"content type {content_type!r} is not one Mailgun sends ({known})."
        raise WebhookError(NAME, detail)
    return [parser(body, content_type)]


def _json_event(body: bytes, content_type: str) -> EmailEvent:
    data = Record(NAME, load_json(NAME, body), "the body").record("event-data")
    if data is None:
        detail = "JSON body has no 'event-data' object; legacy webhooks post forms."
        raise WebhookError(NAME, detail)
    esp_event = data.text("event") or ""
    type_, bounce_class = EVENT_TYPES.get(esp_event, "unknown"), None
    if esp_event == "failed":
        severity = data.text("severity")
        type_, bounce_class = FAILED_SEVERITIES.get(severity, (type_, None))

    headers = (data.record("message") or _EMPTY).record("headers") or _EMPTY
    status = data.record("delivery-status") or _EMPTY
    reject = data.record("reject") or _EMPTY
    text = status.text("message") or status.text("description")
    code = status.ident("code")
    reason = text or reject.text("description") or reject.text("reason")
    timestamp = data.timestamp("timestamp")
    event_id = data.ident("id")

    return build_event(
        NAME,
        type_,
        esp_event,
        key=(event_id, timestamp) if event_id else None,
        timestamp=timestamp,
        recipient=bare_address(data.text("recipient") or headers.text("to")),
        esp_message_id=headers.text("message-id"),
        meta=data.mapping("user-variables"),
        tags=data.strings("tags"),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(None if code in _INTERNAL_TEXT else code, text),
        enhanced_status=pick_enhanced_status(None, text),
        reason=reason or data.text("reason"),
        url=data.text("url"),
        user_agent=(data.record("client-info") or _EMPTY).text("user-agent"),
        sending_ip=(data.record("envelope") or _EMPTY).text("sending-ip"),
    )


def _urlencoded_event(body: bytes, content_type: str) -> EmailEvent:
    return _legacy_event(parse_urlencoded(body))


def _multipart_event(body: bytes, content_type: str) -> EmailEvent:
    return _legacy_event(parse_multipart(NAME, body, content_type))


def _legacy_event(form: Form) -> EmailEvent:
    # Merged user variables: the event's own value comes first, except for
    # the signature fields, where Mailgun's comes last.
    def first(key: str) -> str | None:
        values = form.get(key)
        return values[0] if values else None

    esp_event = first("event") or ""
    code = first("code") or ""
    text = first("error") or first("description") or first("notification")
    enhanced = code if is_enhanced_status(code) else pick_enhanced_status(None, text)
    timestamp_text = form.get("timestamp", [None])[-1]
    try:
        timestamp = parse_timestamp(timestamp_text)
    except ValueError as exc:
        raise WebhookError(NAME, f"form field 'timestamp' is invalid: {exc}.") from None

    return build_event(
        NAME,
        LEGACY_EVENT_TYPES.get(esp_event, "unknown"),
        esp_event,
        timestamp=timestamp,
        recipient=bare_address(first("recipient")),
        esp_message_id=first("Message-Id") or first("message-id"),
        meta=_legacy_metadata(form),
        tags=form.get("tag") or form.get("X-Mailgun-Tag") or [],
        bounce_class=LEGACY_BOUNCE_CLASSES.get(esp_event),
        smtp_code=pick_smtp_code(None if code in _INTERNAL_TEXT else code, text),
        enhanced_status=enhanced,
        reason=text,
        url=first("url"),
        user_agent=first("user-agent"),
    )


def _legacy_metadata(form: Form) -> list[tuple[str, object]]:
    """User variables: unknown fields, and the extra value of colliding ones."""
    pairs: list[tuple[str, object]] = []
    for key, values in form.items():
        if key not in LEGACY_FIELDS:
            pairs.append((key, values[0]))
        elif len(values) > 1 and key not in REPEATED_FIELDS:
            pairs.append((key, values[0] if key in SIGNATURE_FIELDS else values[1]))
    return pairs


_EMPTY = Record(NAME, {}, "an absent object")
_INTERNAL_TEXT = frozenset(str(code) for code in INTERNAL_CODES)

CONTENT_PARSERS: dict[str, Callable[[bytes, str], EmailEvent]] = {
    "application/json": _json_event,
    "application/x-www-form-urlencoded": _urlencoded_event,
    "multipart/form-data": _multipart_event,
}
