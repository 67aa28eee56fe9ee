"""Shared fixtures. Kafka fixtures start one real broker per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailyard.admin import apply_catalog, create_topics, delete_topics
from mailyard.kafka_local import LocalKafka, free_port_pair
from mailyard.topics import TopicSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_CACHE = REPO_ROOT / ".cache" / "kafka"


# --- Kafka ------------------------------------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Any test that needs the broker is a kafka test, marked or not, so
    # `-m "not kafka"` reliably runs without Java.
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_cache_dir() -> Path:
    """Where the broker jars are cached, for tests that run their own broker."""
    return KAFKA_CACHE


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a session-wide broker with the catalog applied."""
    port, controller_port = free_port_pair(29092)
    data_dir = tmp_path_factory.mktemp("kafka")
    broker = LocalKafka(data_dir, port, controller_port, cache_dir=KAFKA_CACHE)
    with broker:
        apply_catalog(broker.bootstrap)
        yield broker.bootstrap


class TopicFactory:
    """Creates uniquely named topics for one test and deletes them after."""

    def __init__(self, bootstrap: str, test_name: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = "test." + "".join(c if c.isalnum() else "-" for c in test_name)
        self.created: list[str] = []

    def __call__(
        self,
        partitions: int = 1,
        *,
        compacted: bool = False,
        retention_ms: int | None = None,
    ) -> str:
        name = f"{self.prefix[:180]}.{uuid.uuid4().hex[:8]}"
        spec = TopicSpec(name, partitions, retention_ms, compacted=compacted)
        create_topics(self.bootstrap, [spec])
        self.created.append(name)
        return name


@pytest.fixture
def fresh_topics(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Call it to get a new empty topic: ``topic = fresh_topics(partitions=3)``."""
    factory = TopicFactory(kafka_bootstrap, request.node.name)
    yield factory
    delete_topics(kafka_bootstrap, factory.created)
