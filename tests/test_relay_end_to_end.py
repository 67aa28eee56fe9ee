"""Submitted messages through rules to ESP stand-ins, with failover on live health.

The gateway and the worker run as real processes against the session's
broker; the SendGrid (primary) and Postmark (backup) APIs are the strict
local stand-ins, steered over their control endpoints.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e import Stack, wait_until
from tests.standins import postmark, sendgrid
from tests.standins.server import StandInServer

pytestmark = pytest.mark.kafka

RULES = """\
version: 1
author: tests
created_at: "2026-12-01T00:00:00Z"
reason: failover test
destinations:
  - {{name: primary, kind: esp_http, provider: sendgrid, base_url: "{primary}",
     credentials: {{api_key: TEST_SENDGRID_KEY}}}}
  - {{name: backup, kind: esp_http, provider: postmark, base_url: "{backup}",
     credentials: {{server_token: TEST_POSTMARK_TOKEN}}}}
default: primary
rules:
  - name: transactional-failover
    condition: {{stream: {{equals: transactional}}}}
    action:
      failover:
        destinations: [primary, backup]
        trip: {{error_rate: 0.5}}
        recover: {{error_rate: 0.2}}
        min_volume: 3
"""


@pytest.fixture(scope="module")
def standins() -> Iterator[tuple[StandInServer, StandInServer]]:
    primary = StandInServer(sendgrid.create().app)
    backup = StandInServer(postmark.create().app)
    primary.start()
    backup.start()
    yield primary, backup
    primary.stop()
    backup.stop()


@pytest.fixture(scope="module")
def relay_stack(
    kafka_bootstrap: str, standins: tuple[StandInServer, StandInServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    primary, backup = standins
    data = tmp_path_factory.mktemp("relay")
    rules = data / "rules.yaml"
    rules.write_text(RULES.format(primary=primary.url, backup=backup.url))
    stack = Stack(kafka_bootstrap, data)
    stack.env.update({
        "MAILYARD_RULES": str(rules),
        "MAILYARD_HEALTH_WINDOW_S": "4", "MAILYARD_HEALTH_BUCKET_S": "1",
        "MAILYARD_RETRY_BASE_S": "1",
        "TEST_SENDGRID_KEY": sendgrid.API_KEY,
        "TEST_POSTMARK_TOKEN": postmark.SERVER_TOKEN,
    })
    stack.start("gateway")
    stack.start("worker")
    stack.make_current(rules.read_text(), "failover test")
    yield stack
    stack.stop()


def _control(server: StandInServer, mode: str) -> None:
    httpx.post(f"{server.url}/_control", json={"mode": mode}).raise_for_status()


def _sent_ids(server: StandInServer) -> list[str]:
    sent = httpx.get(f"{server.url}/_sent").json()["messages"]
    return [m["metadata"].get("mailyard_message_id") for m in sent]


def _submit(stack: Stack, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        reply = httpx.post(f"{stack.gateway}/v1/messages", json={
            "from": "app@shop.example", "to": [f"user{i}-{tag}@gmail.com"],
            "subject": f"Receipt {tag} {i}", "text": "Thanks!",
            "stream": "transactional", "subaccount": "shop",
        }, headers=stack.admin_headers)
        assert reply.status_code == 202, reply.text
        ids.append(reply.json()["message_id"])
    return ids


def test_traffic_fails_over_to_the_backup_and_returns(
    relay_stack: Stack, standins: tuple[StandInServer, StandInServer]
) -> None:
    primary, backup = standins
    healthy = _submit(relay_stack, 5, "before")
    assert wait_until(lambda: set(healthy) <= set(_sent_ids(primary)), 30), \
        relay_stack.log_tail("worker")

    _control(primary, "fail_503")
    outage = []
    for round_ in range(8):
        outage += _submit(relay_stack, 3, f"outage{round_}")
        time.sleep(0.5)
    # Within seconds the primary is tripped and new mail goes to the backup.
    assert wait_until(lambda: len(set(outage) & set(_sent_ids(backup))) >= 10, 20), \
        relay_stack.log_tail("worker")

    _control(primary, "ok")
    time.sleep(5)  # the failure window passes; the primary looks healthy again
    after = _submit(relay_stack, 5, "after")
    everything = healthy + outage + after
    assert wait_until(lambda: set(everything) <= set(_sent_ids(primary)) | set(
        _sent_ids(backup)), 60), relay_stack.log_tail("worker")
    assert set(after) <= set(_sent_ids(primary))

    # Nothing lost and nothing sent twice, across both providers.
    counts = Counter(_sent_ids(primary) + _sent_ids(backup))
    assert {m: counts[m] for m in everything if counts[m] != 1} == {}


def test_message_status_shows_decision_and_events(relay_stack: Stack) -> None:
    (message_id,) = _submit(relay_stack, 1, "status")

    def status() -> dict[str, object] | None:
        reply = httpx.get(f"{relay_stack.api}/v1/messages/{message_id}",
                          headers=relay_stack.admin_headers)
        return reply.json() if reply.status_code == 200 else None

    assert wait_until(lambda: (s := status()) is not None and s["events"], 30)
    body = status()
    assert body is not None
    assert body["decisions"][0]["rule"] == "transactional-failover"
    assert body["decisions"][0]["destination"] in ("primary", "backup")
    assert any(e["type"] == "sent" for e in body["events"])  # type: ignore[union-attr]


def test_suppressed_recipient_gets_a_rejected_event(relay_stack: Stack) -> None:
    admin = relay_stack.admin_headers
    reply = httpx.put(f"{relay_stack.api}/v1/suppressions/shop/blocked@gmail.com",
                      json={"reason": "asked us to stop"}, headers=admin)
    assert reply.status_code == 201
    assert wait_until(lambda: any(
        e["address"] == "blocked@gmail.com"
        for e in httpx.get(f"{relay_stack.api}/v1/suppressions/shop",
                           headers=admin).json()), 10)

    message_id = httpx.post(f"{relay_stack.gateway}/v1/messages", json={
        "from": "app@shop.example", "to": ["blocked@gmail.com"], "subject": "Hi",
        "text": "x", "stream": "transactional", "subaccount": "shop",
    }, headers=admin).json()["message_id"]

    def rejected() -> list[dict[str, object]]:
        reply = httpx.get(f"{relay_stack.api}/v1/messages/{message_id}", headers=admin)
        if reply.status_code != 200:
            return []
        return [e for e in reply.json()["events"] if e["type"] == "rejected"]

    assert wait_until(lambda: bool(rejected()), 30)
    assert "asked us to stop" in str(rejected()[0]["reason"])
