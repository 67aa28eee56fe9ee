"""The normalize stage: raw webhook records in, encoded events out.

This is plain code with no Faust in it, so the Faust agent, ``mailyard
normalize`` and the benchmark's bare confluent-kafka loop all run exactly
the same transformation.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from connectors.registry import normalize
from mailyard.codec import codec
from mailyard.errors import MailyardError
from mailyard.model import EmailEvent, RawRef


@dataclasses.dataclass(slots=True)
class Output:
    """What one raw record became: event records, or one dead letter."""

    events: list[tuple[bytes, bytes]]  # (key, value) for the events topic
    dead_letter: bytes | None = None
    error: str | None = None


_RAW = codec("raw_webhook")
_EVENT = codec("email_event")
_DEAD = codec("dead_letter")


def transform(value: bytes, topic: str, partition: int, offset: int) -> Output:
    """Normalize one raw record; any failure becomes a dead letter, never a crash."""
    envelope: dict[str, Any] | None = None
    try:
        envelope = _RAW.decode(value)
        events = normalize(
            envelope["esp"],
            envelope["body"],
            envelope["content_type"],
            subaccount=envelope["subaccount"],
        )
    except Exception as exc:  # every failure is parked with its reason
        return _dead(exc, envelope, value, topic, partition, offset)

    raw = RawRef(topic, partition, offset)
    out = []
    for event in events:
        event.raw = raw
        out.append((event.event_id.encode(), _EVENT.encode(event.to_record())))
    return Output(out)


def _dead(
    exc: Exception,
    envelope: dict[str, Any] | None,
    value: bytes,
    topic: str,
    partition: int,
    offset: int,
) -> Output:
    known = isinstance(exc, MailyardError)
    error = str(exc) if known else f"unexpected {type(exc).__name__}: {exc}"
    value = encode_dead_letter(
        "normalize", error, exc, topic, partition, offset, value,
        esp=envelope.get("esp") if envelope else None,
        subaccount=envelope.get("subaccount") if envelope else None,
    )
    return Output([], value, error)


def encode_dead_letter(
    stage: str, error: str, exc: Exception, topic: str, partition: int, offset: int,
    value: bytes | None, *, esp: str | None = None, subaccount: str | None = None,
) -> bytes:
    """A DeadLetter record: what failed where, and the record's exact bytes."""
    return _DEAD.encode({
        "stage": stage,
        "error": error,
        "error_type": type(exc).__name__,
        "esp": esp,
        "subaccount": subaccount,
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "failed_at": datetime.now(timezone.utc),
        "value": value or b"",  # a null record (a tombstone) parks as empty bytes
    })


def decode_event(value: bytes) -> EmailEvent:
    """Read one record of the events topic back into an :class:`EmailEvent`."""
    return EmailEvent.from_record(_EVENT.decode(value))


def decode_dead_letter(value: bytes) -> dict[str, Any]:
    return _DEAD.decode(value)
