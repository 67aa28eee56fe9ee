"""Delayed retries without sleeping consumers.

Deferred deliveries wait on retry tier topics (``mailyard.dispatch.retry.<n>s``),
each holding records that all wait the same time, so due times rise along
each partition. The forwarder reads a partition until it meets a record
that is not yet due, then pauses that partition (the consumer keeps
polling the others) and resumes it when the record falls due. Due records
go to the reroute topic, where the router decides their destination again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from mailyard.codec import codec
from mailyard.topics import REROUTE
from streams.producer import BatchProducer, Record
from streams.stage import dead_letter

log = logging.getLogger(__name__)

_DISPATCH = codec("dispatch")


class RetryForwarder:
    def __init__(
        self, bootstrap: str, topics: list[str], producer: BatchProducer, group_id: str
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.producer = producer
        self.group_id = group_id
        self.forwarded = 0
        self.consecutive_failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.consecutive_failures += 1
                log.exception("retry forwarder failed; starting over in 2s")
                await asyncio.sleep(2)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics, bootstrap_servers=self.bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        loop = asyncio.get_running_loop()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=1000)
                for tp, records in batches.items():
                    await self._forward(consumer, loop, tp, records)
        finally:
            await consumer.stop()

    async def _forward(
        self, consumer: AIOKafkaConsumer, loop: asyncio.AbstractEventLoop,
        tp: TopicPartition, records: list,  # type: ignore[type-arg]
    ) -> None:
        due_now = []
        parked: list[Record] = []
        handled = -1  # the offset up to which this batch was dealt with
        for rec in records:
            try:
                record = _DISPATCH.decode(rec.value)
                if not isinstance(record.get("due_at"), datetime):
                    raise ValueError("a record on a retry tier needs a due_at time")
                wait = (record["due_at"] - datetime.now(timezone.utc)).total_seconds()
            except Exception as exc:  # parked with its reason; the tier moves on
                parked.append(dead_letter("retry", rec, exc, "dispatch record"))
                handled = rec.offset
                continue
            if wait > 0:
                consumer.seek(tp, rec.offset)
                consumer.pause(tp)
                loop.call_later(wait, consumer.resume, tp)
                break
            due_now.append((rec, record))
            handled = rec.offset
        if handled < 0:
            return
        await self.producer.send_all([
            *parked,
            *((REROUTE.name, r["message_id"].encode(), _DISPATCH.encode(r))
              for _, r in due_now),
        ])
        await consumer.commit({tp: OffsetAndMetadata(handled + 1, "")})
        self.forwarded += len(due_now)
        self.consecutive_failures = 0
