"""The stream worker: a Faust app running the stages, and a REST API.

* ``normalize`` reads raw webhooks, turns each into normalized events on
  ``mailyard.events`` (keyed by event id) or into a dead letter, in
  batches, and commits its inputs only after the broker confirmed the
  outputs.
* ``ledger`` reads the events, deduplicates them by event id, keeps live
  counts in one-minute buckets and in total (``streams.ledger``) in a table
  backed by ``mailyard.ledger.changelog`` (``streams.table``), and archives
  each first sighting to Parquet (``sinks.parquet_archive``).

Each stage is a consumer-group loop of its own (``streams.stage`` says why
these are not Faust agents). Processing is at-least-once; the ledger's
offset stamps and seen marks make the counts exact across worker crashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

import faust
from aiokafka import ConsumerRecord, TopicPartition

from mailyard.broadcast import Broadcast
from mailyard.settings import Settings
from mailyard.tenancy import TenantDirectory, bootstrap_admin_key
from mailyard.topics import (
    DEAD_LETTERS, EVENTS, LEDGER_CHANGELOG, RAW_WEBHOOKS, SUPPRESSIONS, TENANTS,
)
from sinks.parquet_archive import Located, ParquetArchive
from streams.ledger import Ledger
from streams.normalize import decode_event, transform
from streams.producer import BatchProducer, Record
from streams.relay import Relay, suppression_entry
from streams.stage import ISOLATE_AFTER, Park, Records, Stage, dead_letter
from streams.state import suppression_key
from streams.table import ChangelogTable

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
    """Owns the Faust app, its stages, the ledger table and the archive."""

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
            topic_allow_declare=True,  # Faust declares its own leader topic
            producer_acks=-1,
            # Faust's own (idle) consumer group: a worker restarted after a
            # crash must not wait a minute for its dead predecessor's session.
            broker_session_timeout=10,
            broker_heartbeat_interval=1,
        )
        self._producer: BatchProducer | None = None
        self.table = ChangelogTable(
            settings.bootstrap, LEDGER_CHANGELOG.name, f"{app_id}.ledger"
        )
        self.stages: list[Stage] = []
        stages = settings.worker_stages
        if "normalize" in stages:
            self.add_stage(Stage(
                "normalize", settings.bootstrap, [RAW_WEBHOOKS.name],
                f"{app_id}.normalize", self._normalize, batch_size=NORMALIZE_BATCH,
                park=self.parker("normalize"),
            ))
        if "ledger" in stages:
            self.add_stage(Stage(
                "ledger", settings.bootstrap, [EVENTS.name], f"{app_id}.ledger",
                self._apply_ledger_batch, batch_size=LEDGER_BATCH, poll_ms=500,
                on_assigned=self._ledger_assigned, on_revoked=self._ledger_revoked,
                park=self.parker("ledger"),
            ))
        # Subaccounts and keys, read whole by every worker, for its API.
        self.tenants = TenantDirectory(
            bootstrap_admin_key(settings.admin_key, settings.data_dir)
        )
        self._tenant_reader = Broadcast(
            settings.bootstrap, TENANTS.name, TENANTS.partitions, self.tenants.on_record
        )
        self.app.task(self._start_tenants)
        self.relay: Relay | None = None
        if {"route", "dispatch"} & set(stages):
            self.relay = Relay(self, settings, self.producer,
                               tenants=self.tenants, tenants_ready=self.tenants_ready)
        self.app.task(self._start_stages)
        self.app.on_before_shutdown.connect(self._stop_stages)

    def add_stage(self, stage: Stage) -> None:
        self.stages.append(stage)

    def parker(self, stage: str) -> Park:
        """Parks a record ``stage`` keeps failing on as a dead letter, with the error."""

        async def park(msg: ConsumerRecord, exc: Exception) -> None:
            await self.producer.send_all(
                [dead_letter(stage, msg, exc, "record", error=(
                    f"failed in {ISOLATE_AFTER} batches and again alone: "
                    f"{type(exc).__name__}: {exc}"))]
            )
            self.stats.dead_letters += 1

        return park

    @property
    def app_id(self) -> str:
        return str(self.app.conf.id)

    async def _start_stages(self) -> None:
        for stage in self.stages:
            stage.start()

    async def _stop_stages(self, *_: Any, **__: Any) -> None:
        # Leave the groups cleanly, so a restarted worker gets the
        # partitions at once instead of after the session timeout.
        await asyncio.gather(*(stage.stop() for stage in self.stages))

    @property
    def stages_ready(self) -> bool:
        return all(stage.ready for stage in self.stages)

    async def _start_tenants(self) -> None:
        self._tenant_reader.start()

    @property
    def tenants_ready(self) -> asyncio.Event:
        return self._tenant_reader.ready

    async def publish_tenants(self, records: list[tuple[bytes, bytes | None]]) -> None:
        await self.producer.send_all(
            [(TENANTS.name, key, value) for key, value in records]  # type: ignore[misc]
        )

    @property
    def producer(self) -> BatchProducer:
        if self._producer is None:
            self._producer = BatchProducer(self.settings.bootstrap)
        return self._producer

    async def _normalize(self, batch: Records) -> None:
        records: list[Record] = []
        for msg in batch:
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

    async def _ledger_assigned(self, tps: set[TopicPartition]) -> None:
        await self.table.take({tp.partition for tp in tps})

    async def _ledger_revoked(self, tps: set[TopicPartition]) -> None:
        await self.table.release({tp.partition for tp in tps})

    async def _apply_ledger_batch(self, batch: Records) -> None:
        by_partition: dict[int, list[Any]] = {}
        for msg in batch:
            by_partition.setdefault(msg.partition, []).append(msg)

        located: list[Located] = []
        writes: dict[int, dict[str, Any]] = {}
        for partition, msgs in by_partition.items():
            pending: dict[str, Any] = {}
            ledger = Ledger(_Overlay(self.table.partition(partition), pending),
                            pending.__setitem__)
            for msg in msgs:
                try:
                    email = decode_event(msg.value)
                except Exception as exc:
                    await self._dead_letter_event(msg, exc)
                    continue
                if ledger.apply(email, partition, msg.offset, msg.timestamp):
                    located.append((partition, msg.offset, email))
                    self.stats.events_counted += 1
                else:
                    self.stats.duplicates += 1
            writes[partition] = pending

        # Archive first: a crash before the table writes below re-delivers
        # the batch, and the ledger then counts it (once) and archives again.
        if located:
            await asyncio.get_running_loop().run_in_executor(
                None, self.archive.write_batch, located
            )
            await self._feed_suppressions(located)
        await self.table.write(writes)

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
        await self.producer.send_all([dead_letter("ledger", msg, exc, "event record")])
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
