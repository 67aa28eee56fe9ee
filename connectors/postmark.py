"""Postmark webhooks: one JSON object per POST, named by ``RecordType``.

Bounce records say what happened in ``Type``, and many of those types are
not bounces at all (auto-replies, unsubscribes, suppressions). Timestamps
carry a local offset and seven fractional digits. Postmark gives no event
id that every record type shares, so ids are derived.
"""

from __future__ import annotations

from connectors.base import (
    bare_address,
    build_event,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import Record, load_json
from mailyard.model import EmailEvent

NAME = "postmark"

RECORD_TYPES: dict[str, str] = {
    "Delivery": "delivered",
    "Bounce": "bounced",
    "SpamComplaint": "complained",
    "Open": "opened",
    "Click": "clicked",
    "SubscriptionChange": "unsubscribed",
}

# Bounce ``Type`` -> (our type, bounce class).
BOUNCE_TYPES: dict[str, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    "SoftBounce": ("bounced", "soft"),
    "VirusNotification": ("bounced", None),
    "Transient": ("deferred", "soft"),
    "DnsError": ("deferred", "soft"),
    "OpenRelayTest": ("deferred", "soft"),
    "Unsubscribe": ("unsubscribed", None),
    "Subscribe": ("subscribed", None),
    "AutoResponder": ("autoresponded", None),
    "AddressChange": ("autoresponded", None),
    "ChallengeVerification": ("autoresponded", None),
    "SpamNotification": ("complained", None),
    "SpamComplaint": ("complained", None),
    "BadEmailAddress": ("rejected", None),
    "ManuallyDeactivated": ("rejected", None),
    "Unconfirmed": ("rejected", None),
    "Blocked": ("rejected", None),
    "DMARCPolicy": ("rejected", None),
    "SMTPApiError": ("failed", None),
    "TemplateRenderingFailed": ("failed", None),
    # Inbound processing failures and Postmark's own "Unknown" are not ours.
    "InboundError": ("unknown", None),
    "Unknown": ("unknown", None),
}

# A suppression that a bounce or complaint caused is reported as that.
SUPPRESSION_REASONS: dict[str | None, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    "ManualSuppression": ("unsubscribed", None),
}

TIMESTAMP_FIELDS = ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt")


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """The one event of a Postmark webhook POST."""
    return [_event(Record(NAME, load_json(NAME, body), "the body"))]


def _classify(rec: Record, esp_event: str) -> tuple[str, str | None]:
    if esp_event == "Bounce":
        return BOUNCE_TYPES.get(rec.text("Type") or "", ("bounced", None))
    if esp_event == "SubscriptionChange":
        if rec.flag("SuppressSending") is False:
            return "subscribed", None
        default = ("unsubscribed", None)
        return SUPPRESSION_REASONS.get(rec.text("SuppressionReason"), default)
    return RECORD_TYPES.get(esp_event, "unknown"), None


def _event(rec: Record) -> EmailEvent:
    # Inbound posts have no RecordType; they are told apart by FromFull.
    inbound = "FromFull" in rec.data
    esp_event = rec.text("RecordType") or ("Inbound" if inbound else "")
    type_, bounce_class = _classify(rec, esp_event)
    stamp = next((key for key in TIMESTAMP_FIELDS if rec.data.get(key)), "")
    text = rec.text("Details") or None

    return build_event(
        NAME,
        type_,
        esp_event,
        timestamp=rec.timestamp(stamp) if stamp else None,
        recipient=bare_address(rec.text("Email") or rec.text("Recipient")),
        esp_message_id=rec.text("MessageID"),
        meta=rec.mapping("Metadata"),
        tags=rec.strings("Tag"),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(None, text),
        enhanced_status=pick_enhanced_status(None, text),
        reason=text or rec.text("Description"),
        url=rec.text("OriginalLink"),
        user_agent=rec.text("UserAgent"),
    )
