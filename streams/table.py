"""A partitioned in-memory table kept durable by a compacted changelog topic.

The ledger's state: one dict per partition of its source topic, each backed
by the same-numbered partition of the changelog. A worker that is assigned
a source partition first reads that changelog partition to its end (so the
state is back before the first record is processed), and drops the state
when the partition is revoked. Writes go to the changelog through the
worker's confirmed-delivery producer, in batches, before the source offsets
are committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.producer import BatchProducer, Record

log = logging.getLogger(__name__)


class ChangelogTable:
    def __init__(
        self, bootstrap: str, changelog: str, producer: Callable[[], BatchProducer]
    ) -> None:
        self.bootstrap = bootstrap
        self.changelog = changelog
        self._producer = producer  # made on first write, not at import
        self.partitions: dict[int, dict[str, Any]] = {}

    def partition(self, p: int) -> dict[str, Any]:
        return self.partitions[p]

    def items(self) -> Iterator[tuple[str, Any]]:
        for part in list(self.partitions.values()):
            yield from list(part.items())

    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions.values())

    async def write(self, writes: Mapping[int, Mapping[str, Any]]) -> None:
        """Write ``{partition: {key: value}}`` to the changelog, then to memory."""
        records: list[Record] = [
            (self.changelog, key.encode(), json.dumps(value).encode(), p)
            for p, pending in writes.items() for key, value in pending.items()
        ]
        if records:
            await self._producer().send_all(records)
        for p, pending in writes.items():
            self.partitions.setdefault(p, {}).update(pending)

    async def restore(self, partitions: set[int]) -> None:
        """Read the changelog partitions back into memory, to their ends."""
        todo = sorted(p for p in partitions if p not in self.partitions)
        if not todo:
            return
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        restored: dict[int, dict[str, Any]] = {p: {} for p in todo}
        try:
            tps = [TopicPartition(self.changelog, p) for p in todo]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            left = {tp for tp in tps if ends[tp] > 0}
            # Compaction can leave the last offsets empty (or transaction
            # markers), so a partition is done once its position reaches the end.
            while left:
                polled = await consumer.getmany(*left, timeout_ms=500, max_records=10_000)
                for tp, recs in polled.items():
                    part = restored[tp.partition]
                    for rec in recs:
                        if rec.value is None:
                            part.pop(rec.key.decode(), None)
                        else:
                            part[rec.key.decode()] = json.loads(rec.value)
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
        finally:
            await consumer.stop()
        self.partitions.update(restored)
        log.info(
            "restored %s keys of %s partitions %s in %.1fs",
            sum(len(restored[p]) for p in todo), self.changelog, todo,
            time.monotonic() - started,
        )

    def drop(self, partitions: set[int]) -> None:
        for p in partitions:
            self.partitions.pop(p, None)
