"""The one event model every connector normalizes into.

``EmailEvent`` is what travels on the ``mailyard.events`` topic. Its field
names are the public vocabulary: ``mailyard normalize`` prints them, the
Parquet archive stores them as columns and the REST API filters on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timezone
from typing import Any, Literal, get_args

EventType = Literal[
    "queued",
    "sent",
    "rejected",
    "failed",
    "bounced",
    "deferred",
    "delivered",
    "autoresponded",
    "opened",
    "clicked",
    "complained",
    "unsubscribed",
    "subscribed",
    "unknown",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

BounceClass = Literal["hard", "soft", "block"]


@dataclasses.dataclass(frozen=True, slots=True)
class RawRef:
    """Where the raw webhook record that produced an event sits in Kafka."""

    topic: str
    partition: int
    offset: int


@dataclasses.dataclass(slots=True)
class EmailEvent:
    """One normalized email event.

    ``event_id`` is deterministic (see :func:`make_event_id`), so a webhook
    the ESP delivers twice yields the same id twice and can be deduplicated.
    ``raw`` is filled in by the stream worker; ``mailyard normalize`` leaves
    it ``None`` because a file on disk has no Kafka position.
    """

    event_id: str
    type: EventType
    esp: str
    esp_event: str
    timestamp: datetime | None
    recipient: str | None = None
    recipient_domain: str | None = None
    mailbox_provider: str | None = None
    esp_message_id: str | None = None
    message_id: str | None = None
    subaccount: str | None = None
    stream: str | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    bounce_class: BounceClass | None = None
    smtp_code: int | None = None
    enhanced_status: str | None = None
    reason: str | None = None
    url: str | None = None
    user_agent: str | None = None
    sending_ip: str | None = None
    raw: RawRef | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The event as plain JSON types, timestamps as ISO 8601 with ``Z``."""
        out = self.to_record()
        out["timestamp"] = iso_utc(self.timestamp)
        return out

    def to_record(self) -> dict[str, Any]:
        """The event as the dict fastavro writes with ``email_event.avsc``.

        Built field by field: ``dataclasses.asdict`` deep-copies every value
        and was half the cost of the normalize stage.
        """
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        out["tags"] = list(self.tags)
        out["metadata"] = dict(self.metadata)
        raw = self.raw
        if raw is not None:
            out["raw"] = {"topic": raw.topic, "partition": raw.partition,
                          "offset": raw.offset}
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EmailEvent:
        """Build an event from a record fastavro read (unknown fields ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in record.items() if k in names}
        raw = kwargs.get("raw")
        if isinstance(raw, dict):
            kwargs["raw"] = RawRef(**raw)
        ts = kwargs.get("timestamp")
        if isinstance(ts, datetime) and ts.tzinfo is None:
            kwargs["timestamp"] = ts.replace(tzinfo=timezone.utc)
        return cls(**kwargs)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(EmailEvent))


def iso_utc(ts: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds only when present."""
    if ts is None:
        return None
    ts = ts.astimezone(timezone.utc)
    spec = "microseconds" if ts.microsecond else "seconds"
    return ts.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def make_event_id(esp: str, *parts: object) -> str:
    """A deterministic 32-hex-digit id from the ESP name and identifying parts.

    Connectors pass the ESP's own idempotency key when it has one (SendGrid's
    ``sg_event_id``, Mailgun's ``event-data.id``) plus the recipient where an
    ESP fans one notification out to several recipients; otherwise a tuple
    of (message id, recipient, type, timestamp).
    """
    text = "\x1f".join([esp, *("" if p is None else str(p) for p in parts)])
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
