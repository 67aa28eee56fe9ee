"""The local broker, the topic catalog and the broker tooling, on real Kafka."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
)

from mailyard.admin import TopicMismatch, apply_catalog, create_topics
from mailyard.errors import KafkaSetupError
from mailyard.kafka_jars import ensure_jars
from mailyard.kafka_local import LocalKafka, free_port_pair
from mailyard.topics import CATALOG, TopicSpec

Record = tuple[bytes | None, bytes | None]
MakeTopic = Callable[..., str]


def produce(bootstrap: str, topic: str, records: Sequence[Record]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"}
    )
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for key, value in records:
        producer.produce(topic, value, key, on_delivery=on_delivery)
    assert producer.flush(15) == 0
    assert errors == []


def read_all(
    bootstrap: str, topic: str, count: int, partitions: int = 1
) -> list[Record]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Record] = []
    try:
        for _ in range(100):
            for msg in consumer.consume(count - len(records), timeout=0.5):
                assert msg.error() is None, msg.error()
                records.append((msg.key(), msg.value()))
            if len(records) >= count:
                break
    finally:
        consumer.close()
    return records


@pytest.mark.kafka
def test_records_produced_idempotently_are_read_back_in_order(
    kafka_bootstrap: str, fresh_topics: MakeTopic
) -> None:
    topic = fresh_topics()
    records = [(f"k{i}".encode(), f"event {i}".encode()) for i in range(50)]

    produce(kafka_bootstrap, topic, records)

    assert read_all(kafka_bootstrap, topic, len(records)) == records


@pytest.mark.kafka
@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_catalog_topics_exist_with_declared_partitions_and_configs(
    kafka_bootstrap: str, spec: TopicSpec
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})

    meta = admin.list_topics(spec.name, timeout=10).topics[spec.name]
    resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)

    assert len(meta.partitions) == spec.partitions
    for key, value in spec.config().items():
        assert configs[key].value == value


@pytest.mark.kafka
def test_applying_the_catalog_again_creates_nothing(kafka_bootstrap: str) -> None:
    assert apply_catalog(kafka_bootstrap) == []


@pytest.mark.kafka
def test_catalog_refuses_an_existing_topic_with_other_partitions(
    kafka_bootstrap: str, fresh_topics: MakeTopic
) -> None:
    topic = fresh_topics(partitions=2)

    with pytest.raises(TopicMismatch, match="has 2 partitions") as caught:
        apply_catalog(kafka_bootstrap, [TopicSpec(topic, 3)])

    assert (caught.value.expected, caught.value.actual) == (3, 2)


@pytest.mark.kafka
def test_producing_to_an_unknown_topic_fails_and_creates_nothing(
    kafka_bootstrap: str,
) -> None:
    topic = "test.never-created"
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000}
    )
    failures: list[KafkaError | None] = []

    producer.produce(topic, b"x", on_delivery=lambda err, _m: failures.append(err))
    producer.flush(10)

    topics = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(failures) == 1 and failures[0] is not None
    assert topic not in topics.topics


@pytest.mark.kafka
def test_second_fetch_reuses_cached_jars_without_maven(
    kafka_bootstrap: str, kafka_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    libs = ensure_jars(kafka_cache_dir)

    assert any(libs.glob("kafka_2.13-*.jar"))


def test_fetching_jars_without_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(KafkaSetupError, match="`mvn` is not on PATH"):
        ensure_jars(tmp_path / "cache")


def test_starting_on_a_busy_port_names_the_port_and_the_setting(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        with pytest.raises(KafkaSetupError) as caught:
            LocalKafka(tmp_path, port, port + 1).start()

    assert f"Port {port} " in str(caught.value)
    assert "MAILYARD_KAFKA_BOOTSTRAP" in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mailyard.kafka_local", *args]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.kafka
def test_restarted_broker_keeps_records_and_cli_finds_it(
    tmp_path: Path, kafka_cache_dir: Path
) -> None:
    port, controller_port = free_port_pair(29192)
    where = [
        "--data-dir", str(tmp_path), "--port", str(port),
        "--controller-port", str(controller_port), "--cache-dir", str(kafka_cache_dir),
    ]  # fmt: skip
    broker = LocalKafka(tmp_path, port, controller_port, cache_dir=kafka_cache_dir)
    records = [(b"k", b"before restart")]
    try:
        # The CLI's broker outlives the CLI; a new LocalKafka adopts it.
        assert run_cli("start", *where).returncode == 0
        create_topics(broker.bootstrap, [TopicSpec("kept", 1)])
        produce(broker.bootstrap, "kept", records)
        first_pid = broker.start().pid
        broker.stop()
        assert run_cli("status", *where).returncode == 3

        broker.start()

        assert broker.pid != first_pid
        assert read_all(broker.bootstrap, "kept", 1) == records
        assert run_cli("stop", *where).returncode == 0
        assert not broker.is_running
    finally:
        broker.stop()
