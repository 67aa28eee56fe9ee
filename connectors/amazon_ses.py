"""Amazon SES notifications delivered by SNS over HTTPS.

The body is an SNS envelope (sent as ``text/plain``) whose ``Message`` is a
string holding the SES JSON. Subscription messages and the plain-text
"Successfully validated" notice hold no events. One SES notification fans
out to one event per affected recipient; opens, clicks and the other
untracked types go to every ``mail.destination`` address. Timestamps come
from the event object, not from SNS.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from connectors.base import (
    bare_address,
    build_event,
    metadata_text,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import Record, load_json
from mailyard.errors import WebhookError
from mailyard.model import EmailEvent

NAME = "amazon_ses"


class Shape(NamedTuple):
    """Where an SES event type keeps its data."""

    type: str
    obj: str  # the key of the event object
    recipients: str | None  # its per-recipient list; None: mail.destination
    timed: bool = True  # whether the event object has its own timestamp
    reason: str | None = None  # its field of human-readable explanation


EVENT_SHAPES: dict[str, Shape] = {
    "Bounce": Shape("bounced", "bounce", "bouncedRecipients"),
    "Complaint": Shape(
        "complained", "complaint", "complainedRecipients",
        reason="complaintFeedbackType",
    ),
    "Delivery": Shape("delivered", "delivery", "recipients", reason="smtpResponse"),
    "DeliveryDelay": Shape("deferred", "deliveryDelay", "delayedRecipients"),
    "Send": Shape("sent", "send", None, timed=False),
    "Reject": Shape("rejected", "reject", None, timed=False, reason="reason"),
    "Rendering Failure": Shape(
        "failed", "failure", None, timed=False, reason="errorMessage"
    ),
    "Open": Shape("opened", "open", None),
    "Click": Shape("clicked", "click", None),
    "Subscription": Shape("unknown", "subscription", None),
}  # fmt: skip
UNKNOWN_SHAPE = Shape("unknown", "", None, timed=False)

# Transient bounces are final too: SES has stopped retrying them.
BOUNCE_CLASSES: dict[str | None, str] = {"Permanent": "hard", "Transient": "soft"}

NON_EVENT_MESSAGES = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})
VALIDATION_NOTICE = "Successfully validated"


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one SNS message, one per recipient the notification covers."""
    envelope = Record(NAME, load_json(NAME, body), "the SNS message")
    sns_type = envelope.text("Type")
    if sns_type in NON_EVENT_MESSAGES:
        return []
    if sns_type != "Notification":
        raise WebhookError(NAME, _not_sns(envelope, sns_type))

    message = envelope.text("Message")
    if message is None:
        raise WebhookError(NAME, "SNS Notification has no 'Message' string.")
    if message.startswith(VALIDATION_NOTICE):
        return []
    what = "the SNS Message"
    notification = Record(NAME, load_json(NAME, message, what), what)
    return _events(notification, envelope.text("MessageId"))


def _not_sns(envelope: Record, sns_type: str | None) -> str:
    if sns_type is None and {"notificationType", "eventType"} & envelope.data.keys():
        return "body is SES JSON without an SNS envelope; turn raw delivery off."
    return f"SNS Type {sns_type!r} is not Notification or a subscription message."


def _events(note: Record, sns_id: str | None) -> list[EmailEvent]:
    esp_event = note.text("eventType") or note.text("notificationType") or ""
    shape = EVENT_SHAPES.get(esp_event, UNKNOWN_SHAPE)
    mail = note.record("mail") or Record(NAME, {}, "'mail'")
    detail = note.record(shape.obj) if shape.obj else None
    detail = detail or Record(NAME, {}, repr(shape.obj))
    # Send, Reject and Rendering Failure happen at send time: mail.timestamp.
    timed = detail if shape.timed else mail

    common: dict[str, Any] = {
        "timestamp": timed.timestamp("timestamp"),
        "esp_message_id": mail.text("messageId"),
        "meta": _tags_metadata(mail),
        "bounce_class": BOUNCE_CLASSES.get(detail.text("bounceType")),
        "url": detail.text("link"),
        "user_agent": detail.text("userAgent"),
    }
    reason = detail.text(shape.reason) if shape.reason else None

    if shape.recipients is None:
        recipients = mail.items("destination")
    else:
        recipients = detail.items(shape.recipients)
    return [
        _recipient_event(item, n, shape.type, esp_event, sns_id, reason, common)
        for n, item in enumerate(recipients)
    ]


def _recipient_event(
    item: object,
    n: int,
    type_: str,
    esp_event: str,
    sns_id: str | None,
    reason: str | None,
    common: dict[str, Any],
) -> EmailEvent:
    # Per-recipient entries are bare strings or {emailAddress, status, ...}.
    data = {"emailAddress": item} if isinstance(item, str) else item
    entry = Record(NAME, data, f"recipient {n}")
    recipient = bare_address(entry.text("emailAddress"))
    text = entry.text("diagnosticCode") or reason

    return build_event(
        NAME,
        type_,
        esp_event,
        key=(sns_id, recipient, type_) if sns_id else None,
        recipient=recipient,
        smtp_code=pick_smtp_code(None, text),
        enhanced_status=pick_enhanced_status(entry.text("status"), text),
        reason=text,
        **common,
    )


def _tags_metadata(mail: Record) -> list[tuple[str, object]]:
    """Event Publishing message tags, without SES's own ``ses:*`` ones."""
    pairs: list[tuple[str, object]] = []
    for key, values in mail.mapping("tags").items():
        if key.startswith("ses:"):
            continue
        single = isinstance(values, list) and len(values) == 1
        pairs.append((key, values[0] if single else metadata_text(values)))
    return pairs
