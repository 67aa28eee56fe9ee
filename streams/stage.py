"""A worker stage: a consumer-group loop that reads in bulk and commits late.

Each stage of the worker (normalize, ledger, route, dispatch) is one
:class:`Stage`. It polls up to ``batch_size`` records at a time, hands the
whole batch to its handler, and commits the batch's offsets only after the
handler returned, which it does once the broker confirmed every output.
A crash anywhere re-delivers the uncommitted batch: at-least-once, with
idempotent outputs (event ids, the ledger's offset stamps) downstream.

Why not Faust agents: faust-streaming wraps, tracks and acknowledges each
record on its own, which cost as much CPU as normalizing it, and its
acknowledgement bookkeeping could stall commits for good after a worker
was killed mid-batch. Faust still runs the worker process (its services,
timers, signals and web server); the stages run as tasks of its app.

Rebalances are safe: the loop holds a lock from the moment a batch is
polled until its offsets are committed, and the revocation callback takes
that lock, so a partition is never handed over with a batch in flight.
Handlers that keep per-partition state get ``on_assigned`` (awaited before
the first record of those partitions is read) and ``on_revoked``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from mailyard.topics import DEAD_LETTERS
from streams.normalize import encode_dead_letter

log = logging.getLogger(__name__)

Records = list[ConsumerRecord]
Handler = Callable[[Records], Awaitable[None]]
PROGRESS_EVERY_S = 10.0
# A batch that fails this many times in a row is handled one record at a
# time, and the records that still fail are parked as dead letters.
ISOLATE_AFTER = 3
Park = Callable[[ConsumerRecord, Exception], Awaitable[None]]
PartitionsHook = Callable[[set[TopicPartition]], Awaitable[None]]


class PartitionLost(Exception):
    """A handler learned that another member owns one of its partitions now.

    The stage drops the batch (uncommitted, so the new owner reads it) and
    rejoins its group.
    """


class Stage:
    """One consumer group over ``topics``; ``handler`` gets each polled batch."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        topics: Sequence[str],
        group_id: str,
        handler: Handler,
        *,
        batch_size: int = 500,
        poll_ms: int = 200,
        on_assigned: PartitionsHook | None = None,
        on_revoked: PartitionsHook | None = None,
        before_first_poll: Callable[[], Awaitable[None]] | None = None,
        park: Park | None = None,
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.group_id = group_id
        self.handler = handler
        self.batch_size = batch_size
        self.poll_ms = poll_ms
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.before_first_poll = before_first_poll
        self.park = park
        self.consecutive_failures = 0
        self.parked = 0
        self.assignment: set[TopicPartition] = set()
        self.generation = 0  # bumped by every assignment
        self.rebalancing = False
        self.records_in = 0
        self.failures = 0
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._done: dict[TopicPartition, int] = {}  # handled, not yet committed
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._logged_at = 0.0
        self._logged_records = 0

    @property
    def ready(self) -> bool:
        return self.generation > 0 and not self.rebalancing and not self.failing

    @property
    def failing(self) -> bool:
        """The last batch failed and has not been handled since."""
        return self.consecutive_failures > 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"stage-{self.name}"
        )

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let the batch in flight finish and commit, then leave the group."""
        if self._task is None:
            return
        self._stopping = True  # no new batch starts from here on
        try:
            await asyncio.wait_for(self._lock.acquire(), grace_s)
        except asyncio.TimeoutError:
            log.warning("stage %s: batch still running after %.0fs; stopping anyway "
                        "(it is read again on restart)", self.name, grace_s)
        else:
            self._lock.release()
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):  # noqa: S110 - logged by _run
            pass
        self._task = None

    async def _run(self) -> None:
        if self.before_first_poll is not None:
            await self.before_first_poll()
        while not self._stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except PartitionLost:
                continue  # rejoin at once; the state is read back on assignment
            except Exception:
                self.failures += 1
                log.exception("stage %s failed; starting over in 2s", self.name)
                await asyncio.sleep(2)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.batch_size,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
            # A handler waits for the broker to confirm its outputs; give a
            # slow batch (an ESP timing out, say) room before the group
            # decides this member is gone.
            max_poll_interval_ms=300_000,
        )
        consumer.subscribe(self.topics, listener=_Listener(self))
        self._consumer = consumer
        await consumer.start()
        try:
            while True:
                generation = self.generation
                polled = await consumer.getmany(
                    timeout_ms=self.poll_ms, max_records=self.batch_size
                )
                if not polled:
                    continue
                async with self._lock:
                    if self._stopping:
                        return  # not handled, not committed: read again later
                    await self._handle(consumer, polled, generation)
        finally:
            self._consumer = None
            # Leaving without a rebalance callback: whatever this stage held
            # is someone else's (or, on rejoining, read back from scratch).
            held, self.assignment = self.assignment, set()
            self._done.clear()
            if held and self.on_revoked is not None:
                await self.on_revoked(held)
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001 - stopping after a failure
                log.debug("stage %s: consumer stop failed", self.name, exc_info=True)

    async def _handle(
        self, consumer: AIOKafkaConsumer,
        polled: dict[TopicPartition, Records], generation: int,
    ) -> None:
        live: dict[TopicPartition, Records] = {}
        for tp, recs in polled.items():
            if generation == self.generation and tp in self.assignment:
                live[tp] = recs
            elif tp in consumer.assignment():
                # Polled across a rebalance (fetched before this stage had
                # restored its state, say): read these again, never skip them.
                consumer.seek(tp, recs[0].offset)
        if not live:
            return
        batch = [rec for recs in live.values() for rec in recs]
        if self.consecutive_failures >= ISOLATE_AFTER and self.park is not None:
            await self._isolate(batch)
        else:
            try:
                await self.handler(batch)
            except PartitionLost:
                log.warning("stage %s lost a partition mid-batch; rejoining", self.name)
                raise
            except Exception:
                self.consecutive_failures += 1
                self.failures += 1
                delay = min(2.0 ** self.consecutive_failures, 10.0)
                log.exception("stage %s: a batch of %s records failed (%s in a row); "
                              "reading it again in %.0fs", self.name, len(batch),
                              self.consecutive_failures, delay)
                for tp, recs in live.items():
                    consumer.seek(tp, recs[0].offset)
                await asyncio.sleep(delay)
                return
        self.consecutive_failures = 0
        self.records_in += len(batch)
        self._log_progress()
        for tp, recs in live.items():
            self._done[tp] = recs[-1].offset + 1
        await self._commit(consumer, set(live))

    async def _isolate(self, batch: Records) -> None:
        """One record at a time: park the ones that fail, handle the rest."""
        log.warning("stage %s: a batch of %s failed %s times; handling its records "
                    "one at a time", self.name, len(batch), self.consecutive_failures)
        assert self.park is not None
        for rec in batch:
            try:
                await self.handler([rec])
            except PartitionLost:
                raise  # not the record's fault: drop the batch and rejoin
            except Exception as exc:
                await self.park(rec, exc)
                self.parked += 1

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self._logged_at >= PROGRESS_EVERY_S:
            done = self.records_in - self._logged_records
            if self._logged_at:
                log.info("stage %s: %s records in %.0fs (%.0f/s), %s in all",
                         self.name, done, now - self._logged_at,
                         done / (now - self._logged_at), self.records_in)
            self._logged_at, self._logged_records = now, self.records_in

    async def _commit(self, consumer: AIOKafkaConsumer, tps: set[TopicPartition]) -> None:
        offsets = {tp: OffsetAndMetadata(self._done[tp], "") for tp in tps if tp in self._done}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The handled offsets stay in _done; the revocation callback or
            # the next batch commits them. Until then a crash re-delivers.
            log.warning("stage %s: commit deferred (%s)", self.name, exc)
            return
        for tp in offsets:
            if self._done.get(tp) == offsets[tp].offset:
                del self._done[tp]

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalancing = True
        async with self._lock:  # the batch in flight finishes and commits first
            consumer = self._consumer
            if consumer is not None and revoked:
                await self._commit(consumer, revoked)
            for tp in revoked:
                self._done.pop(tp, None)
            self.assignment -= revoked
            if self.on_revoked is not None and revoked:
                await self.on_revoked(revoked)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            # The consumer may fetch before this returns; the lock keeps
            # those records waiting until the stage's state is back.
            async with self._lock:
                if self.on_assigned is not None and assigned:
                    await self.on_assigned(assigned)
                self.assignment |= assigned
                self.generation += 1
            log.info("stage %s holds %s", self.name,
                     ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(self.assignment))
                     or "no partitions")
        finally:
            self.rebalancing = False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.stage._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.stage._assigned(set(assigned))


def dead_letter(
    stage: str, msg: ConsumerRecord, exc: Exception, what: str, *, error: str | None = None
) -> tuple[str, None, bytes]:
    """A dead-letter record for ``msg``, which ``stage`` could not read as ``what``."""
    log.warning("%s dead-lettered %s[%s]@%s: %s", stage, msg.topic, msg.partition,
                msg.offset, exc)
    value = encode_dead_letter(stage, error or f"cannot decode {what}: {exc}", exc,
                               msg.topic, msg.partition, msg.offset, msg.value)
    return (DEAD_LETTERS.name, None, value)
