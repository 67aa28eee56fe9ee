"""SocketLabs Event Webhook: one JSON event per POST, or an array of them.

Fields, as SocketLabs documents them ("Event Webhooks: Data Attributes")
and as its own .NET webhook library reads them:

- every event: ``Type``, ``DateTime`` (ISO 8601 UTC, seven fractional
  digits), ``MessageId`` and ``MailingId`` (ids the sender may set),
  ``Address`` (the recipient), ``ServerId``, ``SubaccountId``,
  ``SecretKey`` and ``Data`` = ``{"Meta": [{"Key", "Value"}], "Tags": []}``;
- Delivered: ``Response``, ``LocalIp``, ``RemoteMta``;
- Deferred: ``DeferralCode``, ``Reason``;
- Failed: ``FailureType`` (Temporary, Permanent or Suppressed, or 0-2),
  ``FailureCode`` (SocketLabs' own four-digit code, not SMTP),
  ``BounceStatus``, ``DiagnosticCode``, ``Reason``, ``RemoteMta``;
- Tracking: ``TrackingType`` (Click, Open or Unsubscribe, or 0-2),
  ``Url``, ``UserAgent``, ``ClientIp``;
- Complaint: ``FblType``, ``From``, ``To``, ``UserAgent``.

The payload says ``Delivered`` and ``Tracking`` where SocketLabs' settings
page says Sent, Click and Open; both spellings are read, and ``esp_event``
of a Tracking event is its ``TrackingType``. An asynchronous bounce comes
as a Delivered event and, later, a Failed one. Endpoints created before
June 2021 may still post url-encoded forms with the same flat fields (no
``Data``). ``SecretKey`` authenticates the post and is never copied into
an event. SocketLabs gives no event id, so ids are derived. The
``Validation`` post sent when an endpoint is set up becomes ``unknown``.
"""

from __future__ import annotations

from connectors.base import (
    bare_address,
    build_event,
    pick_enhanced_status,
    pick_smtp_code,
)
from connectors.bodies import (
    Record,
    event_records,
    media_type,
    parse_urlencoded,
)
from mailyard.model import EmailEvent

NAME = "socketlabs"

EVENT_TYPES: dict[str, str] = {
    "Queued": "queued",
    "Sent": "delivered",
    "Delivered": "delivered",
    "Deferred": "deferred",
    "Failed": "bounced",
    "Complaint": "complained",
    "Click": "clicked",
    "Open": "opened",
    "Unsubscribe": "unsubscribed",
}

# ``TrackingType`` by name or by its enum number.
TRACKING_TYPES: dict[str, str] = {
    "Click": "Click", "0": "Click",
    "Open": "Open", "1": "Open",
    "Unsubscribe": "Unsubscribe", "2": "Unsubscribe",
}  # fmt: skip

# ``FailureType`` -> (our type, bounce class). Suppressed: never attempted.
FAILURE_TYPES: dict[str | None, tuple[str, str | None]] = {
    "Temporary": ("bounced", "soft"), "0": ("bounced", "soft"),
    "Permanent": ("bounced", "hard"), "1": ("bounced", "hard"),
    "Suppressed": ("rejected", None), "2": ("rejected", None),
}  # fmt: skip

# SocketLabs failure codes by thousand: 1xxx are blocklist, content, rate
# or virus rejections; 5xxx are auto-replies, not failures at all.
FAILURE_FAMILIES: dict[int, tuple[str, str | None]] = {
    1: ("bounced", "block"),
    5: ("autoresponded", None),
}

FORM = "application/x-www-form-urlencoded"


def parse(body: bytes, content_type: str) -> list[EmailEvent]:
    """Events of one SocketLabs POST, in body order."""
    if media_type(content_type)[0] == FORM:
        fields = parse_urlencoded(body)
        flat = {key: values[0] for key, values in fields.items()}
        return [_event(Record(NAME, flat, "the form"))]

    return [_event(rec) for rec in event_records(NAME, body)]


def _event(rec: Record) -> EmailEvent:
    esp_event = rec.text("Type") or ""
    if esp_event == "Tracking":
        esp_event = TRACKING_TYPES.get(rec.ident("TrackingType") or "", esp_event)
    type_, bounce_class = EVENT_TYPES.get(esp_event, "unknown"), None
    if type_ == "bounced":
        type_, bounce_class = _failure(rec)
    text = rec.text("DiagnosticCode") or rec.text("Reason") or rec.text("Response")
    data = rec.record("Data") or Record(NAME, {}, "'Data'")

    return build_event(
        NAME,
        type_,
        esp_event,
        timestamp=rec.timestamp("DateTime"),
        recipient=bare_address(rec.text("Address") or rec.text("To")),
        esp_message_id=rec.ident("MessageId"),
        meta=_metadata(rec, data),
        tags=data.strings("Tags"),
        bounce_class=bounce_class,
        smtp_code=pick_smtp_code(rec.ident("DeferralCode"), text),
        enhanced_status=pick_enhanced_status(rec.text("BounceStatus"), text),
        reason=text,
        url=rec.text("Url"),
        user_agent=rec.text("UserAgent"),
        sending_ip=rec.text("LocalIp"),
    )


def _failure(rec: Record) -> tuple[str, str | None]:
    """Type and bounce class of a Failed event, from its type and code."""
    failure_type = rec.ident("FailureType")
    type_, bounce_class = FAILURE_TYPES.get(failure_type, ("bounced", None))
    code = rec.ident("FailureCode") or ""
    if type_ == "bounced" and len(code) == 4 and code.isdigit():
        return FAILURE_FAMILIES.get(int(code) // 1000, (type_, bounce_class))
    return type_, bounce_class


def _metadata(rec: Record, data: Record) -> list[tuple[str, object]]:
    """``Data.Meta`` key/value entries, plus the sender's ``MailingId``."""
    pairs: list[tuple[str, object]] = []
    for n, item in enumerate(data.items("Meta")):
        entry = Record(NAME, item, f"meta entry {n}", data)
        key = entry.text("Key")
        if key:
            value = entry.data.get("Value")
            pairs.append((key, "" if value is None else value))
    mailing_id = rec.ident("MailingId")
    if mailing_id:
        pairs.append(("mailing_id", mailing_id))
    return pairs
