"""Topic administration over the Kafka admin API (confluent-kafka).

The broker never creates topics on its own (``auto.create.topics.enable``
is off), so :func:`apply_catalog` is how every Mailyard topic comes to
exist, with the partition count and configs the catalog declares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from confluent_kafka import KafkaError, KafkaException

# confluent-kafka re-exports these without `as`, which strict mypy ignores.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    NewTopic,
    TopicMetadata,
)

from mailyard.errors import BrokerUnavailable, KafkaSetupError
from mailyard.topics import CATALOG, TopicSpec

logger = logging.getLogger(__name__)

_POLL_S = 0.2


class TopicMismatch(KafkaSetupError):
    """An existing topic's partition count differs from the catalog's.

    Kafka can only add partitions, and adding them moves keys to other
    partitions, so Mailyard refuses to run rather than change it silently.
    """

    def __init__(self, topic: str, expected: int, actual: int) -> None:
        super().__init__(
            f"Topic {topic!r} has {actual} partitions on the broker but the "
            f"catalog (mailyard/topics.py) declares {expected}. Change the "
            "catalog, or delete and recreate the topic if its data can go."
        )
        self.topic = topic
        self.expected = expected
        self.actual = actual


def _client(bootstrap: str) -> AdminClient:
    # librdkafka logs to stderr by default; route it through logging, and
    # keep reconnect backoff short so a broker that just came up is seen.
    conf: dict[str, str | int | float | bool] = {
        "bootstrap.servers": bootstrap,
        "reconnect.backoff.max.ms": 500,
    }
    return AdminClient(conf, logger=logger)


def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> ClusterMetadata:
    """Return cluster metadata once the broker answers a metadata request."""
    client = _client(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(timeout=max(min(remaining, 2.0), 0.1))
        except KafkaException as exc:
            if remaining <= 0:
                raise BrokerUnavailable(
                    f"No Kafka broker answered at {bootstrap} within {timeout:.0f}"
                    f" s ({exc.args[0]}). Start one (`mailyard kafka start`) or "
                    "point MAILYARD_KAFKA_BOOTSTRAP at a running broker."
                ) from exc
        time.sleep(_POLL_S)


def apply_catalog(
    bootstrap: str,
    catalog: Sequence[TopicSpec] = CATALOG,
    *,
    timeout: float = 30.0,
) -> list[str]:
    """Create the catalog's missing topics; return the names created.

    Existing topics keep their configs; their partition counts must match.
    """
    existing = wait_for_broker(bootstrap, timeout).topics
    for spec in catalog:
        if spec.name in existing:
            _check_partitions(spec, len(existing[spec.name].partitions))

    missing = [spec for spec in catalog if spec.name not in existing]
    created = create_topics(bootstrap, missing, timeout=timeout)
    if created:
        logger.info("created topics %s", ", ".join(created))
    return created


def create_topics(
    bootstrap: str, specs: Sequence[TopicSpec], *, timeout: float = 30.0
) -> list[str]:
    """Create topics and wait until every partition has a leader.

    A topic that appears concurrently (another process applying the same
    catalog) is accepted if its partition count matches.
    """
    if not specs:
        return []

    client = _client(bootstrap)
    new = [
        NewTopic(s.name, s.partitions, replication_factor=-1, config=s.config())
        for s in specs
    ]
    futures = client.create_topics(new, request_timeout=timeout)

    created = []
    for spec in specs:
        try:
            futures[spec.name].result()
            created.append(spec.name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaSetupError(
                    f"Creating topic {spec.name!r} on {bootstrap} failed: "
                    f"{exc.args[0].str()}"
                ) from exc

    _wait_for_topics(client, specs, timeout)
    return created


def delete_topics(
    bootstrap: str, names: Iterable[str], *, timeout: float = 30.0
) -> None:
    """Delete topics (those already gone are ignored) and wait until gone."""
    names = list(names)
    if not names:
        return

    client = _client(bootstrap)
    futures = client.delete_topics(names, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaSetupError(
                    f"Deleting topic {name!r} failed: {exc.args[0].str()}"
                ) from exc

    deadline = time.monotonic() + timeout
    while set(names) & set(client.list_topics(timeout=timeout).topics):
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"Topics {names} still listed after {timeout} s.")
        time.sleep(_POLL_S)


def _check_partitions(spec: TopicSpec, actual: int) -> None:
    if actual != spec.partitions:
        raise TopicMismatch(spec.name, spec.partitions, actual)


def _wait_for_topics(
    client: AdminClient, specs: Sequence[TopicSpec], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = list(specs)
    while pending:
        topics = client.list_topics(timeout=timeout).topics
        pending = [spec for spec in pending if not _is_ready(spec, topics)]
        if pending and time.monotonic() > deadline:
            names = [spec.name for spec in pending]
            raise KafkaSetupError(
                f"Topics {names} were created but have no partition leaders "
                f"after {timeout:.0f} s."
            )
        if pending:
            time.sleep(_POLL_S)


def _is_ready(spec: TopicSpec, topics: dict[str, TopicMetadata]) -> bool:
    meta = topics.get(spec.name)
    if meta is None or meta.error is not None:
        return False
    _check_partitions(spec, len(meta.partitions))
    return all(p.leader >= 0 for p in meta.partitions.values())
