"""The worker's stage loop against the real broker: nothing skipped, ever.

A stage commits a batch only after its handler returned; these tests
check the cases where a loop could skip records instead: state that takes
a while to restore when partitions are assigned, a handler that fails, a
second member joining and the first leaving mid-stream, and the
changelog-backed table coming back whole.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CTopicPartition

from streams.stage import PartitionLost, Records, Stage
from streams.table import ChangelogTable
from tests.conftest import TopicFactory

pytestmark = pytest.mark.kafka

PARTITIONS = 4


def _produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(start, start + n):
        producer.produce(topic, f"v{i}".encode(), f"k{i}".encode())
    assert producer.flush(30) == 0


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = [CTopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "stage-ends"})
    try:
        return {p: consumer.get_watermark_offsets(CTopicPartition(topic, p), timeout=10)[1]
                for p in range(PARTITIONS)}
    finally:
        consumer.close()


async def _until(predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


class Seen:
    """Collects (partition, offset) of every record a handler was given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.offsets: set[tuple[int, int]] = set()
        self.deliveries = 0
        self.delay = delay

    async def __call__(self, batch: Records) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.offsets.update((r.partition, r.offset) for r in batch)
        self.deliveries += len(batch)


def _all_offsets(ends: dict[int, int]) -> set[tuple[int, int]]:
    return {(p, o) for p, end in ends.items() for o in range(end)}


async def test_records_fetched_while_state_restores_are_handled_not_skipped(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=PARTITIONS)
    _produce(kafka_bootstrap, topic, 3000)
    seen = Seen()

    async def slow_restore(_tps: set[TopicPartition]) -> None:
        await asyncio.sleep(1.5)  # the consumer fetches meanwhile

    group = f"stage-{uuid.uuid4().hex[:6]}"
    stage = Stage("t", kafka_bootstrap, [topic], group, seen, batch_size=200,
                  on_assigned=slow_restore)
    stage.start()
    try:
        ends = _ends(kafka_bootstrap, topic)
        assert await _until(lambda: seen.offsets == _all_offsets(ends))
        assert await _until(lambda: _committed(kafka_bootstrap, group, topic) == ends)
    finally:
        await stage.stop()


async def test_a_failing_handler_gets_the_same_batch_again(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=PARTITIONS)
    _produce(kafka_bootstrap, topic, 400)
    seen = Seen()
    failures = []

    async def flaky(batch: Records) -> None:
        if not failures:
            failures.append(len(batch))
            raise RuntimeError("the broker went away")
        await seen(batch)

    group = f"stage-{uuid.uuid4().hex[:6]}"
    stage = Stage("t", kafka_bootstrap, [topic], group, flaky, batch_size=100)
    stage.start()
    try:
        ends = _ends(kafka_bootstrap, topic)
        assert await _until(lambda: seen.offsets == _all_offsets(ends))
        assert failures and stage.failures == 1
    finally:
        await stage.stop()


async def test_members_joining_and_leaving_mid_stream_lose_nothing(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=PARTITIONS)
    group = f"stage-{uuid.uuid4().hex[:6]}"
    first, second = Seen(delay=0.02), Seen(delay=0.02)
    a = Stage("a", kafka_bootstrap, [topic], group, first, batch_size=50)
    b = Stage("b", kafka_bootstrap, [topic], group, second, batch_size=50)
    a.start()
    try:
        _produce(kafka_bootstrap, topic, 2000)
        assert await _until(lambda: len(first.offsets) > 0)
        b.start()
        _produce(kafka_bootstrap, topic, 2000, start=2000)
        assert await _until(lambda: len(second.offsets) > 0)
        await a.stop()  # leaves the group; b takes every partition
        _produce(kafka_bootstrap, topic, 2000, start=4000)
        ends = _ends(kafka_bootstrap, topic)
        assert await _until(lambda: first.offsets | second.offsets == _all_offsets(ends), 90)
        assert await _until(lambda: _committed(kafka_bootstrap, group, topic) == ends)
        # At-least-once: a handover may repeat a batch, but only a few.
        repeated = first.deliveries + second.deliveries - sum(ends.values())
        assert 0 <= repeated <= 2 * 50 * PARTITIONS
    finally:
        await a.stop()
        await b.stop()


async def test_the_changelog_table_comes_back_whole_and_fences_its_old_writer(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    changelog = fresh_topics(partitions=PARTITIONS, compacted=True)
    prefix = f"test-ledger-{uuid.uuid4().hex[:6]}"
    table = ChangelogTable(kafka_bootstrap, changelog, prefix)
    await table.take({0, 1, 2, 3})
    assert len(table) == 0
    await table.write({p: {f"c|{p}|{i}": [i, i * 10] for i in range(500)}
                       for p in range(PARTITIONS)})
    await table.write({1: {"c|1|7": [70, 700], "s|event": 12}})

    # Another worker takes partitions 1 and 3, as after a rebalance.
    again = ChangelogTable(kafka_bootstrap, changelog, prefix)
    await again.take({1, 3})
    assert sorted(again.partitions) == [1, 3]
    assert again.partition(1)["c|1|7"] == [70, 700]
    assert again.partition(1)["s|event"] == 12
    assert again.partition(3) == table.partition(3)

    # The first one wakes up and writes a stale value: refused, not written.
    with pytest.raises(PartitionLost):
        await table.write({1: {"c|1|7": [1, 10]}})
    await table.write({0: {"c|0|1": [2, 20]}})  # partition 0 is still its own

    third = ChangelogTable(kafka_bootstrap, changelog, prefix)
    await third.take({0, 1})
    assert third.partition(1)["c|1|7"] == [70, 700]
    assert third.partition(0)["c|0|1"] == [2, 20]
    await asyncio.gather(table.release({0, 2}), again.release({3}), third.release({0, 1}))
    assert again.partitions == {} or sorted(again.partitions) == [1]


async def test_stopping_lets_the_batch_in_flight_finish_and_commit(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=PARTITIONS)
    _produce(kafka_bootstrap, topic, 100)
    started, finished = asyncio.Event(), []

    async def slow(batch: Records) -> None:
        started.set()
        await asyncio.sleep(1.0)
        finished.extend((r.partition, r.offset) for r in batch)

    group = f"stage-{uuid.uuid4().hex[:6]}"
    stage = Stage("t", kafka_bootstrap, [topic], group, slow, batch_size=1000)
    stage.start()
    await asyncio.wait_for(started.wait(), 60)
    await stage.stop()
    assert finished, "stop() cancelled the batch in flight"
    committed = _committed(kafka_bootstrap, group, topic)
    for p in range(PARTITIONS):
        handled = [o for q, o in finished if q == p]
        if handled:
            assert committed[p] == max(handled) + 1


async def test_a_record_that_always_fails_is_parked_and_the_rest_go_on(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=PARTITIONS)
    _produce(kafka_bootstrap, topic, 200)
    seen = Seen()
    parked: list[tuple[int, int, str]] = []

    async def picky(batch: Records) -> None:
        if any(r.value == b"v77" for r in batch):
            raise ValueError("v77 cannot be handled")
        await seen(batch)

    async def park(rec: ConsumerRecord, exc: Exception) -> None:
        parked.append((rec.partition, rec.offset, str(exc)))

    group = f"stage-{uuid.uuid4().hex[:6]}"
    stage = Stage("t", kafka_bootstrap, [topic], group, picky, batch_size=1000, park=park)
    stage.start()
    try:
        ends = _ends(kafka_bootstrap, topic)
        assert await _until(lambda: len(seen.offsets) == 199, 90)
        assert len(parked) == 1 and parked[0][2] == "v77 cannot be handled"
        assert seen.offsets | {parked[0][:2]} == _all_offsets(ends)
        assert await _until(lambda: _committed(kafka_bootstrap, group, topic) == ends)
        assert not stage.failing and stage.parked == 1
    finally:
        await stage.stop()


async def test_a_partition_lost_while_isolating_drops_the_batch_and_parks_nothing(
    kafka_bootstrap: str, fresh_topics: TopicFactory,
) -> None:
    topic = fresh_topics(partitions=1)
    _produce(kafka_bootstrap, topic, 20)
    seen = Seen()
    parked: list[int] = []
    lost: list[int] = []

    async def handler(batch: Records) -> None:
        if len(batch) > 1:
            raise ValueError("only one at a time")  # drives the stage to isolate
        if not lost:
            lost.append(batch[0].offset)
            raise PartitionLost("another member took it")
        await seen(batch)

    async def park(rec: ConsumerRecord, _exc: Exception) -> None:
        parked.append(rec.offset)

    group = f"stage-{uuid.uuid4().hex[:6]}"
    stage = Stage("t", kafka_bootstrap, [topic], group, handler, batch_size=100, park=park)
    stage.start()
    try:
        assert await _until(lambda: len(seen.offsets) == 20, 120)
        assert lost and parked == []
    finally:
        await stage.stop()
