"""A partitioned in-memory table kept durable by a compacted changelog topic.

The ledger's state: one dict per partition of its source topic, each backed
by the same-numbered partition of the changelog. A worker that is assigned
a source partition first takes that partition's changelog writer, then
reads the changelog partition to its end (so the state is back before the
first record is processed); it drops both when the partition is revoked.

Each partition's writes go through a transactional producer whose
``transactional.id`` names the partition. Taking the writer fences any
earlier holder: a worker that was paused (a long GC, a frozen VM) past its
session and resumes after another took its partitions cannot write its
stale values any more, and whatever it had begun is aborted before the
new holder reads. Readers read committed records only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from streams.producer import producer_config
from streams.stage import PartitionLost

log = logging.getLogger(__name__)

TXN_TIMEOUT_S = 30.0
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED}


class ChangelogTable:
    def __init__(self, bootstrap: str, changelog: str, writer_prefix: str) -> None:
        self.bootstrap = bootstrap
        self.changelog = changelog
        self.writer_prefix = writer_prefix  # transactional.id = <prefix>.<partition>
        self.partitions: dict[int, dict[str, Any]] = {}
        self._writers: dict[int, Producer] = {}

    def partition(self, p: int) -> dict[str, Any]:
        return self.partitions[p]

    def items(self) -> Iterator[tuple[str, Any]]:
        for part in list(self.partitions.values()):
            yield from list(part.items())

    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions.values())

    # --- writing -------------------------------------------------------------

    async def write(self, writes: Mapping[int, Mapping[str, Any]]) -> None:
        """Write ``{partition: {key: value}}`` to the changelog, then to memory.

        Raises :class:`PartitionLost` when another worker took a partition's
        writer; nothing of that partition is written then.
        """
        loop = asyncio.get_running_loop()
        for p, pending in writes.items():
            if not pending:
                continue
            writer = self._writers.get(p)
            if writer is None:
                raise PartitionLost(f"{self.changelog}[{p}] is not held by this worker")
            records = [(k.encode(), json.dumps(v).encode()) for k, v in pending.items()]
            try:
                await loop.run_in_executor(None, self._commit, writer, p, records)
            except PartitionLost:
                self._writers.pop(p, None)  # a fenced producer is done for
                self.partitions.pop(p, None)
                raise
            self.partitions.setdefault(p, {}).update(pending)

    def _commit(self, writer: Producer, p: int, records: list[tuple[bytes, bytes]]) -> None:
        try:
            writer.begin_transaction()
            for key, value in records:
                while True:
                    try:
                        writer.produce(self.changelog, value, key, p)
                        break
                    except BufferError:
                        writer.poll(0.05)
            writer.commit_transaction(TXN_TIMEOUT_S)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() in _FENCED or err.fatal():
                raise PartitionLost(
                    f"{self.changelog}[{p}]: another worker took this partition "
                    f"({err.str()})") from None
            if err.txn_requires_abort():
                writer.abort_transaction(TXN_TIMEOUT_S)
            raise

    # --- holding partitions ----------------------------------------------------

    async def take(self, partitions: set[int]) -> None:
        """Fence earlier writers of ``partitions``, then read their state back."""
        loop = asyncio.get_running_loop()
        todo = sorted(p for p in partitions if p not in self._writers)
        for p in todo:
            self._writers[p] = await loop.run_in_executor(None, self._new_writer, p)
            self.partitions.pop(p, None)  # whatever was in memory is read again
        await self._restore(set(todo))

    def _new_writer(self, p: int) -> Producer:
        config = {
            **producer_config(self.bootstrap),
            "transactional.id": f"{self.writer_prefix}.{p}",
            "transaction.timeout.ms": int(TXN_TIMEOUT_S * 1000),
        }
        del config["partitioner"]  # every write names its partition
        writer = Producer(config)
        # Bumps the id's epoch: the previous holder is fenced and its open
        # transaction aborted before this worker reads the partition.
        writer.init_transactions(60.0)
        return writer

    async def release(self, partitions: set[int]) -> None:
        # Every write committed its transaction, so a writer has nothing left.
        for p in partitions:
            self.partitions.pop(p, None)
            self._writers.pop(p, None)

    async def _restore(self, partitions: set[int]) -> None:
        if not partitions:
            return
        todo = sorted(partitions)
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        restored: dict[int, dict[str, Any]] = {p: {} for p in todo}
        try:
            tps = [TopicPartition(self.changelog, p) for p in todo]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)  # the last stable offsets
            left = {tp for tp in tps if ends[tp] > 0}
            idle = 0
            while left:
                polled = await consumer.getmany(*left, timeout_ms=500, max_records=10_000)
                idle = 0 if polled else idle + 1
                for tp, recs in polled.items():
                    part = restored[tp.partition]
                    for rec in recs:
                        if rec.value is None:
                            part.pop(rec.key.decode(), None)
                        else:
                            part[rec.key.decode()] = json.loads(rec.value)
                for tp in list(left):
                    # Commit markers take offsets but are never returned; the
                    # position moves past them, so it reaches the end.
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
                if idle and idle % 20 == 0:
                    log.warning("restoring %s: nothing read for %.0fs; positions %s, "
                                "ends %s", self.changelog, idle * 0.5,
                                {tp.partition: await consumer.position(tp) for tp in left},
                                {tp.partition: ends[tp] for tp in left})
        finally:
            await consumer.stop()
        self.partitions.update(restored)
        log.info(
            "restored %s keys of %s partitions %s in %.1fs",
            sum(len(restored[p]) for p in todo), self.changelog, todo,
            time.monotonic() - started,
        )
