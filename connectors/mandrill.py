"""Mandrill (Mailchimp Transactional) webhooks: a JSON array inside a form field.

Mandrill posts ``application/x-www-form-urlencoded`` with one field,
``mandrill_events``, holding a JSON array; multipart bodies with the same
field are read too. Adding a webhook posts ``mandrill_events=[]``, which
holds no events. The event's own ``ts`` is when it happened; ``msg.ts`` is
when the message was sent and is not used. Sync events (allowlist and
denylist changes) carry ``type`` instead of ``event`` and are ``unknown``.
``_id`` is the message id; Mandrill gives no event id, so ids are derived.
"""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import (
    bare_address,
    build_event,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import (
    Record,
    load_json,
    media_type,
    parse_multipart,
    parse_urlencoded,
    type_name,
)
from mailyard.errors import WebhookError
from mailyard.model import EmailEvent

NAME = "mandrill"

# Mandrill's event name -> (our type, bounce class).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    "send": ("sent", None),
    "deferral": ("deferred", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "soft_bounce": ("bounced", "soft"),
    "open": ("opened", None),
    "click": ("clicked", None),
    "spam": ("complained", None),
    "unsub": ("unsubscribed", None),
    "reject": ("rejected", None),
}
UNKNOWN = ("unknown", None)

FIELD = "mandrill_events"
# Sync events name the address in one of these objects, not in ``msg``.
SYNC_OBJECTS = ("reject", "entry")

Form = dict[str, list[str]]


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one Mandrill POST, in body order."""
    media = media_type(content_type)[0]
    reader = FORM_READERS.get(media)
    if reader is None:
        known = ", ".join(FORM_READERS)
        detail = f"content type {content_type!r} is not one Mandrill sends ({known})."
        raise WebhookError(NAME, detail)

    values = reader(body, content_type).get(FIELD)
    if not values:
        raise WebhookError(NAME, f"form has no {FIELD!r} field.")
    batch = load_json(NAME, values[0], f"field {FIELD!r}")
    if not isinstance(batch, list):
        detail = f"field {FIELD!r} must be a JSON array, not {type_name(batch)}."
        raise WebhookError(NAME, detail)
    return [_event(Record(NAME, item, f"event {n}")) for n, item in enumerate(batch)]


def _event(rec: Record) -> EmailEvent:
    # Sync events have no "event"; their "type" says whitelist or blacklist.
    esp_event = rec.text("event") or rec.text("type") or ""
    type_, bounce_class = EVENT_TYPES.get(rec.text("event") or "", UNKNOWN)
    msg = rec.record("msg") or Record(NAME, {}, "'msg'")
    last_smtp = _last_smtp_event(msg)
    text = msg.text("diag") or last_smtp.text("diag")

    return build_event(
        NAME,
        type_,
        esp_event,
        timestamp=rec.timestamp("ts"),
        recipient=bare_address(msg.text("email") or _sync_address(rec)),
        esp_message_id=rec.ident("_id") or msg.ident("_id"),
        meta=msg.mapping("metadata"),
        tags=msg.strings("tags"),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(None, text),
        enhanced_status=pick_enhanced_status(None, text),
        reason=text or msg.text("bounce_description"),
        url=rec.text("url"),
        user_agent=rec.text("user_agent"),
        sending_ip=last_smtp.text("source_ip"),
    )


def _last_smtp_event(msg: Record) -> Record:
    """The latest SMTP attempt (``smtp_events`` are in time order), or an empty one."""
    attempts = msg.items("smtp_events")
    if not attempts:
        return Record(NAME, {}, "an absent SMTP event")
    return Record(NAME, attempts[-1], f"SMTP event {len(attempts) - 1}", msg)


def _sync_address(rec: Record) -> str | None:
    for key in SYNC_OBJECTS:
        obj = rec.record(key)
        if obj is not None and obj.text("email"):
            return obj.text("email")
    return None


def _urlencoded(body: bytes, content_type: str) -> Form:
    return parse_urlencoded(body)


def _multipart(body: bytes, content_type: str) -> Form:
    return parse_multipart(NAME, body, content_type)


FORM_READERS: dict[str, Callable[[bytes, str], Form]] = {
    "application/x-www-form-urlencoded": _urlencoded,
    "multipart/form-data": _multipart,
}
