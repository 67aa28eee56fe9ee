"""SparkPost webhooks: a JSON array of ``{"msys": {"<class>": {...}}}`` wrappers.

Creating or testing a webhook posts the ping ``[{"msys": {}}]``, which
holds no events. ``esp_message_id`` is ``transmission_id``, the only id the
send API returns.
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

NAME = "sparkpost"

EVENT_TYPES: dict[str, str] = {
    "injection": "queued",
    "delivery": "delivered",
    "bounce": "bounced",
    "out_of_band": "bounced",
    "delay": "deferred",
    "policy_rejection": "rejected",
    "generation_rejection": "rejected",
    "generation_failure": "failed",
    "spam_complaint": "complained",
    "open": "opened",
    "amp_open": "opened",
    "click": "clicked",
    "amp_click": "clicked",
    "list_unsubscribe": "unsubscribed",
    "link_unsubscribe": "unsubscribed",
    # initial_open fires alongside open; mapping it too would count twice.
    "initial_open": "unknown",
    "amp_initial_open": "unknown",
}

# SparkPost's bounce classification: class -> (category, our bounce class).
BOUNCE_CATEGORIES: dict[str, tuple[str, str | None]] = {
    "1": ("Undetermined", None),
    "10": ("Hard", "hard"),
    "20": ("Soft", "soft"),
    "21": ("Soft", "soft"),
    "22": ("Soft", "soft"),
    "23": ("Soft", "soft"),
    "24": ("Soft", "soft"),
    "25": ("Admin", None),
    "30": ("Hard", "hard"),
    "40": ("Soft", "soft"),
    "50": ("Block", "block"),
    "51": ("Block", "block"),
    "52": ("Block", "block"),
    "53": ("Block", "block"),
    "54": ("Block", "block"),
    "60": ("Soft", "soft"),
    "70": ("Soft", "soft"),
    "80": ("Admin", None),
    "90": ("Hard", "hard"),
    "100": ("Soft", "soft"),
}

# Some "bounces" are not failures at all: replies and list actions.
BOUNCE_TYPE_OVERRIDES: dict[str, str] = {
    "60": "autoresponded",
    "80": "subscribed",
    "90": "unsubscribed",
    "100": "autoresponded",
}


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one SparkPost batch, in body order."""
    batch = load_json(NAME, body)
    if not isinstance(batch, list):
        detail = f"body must be a JSON array of msys wrappers, not {type_name(batch)}."
        raise WebhookError(NAME, detail)

    events: list[EmailEvent] = []
    for n, item in enumerate(batch):
        msys = Record(NAME, item, f"wrapper {n}").record("msys")
        if msys is None:
            raise WebhookError(NAME, f"wrapper {n} has no 'msys' object.")
        for event_class, event in msys.data.items():
            where = f"{event_class!r} of wrapper {n}"
            events.append(_event(Record(NAME, event, where), event_class))
    return events


def _event(rec: Record, event_class: str) -> EmailEvent:
    # Inbound relay messages carry no "type"; their class names them.
    esp_event = rec.text("type") or event_class
    type_ = EVENT_TYPES.get(esp_event, "unknown")
    bounce_class_id = rec.ident("bounce_class") or ""
    bounce_class = BOUNCE_CATEGORIES.get(bounce_class_id, ("", None))[1]
    if type_ == "bounced":
        type_ = BOUNCE_TYPE_OVERRIDES.get(bounce_class_id, type_)
    text = rec.text("raw_reason") or rec.text("reason")
    event_id = rec.ident("event_id")
    recipient = rec.text("rcpt_to") or rec.text("raw_rcpt_to")

    return build_event(
        NAME,
        type_,
        esp_event,
        key=(event_id,) if event_id else None,
        timestamp=rec.timestamp("timestamp"),
        recipient=bare_address(recipient),
        esp_message_id=rec.ident("transmission_id"),
        meta=rec.mapping("rcpt_meta"),
        tags=rec.strings("rcpt_tags"),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(rec.ident("error_code"), text),
        enhanced_status=pick_enhanced_status(None, text),
        reason=text,
        url=rec.text("target_link_url"),
        user_agent=rec.text("user_agent"),
        sending_ip=rec.text("sending_ip"),
    )

