"""Brevo (formerly Sendinblue) transactional webhooks: JSON, one event or a batch.

Brevo posts one object per event, or an array of them when "batched
webhooks" is on. ``date``, ``ts`` and ``ts_event`` may be shifted into the
account's time zone; only ``ts_epoch`` is reliably UTC. It is documented
as milliseconds, but Brevo's own examples carry seconds, so values below
10**11 are read as seconds. ``message-id`` comes in angle brackets, and
bounce ``reason`` texts often start with a space.

Metadata is the ``X-Mailin-custom`` header, a JSON string set at send time;
text that is not a JSON object is kept whole under ``x-mailin-custom``.
Brevo gives no event id, so ids are derived, with Brevo's own event name in
place of ours: ``opened``, ``unique_opened`` and ``proxy_open`` of one
message in one millisecond are three events, not one.
"""

from __future__ import annotations

from connectors.base import (
    bare_address,
    build_event,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import Record, event_records, load_json
from mailyard.errors import WebhookError
from mailyard.model import EmailEvent

NAME = "brevo"

# Brevo's event name -> (our type, bounce class).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "request": ("queued", None),
    "delivered": ("delivered", None),
    "deferred": ("deferred", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "soft_bounce": ("bounced", "soft"),
    "invalid_email": ("bounced", "hard"),
    # Brevo refused to send (a blocklisted contact): not the receiver's verdict.
    "blocked": ("rejected", None),
    "error": ("failed", None),
    "spam": ("complained", None),
    "complaint": ("complained", None),
    "opened": ("opened", None),
    "unique_opened": ("opened", None),
    # Apple Mail Privacy Protection fetches; esp_event keeps them apart.
    "proxy_open": ("opened", None),
    "unique_proxy_open": ("opened", None),
    "click": ("clicked", None),
    "unsubscribe": ("unsubscribed", None),
    "unsubscribed": ("unsubscribed", None),
    "list_addition": ("subscribed", None),
}
UNKNOWN = ("unknown", None)

CUSTOM_HEADER = "X-Mailin-custom"
# Where custom header text that is not a JSON object is kept.
CUSTOM_TEXT_KEY = "x-mailin-custom"


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one Brevo POST, in body order."""
    return [_event(rec) for rec in event_records(NAME, body)]


def _event(rec: Record) -> EmailEvent:
    esp_event = rec.text("event") or ""
    type_, bounce_class = EVENT_TYPES.get(esp_event, UNKNOWN)
    reason = (rec.text("reason") or "").strip() or None
    timestamp = rec.timestamp("ts_epoch")
    recipient = bare_address(rec.text("email"))
    message_id = rec.text("message-id")

    return build_event(
        NAME,
        type_,
        esp_event,
        key=(message_id, recipient, esp_event, timestamp),
        timestamp=timestamp,
        recipient=recipient,
        esp_message_id=message_id,
        meta=_metadata(rec),
        tags=_tags(rec),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(None, reason),
        enhanced_status=pick_enhanced_status(None, reason),
        reason=reason,
        url=rec.text("link"),
        user_agent=rec.text("user_agent"),
        sending_ip=rec.text("sending_ip"),
    )


def _tags(rec: Record) -> list[str]:
    """``tags`` when set, else ``tag``: one tag, or a JSON array of them."""
    tags = rec.strings("tags")
    if tags:
        return tags
    tag = (rec.text("tag") or "").strip()
    if tag.startswith("["):
        try:
            decoded = load_json(NAME, tag, "field 'tag'")
        except WebhookError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(t, str) for t in decoded):
            return decoded
    return [tag] if tag else []


def _metadata(rec: Record) -> list[tuple[str, object]]:
    """The ``X-Mailin-custom`` header: a JSON object's pairs, or the text itself."""
    value = rec.data.get(CUSTOM_HEADER)
    if isinstance(value, dict):
        return list(value.items())
    text = rec.text(CUSTOM_HEADER)
    if not text:
        return []
    try:
        decoded = load_json(NAME, text, f"field {CUSTOM_HEADER!r}")
    except WebhookError:
        decoded = None
    if isinstance(decoded, dict):
        return list(decoded.items())
    return [(CUSTOM_TEXT_KEY, text)]
