"""Webhooks through the real broker: gateway, worker, topic, archive, counts.

The gateway and the worker run as real processes against the session's
Kafka broker. Each test posts to its own subaccount, so tests sharing the
stack read only their own counts; the stack creates those subaccounts with
unsigned webhooks before it starts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import httpx
import pytest
from confluent_kafka import Producer

from connectors.registry import normalize
from connectors.samples import generate
from mailyard.replay import Capture, replay
from mailyard.codec import codec
from mailyard.model import EmailEvent
from mailyard.topics import DEAD_LETTERS, EVENTS, RAW_WEBHOOKS
from streams.normalize import decode_dead_letter, decode_event
from tests.e2e import Stack, read_topic, wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(kafka_bootstrap, tmp_path_factory.mktemp("stack"))
    s.add_subaccounts("e2e-basic", "e2e-filter", "e2e-dlq", "e2e-crash", "e2e-poison")
    s.start("gateway")
    s.start("worker")
    yield s
    s.stop()


def _captures(seed: int, n_events: int, subaccount: str, dup_share: float) -> list[Capture]:
    samples = generate(seed=seed, n_events=n_events)
    captures = [Capture(x.esp, x.content_type, x.body, subaccount) for x in samples]
    rng = random.Random(seed)
    # ESPs deliver webhooks more than once: re-post a share of the bodies.
    return captures + rng.sample(captures, int(len(captures) * dup_share))


def _distinct_ids(captures: list[Capture]) -> set[str]:
    return {
        e.event_id
        for c in captures
        for e in normalize(c.esp, c.body, c.content_type, subaccount=c.subaccount)
    }


def _post(stack: Stack, captures: list[Capture]) -> None:
    result = asyncio.run(replay(captures, stack.gateway, progress=False))
    assert result.failed == [] and result.accepted == len(captures)


def _archived_ids(stack: Stack, subaccount: str) -> list[str]:
    root = stack.data_dir / "archive"
    if not list(root.rglob("*.parquet")):
        return []
    rows = duckdb.sql(
        f"select event_id from read_parquet('{root}/**/*.parquet', "
        f"hive_partitioning=true) where subaccount = '{subaccount}'"
    ).fetchall()
    return [r[0] for r in rows]


def test_webhooks_come_out_normalized_archived_and_counted_once(stack: Stack, kafka_bootstrap: str) -> None:
    captures = _captures(seed=11, n_events=600, subaccount="e2e-basic", dup_share=0.3)
    expected = _distinct_ids(captures)
    _post(stack, captures)

    assert wait_until(lambda: stack.counts(subaccount="e2e-basic")["total"] == len(expected)), (
        stack.counts(subaccount="e2e-basic"), len(expected), stack.log_tail("worker"))
    on_topic = {
        decode_event(v).event_id
        for _, v in read_topic(kafka_bootstrap, EVENTS.name)
        if decode_event(v).subaccount == "e2e-basic"
    }
    assert on_topic == expected
    assert wait_until(lambda: len(_archived_ids(stack, "e2e-basic")) == len(expected), 15)
    assert set(_archived_ids(stack, "e2e-basic")) == expected
    # Duplicates stay out of the counts, however long we wait.
    time.sleep(2)
    assert stack.counts(subaccount="e2e-basic")["total"] == len(expected)


def test_counts_endpoint_filters_by_esp_type_and_minute(stack: Stack) -> None:
    captures = _captures(seed=12, n_events=200, subaccount="e2e-filter", dup_share=0)
    events = [e for c in captures for e in normalize(c.esp, c.body, c.content_type, subaccount=c.subaccount)]
    _post(stack, captures)
    assert wait_until(lambda: stack.counts(subaccount="e2e-filter")["total"] == len({e.event_id for e in events}))

    sendgrid_opens = {e.event_id for e in events if e.esp == "sendgrid" and e.type == "opened"}
    got = stack.counts(subaccount="e2e-filter", esp="sendgrid", type="opened")
    assert got["total"] == len(sendgrid_opens)
    minute_rows = stack.counts(subaccount="e2e-filter", resolution="minute")["rows"]
    assert sum(r["count"] for r in minute_rows) == stack.counts(subaccount="e2e-filter")["total"]
    assert all(r["minute"].endswith("Z") for r in minute_rows)
    bad = httpx.get(f"{stack.api}/v1/counts", params={"type": "exploded"},
                    headers=stack.admin_headers)
    assert bad.status_code == 422 and "type must be one of" in bad.text


def test_unparseable_webhook_is_dead_lettered_and_the_worker_carries_on(stack: Stack, kafka_bootstrap: str) -> None:
    broken = Capture("sendgrid", "application/json", b'[1, "two", null]', "e2e-dlq")
    good = _captures(seed=13, n_events=50, subaccount="e2e-dlq", dup_share=0)
    _post(stack, [broken, *good])

    expected = _distinct_ids(good)
    assert wait_until(lambda: stack.counts(subaccount="e2e-dlq")["total"] == len(expected))
    letters = [decode_dead_letter(v) for _, v in read_topic(kafka_bootstrap, DEAD_LETTERS.name)]
    mine = [d for d in letters if d["subaccount"] == "e2e-dlq"]
    assert len(mine) == 1
    assert mine[0]["stage"] == "normalize" and "sendgrid" in mine[0]["error"]
    assert mine[0]["source_topic"] == "mailyard.webhooks.raw" and mine[0]["source_offset"] >= 0
    assert b'[1, "two", null]' in mine[0]["value"]


def test_records_written_straight_to_kafka_cannot_stop_the_worker(
    stack: Stack, kafka_bootstrap: str
) -> None:
    """A tombstone on the raw topic, garbage and a hostile ESP name on the events topic."""
    hostile = EmailEvent("e2e-poison-hostile", "delivered", "x/../../pwned\x00",
                         "delivered", datetime.now(timezone.utc), subaccount="e2e-poison")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(RAW_WEBHOOKS.name, None, b"tombstone")
    producer.produce(EVENTS.name, b"\xc3\x01garbage", b"e2e-poison-garbage")
    producer.produce(EVENTS.name, codec("email_event").encode(hostile.to_record()),
                     hostile.event_id.encode())
    assert producer.flush(10) == 0
    good = _captures(seed=15, n_events=80, subaccount="e2e-poison", dup_share=0)
    _post(stack, good)

    expected = len(_distinct_ids(good)) + 1  # the hostile event counts, safely archived
    assert wait_until(lambda: stack.counts(subaccount="e2e-poison")["total"] == expected), (
        stack.counts(subaccount="e2e-poison"), expected, stack.log_tail("worker"))
    letters = [decode_dead_letter(v) for _, v in read_topic(kafka_bootstrap, DEAD_LETTERS.name)]
    assert any(d["stage"] == "normalize" and d["value"] == b"" for d in letters)
    assert any(d["stage"] == "ledger" and d["value"] == b"\xc3\x01garbage" for d in letters)
    archive = (stack.data_dir / "archive").resolve()
    assert not list(archive.parent.parent.glob("pwned*"))
    assert httpx.get(f"{stack.api}/readyz").json()["failing"] == []


def test_worker_killed_mid_stream_loses_nothing_and_counts_nothing_twice(stack: Stack) -> None:
    stack.kill("worker")
    captures = _captures(seed=14, n_events=15000, subaccount="e2e-crash", dup_share=0.1)
    expected = _distinct_ids(captures)
    _post(stack, captures)

    stack.start("worker")
    assert wait_until(lambda: stack.counts(subaccount="e2e-crash")["total"] > 0, 60, 0.05)
    before_kill = stack.counts(subaccount="e2e-crash")["total"]
    stack.kill("worker")
    assert before_kill < len(expected), "the worker finished before it could be killed"

    stack.start("worker")
    assert wait_until(lambda: stack.counts(subaccount="e2e-crash")["total"] >= len(expected), 120), (
        stack.counts(subaccount="e2e-crash")["total"], len(expected), stack.stats(),
        stack.log_tail("worker"))
    time.sleep(3)
    assert stack.counts(subaccount="e2e-crash")["total"] == len(expected)
    assert set(_archived_ids(stack, "e2e-crash")) == expected
