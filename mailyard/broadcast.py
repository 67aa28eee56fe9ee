"""Read every partition of a topic in every worker, outside any consumer group.

Rule versions, the suppression list and destination health must be the
same in each worker: a worker that routes a message needs all of them, not
just the partitions a consumer group handed it. Faust's GlobalTable is
meant for this but is unreliable with several workers, so each worker runs
a plain aiokafka consumer over all partitions instead. A compacted topic
is read from the beginning; a windowed feed (health) from a point in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

OnRecord = Callable[[ConsumerRecord], None]


class Broadcast:
    """Feeds ``on_record`` with every record of ``topic``; ``ready`` once caught up."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        on_record: OnRecord,
        *,
        since_s: float | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.on_record = on_record
        self.since_s = since_s  # None: from the beginning
        self.ready = asyncio.Event()
        self.records = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # already logged
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading %s failed; starting over in 2s", self.topic)
                await asyncio.sleep(2)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            await self._seek(consumer, tps)
            ends = await consumer.end_offsets(tps)
            await self._drain(consumer, ends)
        finally:
            await consumer.stop()

    async def _seek(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        if self.since_s is None:
            await consumer.seek_to_beginning(*tps)
            return
        since_ms = int((time.time() - self.since_s) * 1000)
        # A partition with nothing newer than since_ms is read from where it
        # ended before the lookup: seeking to its end afterwards would skip
        # records produced meanwhile (a worker's first decisions, say).
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            consumer.seek(tp, ends[tp] if hit is None else hit.offset)

    async def _drain(
        self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
    ) -> None:
        pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
        if not pending:
            self.ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    self._apply(record)
                if tp in pending and await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if not pending and not self.ready.is_set():
                self.ready.set()
                log.info("caught up with %s (%s records)", self.topic, self.records)

    def _apply(self, record: ConsumerRecord) -> None:
        self.records += 1
        try:
            self.on_record(record)
        except Exception:
            log.exception(
                "skipping unreadable record %s[%s]@%s",
                record.topic, record.partition, record.offset,
            )
