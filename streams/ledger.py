"""Deduplication and live counts over the normalized event stream.

State lives in one Faust table so that a single changelog partition holds
everything a source partition contributed, written in processing order.
Two kinds of keys share it:

* ``c|<partition>|<bucket>|<subaccount>|<esp>|<type>`` holds
  ``[count, last_offset]``; ``bucket`` is the event's UTC minute (epoch
  minutes) or ``total``. The stamped offset makes replays harmless: after a
  crash, Faust re-delivers records whose offsets were not committed, and a
  record at or below a key's stamp has already been applied to that key.
* ``s|<event_id>`` marks an event id as seen, so an ESP's duplicate
  delivery (same event id, any later offset) is counted once. It is written
  after the count keys, so a seen mark implies the counts are there too.

Events are keyed by ``event_id`` on the topic, so every duplicate of an
event lands in the same partition as the original.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from mailyard.model import EmailEvent

Put = Callable[[str, Any], None]
TOTAL = "total"


def _minute(ts: datetime | None, fallback_ms: int) -> int:
    if ts is not None:
        return int(ts.timestamp()) // 60
    return fallback_ms // 60_000


class Ledger:
    """Applies events to the table; ``put`` writes one key (and its changelog)."""

    def __init__(self, table: MutableMapping[str, Any], put: Put) -> None:
        self.table = table
        self.put = put

    def apply(
        self, event: EmailEvent, partition: int, offset: int, record_ts_ms: int
    ) -> bool:
        """Count ``event`` once; return True when this is its first sighting."""
        seen_key = f"s|{event.event_id}"
        if seen_key in self.table:
            return False

        sub = event.subaccount or "-"
        minute = _minute(event.timestamp, record_ts_ms)
        suffix = f"{sub}|{event.esp}|{event.type}"
        fresh = False
        for bucket in (str(minute), TOTAL):
            key = f"c|{partition}|{bucket}|{suffix}"
            count, last = self.table.get(key, (0, -1))
            if offset <= last:
                continue  # applied before a crash; the offset was not committed
            self.put(key, (count + 1, offset))
            fresh = True

        self.put(seen_key, minute)
        return fresh


def parse_count_key(key: str) -> tuple[int, str, str, str, str] | None:
    """Split a count key into (partition, bucket, subaccount, esp, type)."""
    if not key.startswith("c|"):
        return None
    _, partition, bucket, sub, esp, etype = key.split("|", 5)
    return int(partition), bucket, sub, esp, etype


def query_counts(
    items: Iterable[tuple[str, Any]],
    *,
    start_minute: int | None = None,
    end_minute: int | None = None,
    esp: str | None = None,
    type_: str | None = None,
    subaccount: str | None = None,
    by_minute: bool = False,
) -> dict[tuple[str, ...], int]:
    """Sum counts over partitions, filtered; keyed by (sub, esp, type[, minute]).

    Without a time range the ``total`` buckets are read; with one, the
    minute buckets inside ``[start_minute, end_minute)``.
    """
    ranged = start_minute is not None or end_minute is not None or by_minute
    out: dict[tuple[str, ...], int] = {}
    for key, value in items:
        parts = parse_count_key(key)
        if parts is None:
            continue
        _, bucket, sub, e, t = parts
        if (esp and e != esp) or (type_ and t != type_):
            continue
        if subaccount and sub != subaccount:
            continue
        if not ranged:
            if bucket != TOTAL:
                continue
            group: tuple[str, ...] = (sub, e, t)
        else:
            if bucket == TOTAL:
                continue
            minute = int(bucket)
            if start_minute is not None and minute < start_minute:
                continue
            if end_minute is not None and minute >= end_minute:
                continue
            group = (sub, e, t, bucket) if by_minute else (sub, e, t)
        out[group] = out.get(group, 0) + int(value[0])
    return out
