"""``POST /v1/messages`` through the gateway app, against the real broker.

Accepted messages are read back from ``mailyard.messages.submitted``; the
refusals are checked to produce nothing. The 503 test points the gateway
at a port where no broker listens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.gateway import RawProducer, create_gateway
from mailyard.codec import codec
from mailyard.settings import Settings
from mailyard.topics import SUBMITTED
from tests.e2e import free_port, read_topic
from tests.tenant_fixtures import admin_key, bearer, open_directory

URL = "/v1/messages"
_JSON = "application/json"


def message(**fields: Any) -> dict[str, Any]:
    return {
        "from": "Shop <shop@example.com>",
        "to": ["alice@example.org"],
        "subject": "Your order",
        "text": "It ships today.",
        **fields,
    }


def client_for(settings: Settings, producer: RawProducer) -> httpx.AsyncClient:
    """A client of a gateway app that sends with the app's admin key."""
    key = admin_key()
    app = create_gateway(settings, producer, tenants=open_directory(key))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url="http://gw", headers=bearer(key)
    )


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[RawProducer]:
    p = RawProducer(kafka_bootstrap, timeout_s=10.0)
    yield p
    p.close()


@pytest.fixture
async def client(
    kafka_bootstrap: str, producer: RawProducer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(bootstrap=kafka_bootstrap, max_message_bytes=4_000_000)
    async with client_for(settings, producer) as c:
        yield c


@pytest.fixture
async def offline() -> AsyncIterator[httpx.AsyncClient]:
    """A gateway whose broker port is closed, with small limits."""
    settings = Settings(
        bootstrap=f"127.0.0.1:{free_port()}",
        produce_timeout_s=1.0,
        max_message_bytes=1000,
    )
    producer = RawProducer(settings.bootstrap, settings.produce_timeout_s)
    async with client_for(settings, producer) as c:
        yield c
    producer.close()


def submitted(bootstrap: str) -> dict[str, dict[str, Any]]:
    """Every record on the SUBMITTED topic, by its key."""
    records = read_topic(bootstrap, SUBMITTED.name)
    decode = codec("submitted_message").decode
    return {key.decode(): decode(value) for key, value in records if key}


def end_offsets(bootstrap: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "offsets"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(SUBMITTED.name, p), 5)[1]
            for p in range(SUBMITTED.partitions)
        )
    finally:
        consumer.close()


async def test_an_accepted_message_is_on_the_submitted_topic_under_its_id(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    reply = await client.post(URL, json=message(tags=["order"], stream="transactional"))

    assert reply.status_code == 202
    message_id = reply.json()["message_id"]
    record = submitted(kafka_bootstrap)[message_id]
    assert record["from_addr"] == "shop@example.com"
    assert record["to"] == ["alice@example.org"] and record["text"] == "It ships today."
    assert record["tags"] == ["order"] and record["stream"] == "transactional"
    assert record["headers"]["X-Mailyard-Message-Id"] == message_id


async def test_a_batch_is_accepted_whole_and_every_message_is_on_the_topic(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    batch = [message(to=[f"r{i}@example.org"]) for i in range(3)]
    reply = await client.post(URL, json={"messages": batch})

    assert reply.status_code == 202
    ids = [item["message_id"] for item in reply.json()["messages"]]
    on_topic = submitted(kafka_bootstrap)
    assert [on_topic[i]["to"] for i in ids] == [[f"r{i}@example.org"] for i in range(3)]


async def test_raw_mime_is_stored_byte_for_byte(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    raw = (
        "From: shop@example.com\r\nTo: bob@example.org\r\nSubject: Raw\r\n\r\nBody\r\n"
    )
    reply = await client.post(URL, json={"raw": raw})

    record = submitted(kafka_bootstrap)[reply.json()["message_id"]]
    assert record["raw_mime"] == raw.encode() and record["to"] == ["bob@example.org"]
    assert record["subject"] == "Raw"


async def test_an_invalid_batch_names_the_index_and_produces_nothing(
    client: httpx.AsyncClient, kafka_bootstrap: str
) -> None:
    before = end_offsets(kafka_bootstrap)
    batch = [message(), message(), message(to=["ok@example.org", "bob@"])]

    reply = await client.post(URL, json=batch)

    assert reply.status_code == 422
    assert reply.json()["field"] == "messages[2].to[1]"
    assert reply.json()["error"].startswith("messages[2].to[1]: 'bob@' is not a valid")
    assert end_offsets(kafka_bootstrap) == before


async def test_a_message_the_broker_cannot_hold_in_one_record_is_413_not_503(
    client: httpx.AsyncClient,
) -> None:
    # Under the 4 MB message limit, over Kafka's default 1 MB record limit.
    reply = await client.post(URL, json=message(text="x" * 2_000_000))

    assert reply.status_code == 413 and "message.max.bytes" in reply.json()["error"]


async def test_a_gateway_without_a_broker_answers_503_with_retry_after(
    offline: httpx.AsyncClient,
) -> None:
    reply = await offline.post(URL, json=message())

    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"


async def test_a_body_that_is_not_json_is_400(offline: httpx.AsyncClient) -> None:
    reply = await offline.post(
        URL, content=b'{"from": ', headers={"content-type": "application/json"}
    )

    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]


async def test_json_nested_too_deeply_is_400_not_a_crash(
    client: httpx.AsyncClient,
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    reply = await client.post(URL, content=deep, headers={"content-type": _JSON})

    assert reply.status_code == 400 and "nests too deeply" in reply.json()["error"]


async def test_a_form_body_is_415(offline: httpx.AsyncClient) -> None:
    reply = await offline.post(URL, data={"from": "a@example.com"})

    assert reply.status_code == 415 and "application/json" in reply.json()["error"]


async def test_a_message_over_the_limit_is_413_naming_the_setting(
    offline: httpx.AsyncClient,
) -> None:
    reply = await offline.post(URL, json=message(text="x" * 1500))

    assert reply.status_code == 413
    assert "MAILYARD_MAX_MESSAGE_BYTES" in reply.json()["error"]


async def test_a_body_over_twice_the_limit_is_413_before_parsing(
    offline: httpx.AsyncClient,
) -> None:
    body = json.dumps(message(text="x" * 3000)).encode()
    reply = await offline.post(
        URL, content=body, headers={"content-type": "application/json"}
    )

    assert reply.status_code == 413 and "2000-byte limit" in reply.json()["error"]
