"""A confirmed-delivery producer for the worker's outputs.

Faust's own producer is fine for table changelogs, but per-message sends
from Python cost more than the normalization itself. The worker hands
whole batches to librdkafka instead and waits for the broker to confirm
every record before Faust may acknowledge (and later commit) the inputs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from confluent_kafka import KafkaError, Producer

log = logging.getLogger(__name__)

# (topic, key, value), or with a fourth item: the partition to write to.
Record = tuple[str, bytes | None, bytes] | tuple[str, bytes | None, bytes, int]


def producer_config(bootstrap: str) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        # Java's partitioner (and aiokafka's): a key maps to the same
        # partition whichever client produced it, which deduplication needs.
        "partitioner": "murmur2_random",
    }


class BatchProducer:
    """Produces batches and returns only once the broker has every record."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = Producer(producer_config(bootstrap))

    async def send_all(self, records: Sequence[Record]) -> None:
        pending = list(records)
        attempt = 0
        while pending:
            failed = await asyncio.get_running_loop().run_in_executor(
                None, self._send_blocking, pending
            )
            if failed:
                attempt += 1
                delay = min(0.2 * 2**attempt, 5.0)
                log.warning(
                    "broker did not confirm %s of %s records; retrying in %.1fs",
                    len(failed), len(pending), delay,
                )
                await asyncio.sleep(delay)
            pending = failed

    def _send_blocking(self, records: Sequence[Record]) -> list[Record]:
        failed: list[Record] = []

        def on_delivery(err: KafkaError | None, _msg: object, rec: Record) -> None:
            if err is not None:
                failed.append(rec)

        for rec in records:
            topic, key, value = rec[0], rec[1], rec[2]
            partition = rec[3] if len(rec) > 3 else -1
            while True:
                try:
                    self._producer.produce(
                        topic, value, key, partition,
                        on_delivery=lambda e, m, r=rec: on_delivery(e, m, r),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)  # local queue full: let it drain
        # Wait for every delivery report; librdkafka keeps retrying until
        # message.timeout.ms, after which the record is reported as failed.
        while (remaining := self._producer.flush(5.0)) > 0:
            log.warning("waiting for the broker to confirm %s records", remaining)
        return failed

    def close(self) -> None:
        self._producer.flush(10.0)
