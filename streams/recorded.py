"""Read back the messages submitted in a time range, for simulation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from mailyard.codec import codec
from mailyard.topics import SUBMITTED

_SUBMITTED = codec("submitted_message")


def recorded_messages(
    bootstrap: str, start: datetime, end: datetime, *, limit: int = 100_000
) -> list[dict[str, Any]]:
    """Submitted-message records whose Kafka timestamp is in ``[start, end)``."""
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "mailyard-sim",
                         "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(SUBMITTED.name, p, start_ms)
                  for p in range(SUBMITTED.partitions)]
        found = consumer.offsets_for_times(wanted, timeout=10)
        ends = {}
        assign = []
        for tp in found:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset >= 0 and tp.offset < high:
                ends[tp.partition] = high
                assign.append(tp)
        consumer.assign(assign)
        return _read(consumer, ends, end_ms, limit)
    finally:
        consumer.close()


def _read(
    consumer: Consumer, ends: dict[int, int], end_ms: int, limit: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    open_parts = set(ends)
    while open_parts and len(out) < limit:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error() or msg.partition() not in open_parts:
                continue
            if msg.timestamp()[1] >= end_ms or msg.offset() + 1 >= ends[msg.partition()]:
                open_parts.discard(msg.partition())
            if msg.timestamp()[1] < end_ms:
                out.append(_SUBMITTED.decode(msg.value()))
    return out[:limit]
