"""A deferred delivery waits on a retry tier and is delivered once it is due.

The gateway and the worker run as real processes against the session's
broker. The SendGrid stand-in answers 503 until the first attempt has been
deferred, then accepts; with ``MAILYARD_RETRY_BASE_S=1`` the deferral waits
on the 10 s tier, and the retry forwarder hands it back to the router.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from mailyard.codec import codec
from mailyard.topics import DEAD_LETTERS, REROUTE, RETRIES
from streams.normalize import decode_dead_letter
from tests.e2e import Stack, read_topic, wait_until
from tests.standins import sendgrid
from tests.standins.server import StandInServer

pytestmark = pytest.mark.kafka

_DISPATCH = codec("dispatch")
TIER_10S = RETRIES[0].name
RULES = {
    "destinations": [
        {
            "name": "esp",
            "kind": "esp_http",
            "provider": "sendgrid",
            "base_url": "{url}",
            "credentials": {"api_key": "TEST_SENDGRID_KEY"},
        }
    ],
    "default": "esp",
    "rules": [{"name": "everything", "action": {"route": "esp"}}],
}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandInServer]:
    server = StandInServer(sendgrid.create().app)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    standin: StandInServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("retry-forwarder")
    rules = json.loads(json.dumps(RULES).replace("{url}", standin.url))
    header = {"version": 1, "author": "tests", "created_at": "2026-12-01T00:00:00Z"}
    rules_file = data / "rules.json"
    rules_file.write_text(json.dumps({**header, "reason": "retry test", **rules}))
    stack = Stack(kafka_bootstrap, data)
    stack.env.update(
        {
            "MAILYARD_RULES": str(rules_file),
            "MAILYARD_RETRY_BASE_S": "1",
            "TEST_SENDGRID_KEY": sendgrid.API_KEY,
        }
    )
    try:
        stack.start("gateway")
        stack.start("worker")
        stack.make_current(rules, "retry test")
        yield stack
    finally:
        stack.stop()


def control(server: StandInServer, mode: str) -> None:
    httpx.post(f"{server.url}/_control", json={"mode": mode}).raise_for_status()


def sent_ids(server: StandInServer) -> list[str]:
    sent = httpx.get(f"{server.url}/_sent", timeout=10).json()["messages"]
    return [m["metadata"].get("mailyard_message_id") for m in sent]


def submit(stack: Stack, recipient: str) -> str:
    reply = httpx.post(
        f"{stack.gateway}/v1/messages",
        headers=stack.admin_headers,
        timeout=10,
        json={
            "from": "app@shop.example",
            "to": [recipient],
            "subject": "Your receipt",
            "text": "Thanks!",
            "stream": "transactional",
            "subaccount": "shop",
        },
    )
    assert reply.status_code == 202, reply.text
    message_id: str = reply.json()["message_id"]
    return message_id


def status(stack: Stack, message_id: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{stack.api}/v1/messages/{message_id}",
        headers=stack.admin_headers,
        timeout=10,
    )
    if reply.status_code != 200:
        return {"decisions": [], "events": []}
    body: dict[str, Any] = reply.json()
    return body


def of_type(stack: Stack, message_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in status(stack, message_id)["events"] if e["type"] == type_]


def on_topic(stack: Stack, topic: str, message_id: str) -> list[dict[str, Any]]:
    bootstrap = stack.env["MAILYARD_KAFKA_BOOTSTRAP"]
    records = [_DISPATCH.decode(v) for _, v in read_topic(bootstrap, topic)]
    return [r for r in records if r["message_id"] == message_id]


def test_deferred_delivery_is_retried_from_the_10s_tier_and_sent_once(
    stack: Stack, standin: StandInServer
) -> None:
    control(standin, "fail_503")
    forwarded_before = httpx.get(
        f"{stack.api}/v1/relay/stats", headers=stack.admin_headers
    ).json()["retries_forwarded"]
    message_id = submit(stack, "retry-me@gmail.com")

    assert wait_until(lambda: bool(of_type(stack, message_id, "deferred")), 30), (
        stack.log_tail("worker")
    )
    control(standin, "ok")

    assert wait_until(lambda: message_id in sent_ids(standin), 45), stack.log_tail(
        "worker"
    )
    assert wait_until(lambda: bool(of_type(stack, message_id, "sent")), 15)
    (deferred,) = of_type(stack, message_id, "deferred")
    (sent,) = of_type(stack, message_id, "sent")
    assert deferred["metadata"]["mailyard_error"] == "1"
    assert deferred["metadata"]["mailyard_attempt"] == "1"
    assert sent["metadata"]["mailyard_attempt"] == "2"
    # It waited out the tier: the forwarder never hands a record on early.
    waited = datetime.fromisoformat(sent["timestamp"]) - datetime.fromisoformat(
        deferred["timestamp"]
    )
    assert waited.total_seconds() >= 9.5
    # Routed twice (submitted, then rerouted when due), each time to the stand-in.
    decisions = status(stack, message_id)["decisions"]
    assert [d["destination"] for d in decisions] == ["esp", "esp"]
    stats = httpx.get(
        f"{stack.api}/v1/relay/stats", headers=stack.admin_headers
    ).json()
    assert stats["retries_forwarded"] > forwarded_before

    # Once, not more: a message submitted later is through, and still one copy.
    barrier = submit(stack, "after-retry@gmail.com")
    assert wait_until(lambda: barrier in sent_ids(standin), 30)
    assert sent_ids(standin).count(message_id) == 1
    (parked,) = on_topic(stack, TIER_10S, message_id)
    assert parked["attempt"] == 2 and parked["destination"] is None
    assert (parked["due_at"] - parked["first_attempt_at"]).total_seconds() >= 10
    assert len(on_topic(stack, REROUTE.name, message_id)) == 1


def test_bad_records_on_a_tier_are_dead_lettered_and_the_tier_moves_on(
    stack: Stack, standin: StandInServer
) -> None:
    """Garbage, and a record that decodes but has no due time, ahead of a due one."""
    bootstrap = stack.env["MAILYARD_KAFKA_BOOTSTRAP"]
    control(standin, "fail_503")
    template_id = submit(stack, "template@gmail.com")
    assert wait_until(lambda: bool(on_topic(stack, TIER_10S, template_id)), 30)
    control(standin, "ok")
    (template,) = on_topic(stack, TIER_10S, template_id)

    key = b"same-partition"
    undated = {**template, "message_id": "retry-undated", "due_at": None}
    due = {**template, "message_id": "retry-due-now",
           "due_at": datetime.now(timezone.utc)}
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(TIER_10S, b"\xc3\x01not avro", key)
    producer.produce(TIER_10S, _DISPATCH.encode(undated), key)
    producer.produce(TIER_10S, _DISPATCH.encode(due), key)
    assert producer.flush(10) == 0

    assert wait_until(lambda: bool(on_topic(stack, REROUTE.name, "retry-due-now")), 30), (
        stack.log_tail("worker"))
    letters = [decode_dead_letter(v) for _, v in read_topic(bootstrap, DEAD_LETTERS.name)]
    retry_letters = [d for d in letters if d["stage"] == "retry" and d["source_topic"] == TIER_10S]
    assert any(b"not avro" in d["value"] for d in retry_letters)
    assert any("due_at" in d["error"] for d in retry_letters)
    ready = httpx.get(f"{stack.api}/readyz", timeout=10).json()
    assert ready["failing"] == [] and ready["ready"] is True
