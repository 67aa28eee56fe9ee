"""The stream worker: a Faust app with two agents and a REST API.

* ``normalize`` reads raw webhooks, turns each into normalized events on
  ``mailyard.events`` (keyed by event id) or into a dead letter, in
  batches, and acknowledges its inputs only after the broker confirmed the
  outputs.
* ``ledger`` reads the events, deduplicates them by event id, keeps live
  counts in one-minute buckets and in total (``streams.ledger``), and
  archives each first sighting to Parquet (``sinks.parquet_archive``).

Processing is at-least-once; the ledger's offset stamps and seen marks
make the counts exact across worker crashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import weakref
from datetime import datetime, timezone
from typing import Any

import faust
from faust.streams import _current_event  # set per event when writing a batch

from mailyard.broadcast import Broadcast
from mailyard.codec import codec
from mailyard.settings import Settings
from mailyard.tenancy import TenantDirectory, bootstrap_admin_key
from mailyard.topics import DEAD_LETTERS, EVENTS, RAW_WEBHOOKS, SUPPRESSIONS, TENANTS
from sinks.parquet_archive import Located, ParquetArchive
from streams.ledger import Ledger
from streams.normalize import decode_event, transform
from streams.producer import BatchProducer, Record
from streams.relay import Relay, suppression_entry
from streams.state import suppression_key

log = logging.getLogger(__name__)

NORMALIZE_BATCH = 500
LEDGER_BATCH = 5000


@dataclasses.dataclass
class Stats:
    raw_records: int = 0
    events_out: int = 0
    dead_letters: int = 0
    events_counted: int = 0
    duplicates: int = 0


class Worker:
    """Owns the Faust app, its agents, the ledger table and the archive."""

    def __init__(
        self,
        settings: Settings,
        *,
        app_id: str = "mailyard-worker",
        web_enabled: bool = True,
    ) -> None:
        self.settings = settings
        self.stats = Stats()
        self.archive = ParquetArchive(settings.archive_dir)
        (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            app_id,
            broker=f"kafka://{settings.bootstrap}",
            store="memory://",
            datadir=str(settings.data_dir / "faust"),
            # The REST API (streams.api) replaces Faust's aiohttp server.
            web_enabled=web_enabled,
            web_bind=settings.gateway_host,
            web_port=settings.api_port,
            topic_allow_declare=True,  # Faust creates its changelog topics
            topic_partitions=EVENTS.partitions,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=10,
            broker_heartbeat_interval=1,
            producer_acks=-1,
            stream_buffer_maxsize=20000,
        )
        self.raw_topic = self._topic(RAW_WEBHOOKS.name, partitions=RAW_WEBHOOKS.partitions)
        self.events_topic = self._topic(EVENTS.name, partitions=EVENTS.partitions)
        self.table = self.app.Table(
            "ledger", default=None, partitions=EVENTS.partitions
        )
        self._producer: BatchProducer | None = None
        if "normalize" in settings.worker_stages:
            self.app.agent(self.raw_topic, name="normalize")(self._normalize_agent)
        if "ledger" in settings.worker_stages:
            self.app.agent(self.events_topic, name="ledger")(self._ledger_agent)
        # Subaccounts and keys, read whole by every worker, for its API.
        self.tenants = TenantDirectory(
            bootstrap_admin_key(settings.admin_key, settings.data_dir)
        )
        self._tenant_reader = Broadcast(
            settings.bootstrap, TENANTS.name, TENANTS.partitions, self.tenants.on_record
        )
        self.app.task(self._start_tenants)
        self.relay: Relay | None = None
        if {"route", "dispatch"} & set(settings.worker_stages):
            self.relay = Relay(self.app, settings, self.producer, self._topics,
                               tenants=self.tenants, tenants_ready=self.tenants_ready)

    async def _start_tenants(self) -> None:
        self._tenant_reader.start()

    @property
    def tenants_ready(self) -> asyncio.Event:
        return self._tenant_reader.ready

    async def publish_tenants(self, records: list[tuple[bytes, bytes | None]]) -> None:
        await self.producer.send_all(
            [(TENANTS.name, key, value) for key, value in records]  # type: ignore[misc]
        )

    def _topics(self, *names: str) -> faust.TopicT:
        return self._topic(*names, partitions=EVENTS.partitions)

    def _topic(self, *names: str, partitions: int) -> faust.TopicT:
        return self.app.topic(
            *names,
            partitions=partitions,
            key_serializer="raw",
            value_serializer="raw",
            allow_empty=True,
        )

    @property
    def producer(self) -> BatchProducer:
        if self._producer is None:
            self._producer = BatchProducer(self.settings.bootstrap)
        return self._producer

    async def _normalize_agent(self, stream: faust.StreamT) -> None:
        async for batch in stream.take_events(NORMALIZE_BATCH, within=0.2):
            records: list[Record] = []
            for event in batch:
                msg = event.message
                out = transform(msg.value, msg.topic, msg.partition, msg.offset)
                if out.dead_letter is not None:
                    records.append((DEAD_LETTERS.name, None, out.dead_letter))
                    self.stats.dead_letters += 1
                    log.warning(
                        "dead-lettered %s[%s]@%s: %s",
                        msg.topic, msg.partition, msg.offset, out.error,
                    )
                records.extend((EVENTS.name, k, v) for k, v in out.events)
                self.stats.events_out += len(out.events)
            await self.producer.send_all(records)
            self.stats.raw_records += len(batch)

    async def _ledger_agent(self, stream: faust.StreamT) -> None:
        async for batch in stream.take_events(LEDGER_BATCH, within=1.0):
            await self._apply_ledger_batch(batch)

    async def _apply_ledger_batch(self, batch: list[Any]) -> None:
        by_partition: dict[int, list[Any]] = {}
        for event in batch:
            by_partition.setdefault(event.message.partition, []).append(event)

        located: list[Located] = []
        writes: list[tuple[Any, dict[str, Any]]] = []
        for partition, events in by_partition.items():
            pending: dict[str, Any] = {}
            ledger = Ledger(_Overlay(self.table, pending), pending.__setitem__)
            for ev in events:
                msg = ev.message
                try:
                    email = decode_event(msg.value)
                except Exception as exc:
                    await self._dead_letter_event(msg, exc)
                    continue
                if ledger.apply(email, partition, msg.offset, int(msg.timestamp * 1000)):
                    located.append((partition, msg.offset, email))
                    self.stats.events_counted += 1
                else:
                    self.stats.duplicates += 1
            writes.append((events[-1], pending))

        # Archive first: a crash before the table writes below re-delivers
        # the batch, and the ledger then counts it (once) and archives again.
        if located:
            await asyncio.get_running_loop().run_in_executor(
                None, self.archive.write_batch, located
            )
            await self._feed_suppressions(located)
        for anchor, pending in writes:
            # Table writes go to the changelog partition of the "current
            # event"; a batch mixes partitions, so point it at one of this
            # partition's events before writing that partition's keys.
            _current_event.set(weakref.ref(anchor))
            for key, value in pending.items():
                self.table[key] = value

    async def _feed_suppressions(self, located: list[Located]) -> None:
        """Hard bounces, complaints and unsubscribes join the suppression list."""
        records: list[Record] = []
        for _, _, event in located:
            entry = suppression_entry(event)
            if entry is not None:
                key = suppression_key(event.subaccount, event.recipient or "")
                records.append((SUPPRESSIONS.name, key.encode(), json.dumps(entry).encode()))
        if records:
            await self.producer.send_all(records)

    async def _dead_letter_event(self, msg: Any, exc: Exception) -> None:
        record = {
            "stage": "ledger",
            "error": f"cannot decode event record: {exc}",
            "error_type": type(exc).__name__,
            "esp": None,
            "subaccount": None,
            "source_topic": msg.topic,
            "source_partition": msg.partition,
            "source_offset": msg.offset,
            "failed_at": datetime.now(timezone.utc),
            "value": msg.value or b"",
        }
        value = codec("dead_letter").encode(record)
        log.warning("dead-lettered event record %s[%s]@%s: %s",
                    msg.topic, msg.partition, msg.offset, exc)
        await self.producer.send_all([(DEAD_LETTERS.name, None, value)])
        self.stats.dead_letters += 1


class _Overlay(dict):  # type: ignore[type-arg]
    """Reads through pending writes to the table, so a batch sees itself."""

    def __init__(self, table: Any, pending: dict[str, Any]) -> None:
        super().__init__()
        self._table = table
        self._pending = pending

    def __contains__(self, key: object) -> bool:
        return key in self._pending or key in self._table

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key in self._pending:
            return self._pending[key]
        value = self._table.get(key)
        return default if value is None else value
