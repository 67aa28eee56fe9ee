"""Mailjet Event API: a JSON array of events, or one bare object.

Mailjet posts a bare object when "group events" is off for a trigger,
although its docs say an array. ``MessageID`` is a 64-bit integer above
2**53, kept as its exact decimal text. Mailjet's "sent" means the
receiving MTA accepted the message, so it is our ``delivered``. Mailjet
gives no event id, so ids are derived.
"""

from __future__ import annotations

from connectors.base import (
    bare_address,
    build_event,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import Record, load_json, type_name
from mailyard.errors import WebhookError
from mailyard.model import EmailEvent

NAME = "mailjet"

EVENT_TYPES: dict[str, str] = {
    "sent": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "blocked": "rejected",
    "spam": "complained",
    "unsub": "unsubscribed",
}

BOUNCE_CLASSES: dict[bool | None, str] = {True: "hard", False: "soft"}

# A greylisting "bounce" that is not hard will be retried: a deferral.
DEFERRING_ERRORS = frozenset({"greylisted"})


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one Mailjet POST, in body order."""
    payload = load_json(NAME, body)
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        detail = f"body must be a JSON array or object, not {type_name(payload)}."
        raise WebhookError(NAME, detail)
    return [_event(Record(NAME, item, f"event {n}")) for n, item in enumerate(payload)]


def _event(rec: Record) -> EmailEvent:
    esp_event = rec.text("event") or ""
    type_ = EVENT_TYPES.get(esp_event, "unknown")
    hard = rec.flag("hard_bounce")
    if type_ == "bounced" and not hard and rec.text("error") in DEFERRING_ERRORS:
        type_ = "deferred"
    text = rec.text("smtp_reply") or rec.text("comment")

    return build_event(
        NAME,
        type_,
        esp_event,
        timestamp=rec.timestamp("time"),
        recipient=bare_address(rec.text("email")),
        esp_message_id=rec.ident("MessageID") or rec.ident("mj_message_id"),
        meta=_metadata(rec),
        tags=rec.strings("customcampaign"),
        bounce_class=BOUNCE_CLASSES.get(hard),
        smtp_code=pick_smtp_code(None, text),
        enhanced_status=pick_enhanced_status(None, text),
        reason=text or rec.text("error"),
        url=rec.text("url"),
        user_agent=rec.text("agent"),
    )


def _metadata(rec: Record) -> list[tuple[str, object]]:
    """The event payload set at send time (a JSON object, or kept as text)."""
    pairs: list[tuple[str, object]] = []
    payload = rec.text("Payload")
    if payload:
        try:
            decoded = load_json(NAME, payload, "field 'Payload'")
        except WebhookError:
            decoded = None
        if isinstance(decoded, dict):
            pairs.extend(decoded.items())
        else:
            pairs.append(("payload", payload))
    custom_id = rec.ident("CustomID")
    if custom_id:
        pairs.append(("custom_id", custom_id))
    return pairs
