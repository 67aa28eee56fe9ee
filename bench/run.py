"""Mailyard benchmarks: one ``name: value`` line per figure.

Run ``python bench/run.py`` (``--quick`` for a smaller run). Each figure
comes with the baseline it is compared to, measured in the same process on
the same inputs:

* normalization in process, against a bare ``json.loads`` of the bodies;
* the worker's normalize stage through Kafka, against a bare
  confluent-kafka consume-transform-produce loop over the same records;
* the worker's route stage through Kafka, against a bare loop that routes
  the same submitted messages with the same rules;
* the gateway accepting SendGrid batches of 100 events;
* the Rule Engine's decisions, against the same rules as plain Python.

Both bare loops read the same records from the same partitions, produce
with the worker's producer settings (acks=all, idempotence, lz4) and, like
the worker, commit a batch's inputs only once the broker confirmed every
record built from them.

It starts its own Kafka broker on free loopback ports, in a temporary
folder, and stops it at the end. Its processes share one admin key
(``MAILYARD_ADMIN_KEY``, or one made in that folder), and its webhook
bodies are unsigned, so the installation's entry points are set to
``{"none": true}`` there: the gateway figure does not include checking an
ESP's signature.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from tqdm import tqdm  # noqa: E402

from connectors.registry import esp_names, normalize  # noqa: E402
from connectors.samples import generate  # noqa: E402
from mailyard.admin import apply_catalog, create_topics  # noqa: E402
from mailyard.codec import codec  # noqa: E402
from mailyard.kafka_local import LocalKafka, free_port_pair  # noqa: E402
from mailyard.tenancy import bootstrap_admin_key, installation_record  # noqa: E402
from mailyard.tenant_ops import publish_sync  # noqa: E402
from mailyard.topics import (  # noqa: E402
    DEAD_LETTERS, DECISIONS, DISPATCH, EVENTS, RAW_WEBHOOKS, SUBMITTED, TopicSpec,
)
from streams.normalize import transform  # noqa: E402
from streams.producer import producer_config  # noqa: E402
from tests.e2e import free_port  # noqa: E402

BARE_TOPIC = TopicSpec("bench.bare.events", EVENTS.partitions)


def emit(name: str, value: float, fmt: str = "{:.0f}") -> None:
    print(f"{name}: {fmt.format(value)}", flush=True)


def _bare_parse(sample: object) -> object:
    body, ctype = sample.body, sample.content_type  # type: ignore[attr-defined]
    if "json" in ctype or "text/plain" in ctype:
        return json.loads(body)
    return parse_qsl(body.decode())


def bench_normalize(samples: list) -> int:  # type: ignore[type-arg]
    n_events = sum(len(normalize(s.esp, s.body, s.content_type)) for s in samples)
    best, base = 0.0, 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for s in samples:
            normalize(s.esp, s.body, s.content_type)
        best = max(best, n_events / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for s in samples:
            _bare_parse(s)
        base = max(base, n_events / (time.perf_counter() - t0))
    emit("normalize_events_per_s", best)
    emit("bare_json_parse_events_per_s", base)
    emit("normalize_ratio_vs_bare_parse", best / base, "{:.3f}")
    return n_events


def produce_raw(bootstrap: str, samples: list) -> None:  # type: ignore[type-arg]
    envelope = codec("raw_webhook")
    producer = Producer(producer_config(bootstrap))
    now = datetime.now(timezone.utc)
    for i, s in enumerate(tqdm(samples, desc="raw records", unit="rec", leave=False)):
        value = envelope.encode({
            "request_id": f"bench-{i}", "esp": s.esp, "subaccount": None,
            "received_at": now, "content_type": s.content_type, "headers": {},
            "body": s.body,
        })
        while True:
            try:
                producer.produce(RAW_WEBHOOKS.name, value, f"bench-{i}".encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


class _Confirmed:
    """One batch's delivery reports and the input offsets it may commit.

    The bare loops keep the worker's guarantee: a batch's inputs are
    committed only once the broker confirmed every record built from them.
    One callable per batch, as the worker's producer uses.
    """

    def __init__(self, msgs: list) -> None:  # type: ignore[type-arg]
        ends: dict[tuple[str, int], int] = {}
        for msg in msgs:
            ends[(msg.topic(), msg.partition())] = msg.offset() + 1
        self.offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        self.remaining = 0
        self.failed = 0

    def __call__(self, err: object, _msg: object) -> None:
        self.remaining -= 1
        if err is not None:
            self.failed += 1


def _produce(producer: Producer, topic: str, value: bytes, key: bytes | None,
             batch: _Confirmed) -> None:
    batch.remaining += 1
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=batch)
            return
        except BufferError:
            producer.poll(0.05)


def _commit_confirmed(consumer: Consumer, pending: list[_Confirmed]) -> None:
    while pending and pending[0].remaining == 0:
        batch = pending.pop(0)
        if batch.failed:
            raise SystemExit(f"the broker refused {batch.failed} records")
        if batch.offsets:
            consumer.commit(offsets=batch.offsets, asynchronous=True)


def _bare_consumer(bootstrap: str, group: str, topic: TopicSpec) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False, "fetch.min.bytes": 1})
    consumer.assign([TopicPartition(topic.name, p, 0) for p in range(topic.partitions)])
    return consumer


def bench_bare_loop(bootstrap: str, n_raw: int) -> float:
    consumer = _bare_consumer(bootstrap, "bench-bare", RAW_WEBHOOKS)
    producer = Producer(producer_config(bootstrap))
    consumed = produced = 0
    pending: list[_Confirmed] = []
    t0 = time.perf_counter()
    while consumed < n_raw:
        msgs = consumer.consume(500, timeout=1.0)
        batch = _Confirmed(msgs)
        for msg in msgs:
            consumed += 1
            out = transform(msg.value(), msg.topic(), msg.partition(), msg.offset())
            if out.dead_letter is not None:
                _produce(producer, DEAD_LETTERS.name, out.dead_letter, None, batch)
            for key, value in out.events:
                _produce(producer, BARE_TOPIC.name, value, key, batch)
            produced += len(out.events)
        pending.append(batch)
        producer.poll(0)
        _commit_confirmed(consumer, pending)
    producer.flush(60)
    _commit_confirmed(consumer, pending)
    elapsed = time.perf_counter() - t0
    consumer.close()
    return produced / elapsed


def _events_on_topic(bootstrap: str, consumer: Consumer) -> int:
    total = 0
    for p in range(EVENTS.partitions):
        _, high = consumer.get_watermark_offsets(TopicPartition(EVENTS.name, p), timeout=5)
        total += high
    return total


def bench_worker(bootstrap: str, data_dir: Path, n_events: int) -> tuple[float, int]:
    api_port = free_port()
    env = {**os.environ, "MAILYARD_KAFKA_BOOTSTRAP": bootstrap,
           "MAILYARD_DATA_DIR": str(data_dir), "MAILYARD_API_PORT": str(api_port),
           "MAILYARD_WORKER_STAGES": "normalize"}
    log = (data_dir / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mailyard.cli", "worker"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch"})
    try:
        _wait_ready(proc, f"http://127.0.0.1:{api_port}/readyz", data_dir / "worker.log")
        t0 = time.perf_counter()
        while _events_on_topic(bootstrap, watcher) < n_events:
            time.sleep(0.05)
        rate = n_events / (time.perf_counter() - t0)
        rss = _peak_rss_kib(proc.pid)
    finally:
        watcher.close()
        proc.terminate()
        proc.wait(30)
    return rate, rss


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} process exited; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} not ready in 120 s; see {log}")


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _sendgrid_batch(i: int) -> bytes:
    events = [
        {"email": f"user{i}-{j}@gmail.com", "timestamp": 1764720000 + j,
         "event": "delivered", "sg_event_id": f"ev-{i}-{j}",
         "sg_message_id": f"msg{i}.{j}.filter", "response": "250 2.0.0 OK"}
        for j in range(100)
    ]
    # SendGrid's own layout: a CRLF after each event and after the bracket.
    inner = b",\r\n".join(json.dumps(e).encode() for e in events)
    return b"[" + inner + b"\r\n]\r\n"


def bench_gateway(bootstrap: str, data_dir: Path, requests: int) -> float:
    port = free_port()
    env = {**os.environ, "MAILYARD_KAFKA_BOOTSTRAP": bootstrap,
           "MAILYARD_DATA_DIR": str(data_dir), "MAILYARD_GATEWAY_PORT": str(port),
           "MAILYARD_SMTP_PORT": str(free_port())}
    log = (data_dir / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mailyard.cli", "gateway"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    bodies = [_sendgrid_batch(i) for i in range(requests)]
    url = f"http://127.0.0.1:{port}/webhooks/sendgrid"
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/readyz", data_dir / "gateway.log")
        elapsed = asyncio.run(_post_all(url, bodies))
    finally:
        proc.terminate()
        proc.wait(30)
    return requests * 100 / elapsed


async def _post_all(url: str, bodies: list[bytes], concurrency: int = 32) -> float:
    queue = list(reversed(bodies))
    headers = {"content-type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            reply = await client.post(url, content=queue.pop(), headers=headers)
            if reply.status_code != 200:
                raise SystemExit(f"gateway answered {reply.status_code}: {reply.text}")

    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - t0


def _submitted(n: int) -> list[bytes]:
    enc = codec("submitted_message")
    streams = ["marketing", "transactional", "newsletter", "notification"]
    domains = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "corp.example"]
    return [enc.encode({
        "message_id": f"m{i:08d}", "subaccount": f"sub{i % 50}",
        "stream": streams[i % 4], "from_addr": "news@sender.example",
        "to": [f"user{i}@{domains[i % 5]}"], "cc": [], "bcc": [],
        "subject": "Hello", "headers": {}, "tags": ["vip"] if i % 20 == 0 else [],
        "metadata": {}, "size_bytes": 2000, "text": "Hello", "html": None,
        "raw_mime": None, "submitted_at": None, "source": "api",
    }) for i in range(n)]


def _route_engine() -> object:
    from streams.router import Router
    from streams.rules import Engine, StaticHealth, load_rules
    from streams.state import SuppressionList

    rules = load_rules(ROOT / "examples" / "rules.yaml")
    return Router(Engine(rules, StaticHealth({})), SuppressionList())


def bench_route_bare(bootstrap: str, n: int) -> float:
    """Submitted messages consumed, routed and produced by a bare confluent loop."""
    router = _route_engine()
    dec = codec("submitted_message")
    consumer = _bare_consumer(bootstrap, "bench-route", SUBMITTED)
    producer = Producer(producer_config(bootstrap))
    done = 0
    pending: list[_Confirmed] = []
    t0 = time.perf_counter()
    while done < n:
        msgs = consumer.consume(500, timeout=1.0)
        batch = _Confirmed(msgs)
        for msg in msgs:
            routed = router.route(dec.decode(msg.value()))  # type: ignore[attr-defined]
            for topic, key, value in routed.records:
                _produce(producer, f"bench.{topic}", value, key, batch)
            done += 1
        pending.append(batch)
        producer.poll(0)
        _commit_confirmed(consumer, pending)
    producer.flush(60)
    _commit_confirmed(consumer, pending)
    consumer.close()
    return n / (time.perf_counter() - t0)


def bench_route_worker(bootstrap: str, data_dir: Path, n: int) -> float:
    api_port = free_port()
    env = {**os.environ, "MAILYARD_KAFKA_BOOTSTRAP": bootstrap,
           "MAILYARD_DATA_DIR": str(data_dir / "route"), "MAILYARD_API_PORT": str(api_port),
           "MAILYARD_WORKER_STAGES": "route",
           "MAILYARD_RULES": str(ROOT / "examples" / "rules.yaml")}
    log = (data_dir / "route-worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "mailyard.cli", "worker"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watch"})
    try:
        _wait_ready(proc, f"http://127.0.0.1:{api_port}/readyz", data_dir / "route-worker.log")
        t0 = time.perf_counter()
        while _high_sum(watcher, DECISIONS.name, DECISIONS.partitions) < n:
            time.sleep(0.05)
        return n / (time.perf_counter() - t0)
    finally:
        watcher.close()
        proc.terminate()
        proc.wait(30)


def _high_sum(consumer: Consumer, topic: str, partitions: int) -> int:
    return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
               for p in range(partitions))


def produce_values(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer(producer_config(bootstrap))
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(topic, value, str(i).encode())
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def accept_unsigned_webhooks(bootstrap: str) -> None:
    unsigned = {esp: {"none": True} for esp in esp_names()}
    publish_sync(bootstrap, [installation_record({"webhook_auth": unsigned})])
    print("# webhook signature checks are off for the bench's unsigned bodies",
          file=sys.stderr)


def normalize_figures(bootstrap: str, data_dir: Path, samples: list,  # type: ignore[type-arg]
                      n_events: int) -> None:
    create_topics(bootstrap, [BARE_TOPIC])
    produce_raw(bootstrap, samples)
    bare = bench_bare_loop(bootstrap, len(samples))
    worker, rss = bench_worker(bootstrap, data_dir, n_events)
    emit("worker_normalize_events_per_s", worker)
    emit("bare_confluent_loop_events_per_s", bare)
    emit("worker_ratio_vs_bare_loop", worker / bare, "{:.3f}")
    emit("worker_peak_rss_mib", rss / 1024, "{:.1f}")


def route_figures(bootstrap: str, data_dir: Path, n_msgs: int) -> None:
    produce_values(bootstrap, SUBMITTED.name, _submitted(n_msgs))
    create_topics(bootstrap, [
        TopicSpec(f"bench.{t.name}", t.partitions) for t in (DECISIONS, DISPATCH, EVENTS)])
    bare_route = bench_route_bare(bootstrap, n_msgs)
    routed = bench_route_worker(bootstrap, data_dir, n_msgs)
    emit("worker_routed_messages_per_s", routed)
    emit("bare_confluent_route_loop_messages_per_s", bare_route)
    emit("worker_route_ratio_vs_bare_loop", routed / bare_route, "{:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    args = parser.parse_args()
    n = 40_000 if args.quick else 200_000

    print(f"# generating sample traffic ({n} events)", file=sys.stderr)
    samples = generate(seed=1, n_events=n)
    n_events = bench_normalize(samples)

    with tempfile.TemporaryDirectory(prefix="mailyard-bench-") as tmp:
        data_dir = Path(tmp)
        # Every process started below inherits the key, whatever its data dir.
        os.environ["MAILYARD_ADMIN_KEY"] = bootstrap_admin_key(
            os.environ.get("MAILYARD_ADMIN_KEY"), data_dir)
        port, cport = free_port_pair(39092)
        with LocalKafka(data_dir / "kafka", port, cport) as broker:
            apply_catalog(broker.bootstrap)
            accept_unsigned_webhooks(broker.bootstrap)
            # Routing first: a route worker reads the last minute of
            # mailyard.events for destination health, and the normalize
            # figures below fill it; the bare route loop reads none of it.
            route_figures(broker.bootstrap, data_dir, 10_000 if args.quick else 50_000)
            normalize_figures(broker.bootstrap, data_dir, samples, n_events)
            gateway = bench_gateway(broker.bootstrap, data_dir, 300 if args.quick else 1000)
            emit("gateway_events_per_s_batches_of_100", gateway)

    try:
        from bench.bench_rules import run as run_rules
    except ImportError:
        return
    for name, value in run_rules().items():
        emit(name, value, "{:.3f}" if "ratio" in name else "{:.0f}")


if __name__ == "__main__":
    main()
