"""Resend webhooks (delivered by Svix): one JSON event per POST.

The body is ``{"type": "email.<x>", "created_at": ..., "data": {...}}``.
Top-level ``created_at`` is when the event happened; ``data.created_at`` is
when the message was created. Events do not say which recipient they
concern, so the recipient is the first ``data.to`` address, without its
display name. Resend's ``tags`` are name/value pairs, so they are the
metadata. Resend's own idempotency key is the ``svix-id`` header, which a
body does not carry, so ids are derived. Types that Resend adds later, and
its domain and contact events, are ``unknown``.
"""

from __future__ import annotations

from typing import Any

from connectors.base import bare_address, build_event
from connectors.bodies import Record, load_json
from mailyard.model import EmailEvent

NAME = "resend"

EVENT_TYPES: dict[str, str] = {
    "email.scheduled": "queued",
    "email.sent": "sent",
    "email.delivered": "delivered",
    "email.delivery_delayed": "deferred",
    "email.bounced": "bounced",
    "email.complained": "complained",
    "email.opened": "opened",
    "email.clicked": "clicked",
    # Resend refused to send: an API, domain or quota problem, or its list.
    "email.failed": "failed",
    "email.suppressed": "rejected",
}

# ``bounce.type``; a bounce without one is taken as permanent.
BOUNCE_CLASSES: dict[str | None, str] = {
    None: "hard",
    "Permanent": "hard",
    "Transient": "soft",
}


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """The one event of a Resend webhook POST."""
    return [_event(Record(NAME, load_json(NAME, body), "the body"))]


def _event(rec: Record) -> EmailEvent:
    esp_event = rec.text("type") or ""
    type_ = EVENT_TYPES.get(esp_event, "unknown")
    data = rec.record("data") or Record(NAME, {}, "'data'")
    bounce = data.record("bounce") or _EMPTY
    click = data.record("click") or _EMPTY
    failed = data.record("failed") or _EMPTY
    recipients = data.strings("to")

    return build_event(
        NAME,
        type_,
        esp_event,
        timestamp=rec.timestamp("created_at"),
        recipient=bare_address(recipients[0]) if recipients else None,
        esp_message_id=data.text("email_id"),
        meta=_tag_pairs(data),
        bounce_class=BOUNCE_CLASSES.get(bounce.text("type")),
        reason=bounce.text("message") or failed.text("reason"),
        url=click.text("link"),
        user_agent=click.text("userAgent"),
    )


def _tag_pairs(data: Record) -> list[tuple[str, object]]:
    """``tags`` as an object, or as the send API's ``[{name, value}]`` list."""
    value: Any = data.data.get("tags")
    if isinstance(value, list):
        entries = [Record(NAME, v, f"tag {n}", data) for n, v in enumerate(value)]
        return [(e.text("name") or "", e.data.get("value")) for e in entries]
    return list(data.mapping("tags").items())


_EMPTY = Record(NAME, {}, "an absent object")
