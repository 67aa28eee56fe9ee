"""SendGrid Event Webhook: a JSON array of events per POST.

SendGrid merges custom args into each event as top-level keys, so the
metadata is every key that is not one of SendGrid's own. ``esp_message_id``
is ``sg_message_id`` as given (not ``smtp-id``, which is the Message-ID
header and not what the send API returns).
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

NAME = "sendgrid"

EVENT_TYPES: dict[str, str] = {
    "processed": "queued",
    "dropped": "rejected",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "subscribed",
}

# Bounce events carry ``type``: a receiver's rejection or a block.
BOUNCE_CLASSES: dict[str | None, str] = {
    None: "hard",
    "bounce": "hard",
    "blocked": "block",
}

# Open and click ``ip`` is the reader's address, not ours.
ENGAGEMENT_EVENTS = frozenset({"open", "click"})

# Keys SendGrid itself writes; everything else on an event is a custom arg.
RESERVED_KEYS = frozenset(
    {
        "event", "email", "timestamp", "smtp-id", "sg_event_id", "sg_message_id",
        "category", "reason", "status", "type", "response", "attempt", "url",
        "url_offset", "useragent", "ip", "tls", "cert_err", "pool", "send_at",
        "asm_group_id", "bounce_classification", "sg_machine_open",
        "sg_content_type", "sg_template_id", "sg_template_name", "newsletter",
        "marketing_campaign_id", "marketing_campaign_name",
        "marketing_campaign_version", "marketing_campaign_split_id",
        "singlesend_id", "singlesend_name", "template_id", "template_name",
        "template_version_id", "mc_stats", "phase_id", "unique_args",
        "custom_args", "sg_user_id",
    }
)  # fmt: skip


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one Event Webhook POST, in body order."""
    batch = load_json(NAME, body)
    if not isinstance(batch, list):
        detail = f"body must be a JSON array of events, not {type_name(batch)}."
        raise WebhookError(NAME, detail)
    return [_event(Record(NAME, item, f"event {n}")) for n, item in enumerate(batch)]


def _event(rec: Record) -> EmailEvent:
    esp_event = rec.text("event") or ""
    type_ = EVENT_TYPES.get(esp_event, "unknown")
    text = rec.text("reason") or rec.text("response")
    event_id = rec.text("sg_event_id")
    engagement = esp_event in ENGAGEMENT_EVENTS

    return build_event(
        NAME,
        type_,
        esp_event,
        key=(event_id,) if event_id else None,
        timestamp=rec.timestamp("timestamp"),
        recipient=bare_address(rec.text("email")),
        esp_message_id=rec.text("sg_message_id"),
        meta=[(k, v) for k, v in rec.data.items() if k not in RESERVED_KEYS],
        tags=rec.strings("category"),
        bounce_class=BOUNCE_CLASSES.get(rec.text("type")),
        smtp_code=pick_smtp_code(None, text),
        enhanced_status=pick_enhanced_status(rec.ident("status"), text),
        reason=text,
        url=rec.text("url"),
        user_agent=rec.text("useragent"),
        sending_ip=None if engagement else rec.text("ip"),
    )
