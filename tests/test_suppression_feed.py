"""ESP webhooks feed the suppression list, and the router obeys it.

The gateway and the worker run as real processes against the session's
broker; deliveries go to a SendGrid stand-in. Each test uses its own
subaccount (created with unsigned webhooks) and event ids, since the
broker (and the ledger's dedup table) is shared with other modules.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e import Stack, wait_until
from tests.standins import sendgrid
from tests.standins.server import StandInServer

pytestmark = pytest.mark.kafka


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
    data = tmp_path_factory.mktemp("suppression-feed")
    rules = {
        "destinations": [
            {
                "name": "esp",
                "kind": "esp_http",
                "provider": "sendgrid",
                "base_url": standin.url,
                "credentials": {"api_key": "TEST_SENDGRID_KEY"},
            }
        ],
        "default": "esp",
        "rules": [{"name": "everything", "action": {"route": "esp"}}],
    }
    header = {"version": 1, "author": "tests", "created_at": "2026-12-01T00:00:00Z"}
    rules_file = data / "rules.json"
    rules_file.write_text(json.dumps({**header, "reason": "feed test", **rules}))
    stack = Stack(kafka_bootstrap, data)
    stack.env.update(
        {"MAILYARD_RULES": str(rules_file), "TEST_SENDGRID_KEY": sendgrid.API_KEY}
    )
    try:
        stack.start("gateway")
        stack.start("worker")
        stack.make_current(rules, "feed test")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def sub(stack: Stack) -> str:
    """A new subaccount whose webhook entry points take unsigned bodies."""
    name = f"feed-{uuid.uuid4().hex[:10]}"
    stack.add_subaccounts(name)
    return name


def sendgrid_event(event: str, email: str, **fields: Any) -> dict[str, Any]:
    """One Event Webhook entry as SendGrid posts it."""
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **fields,
    }


def hard_bounce(email: str) -> dict[str, Any]:
    return sendgrid_event(
        "bounce",
        email,
        type="bounce",
        status="5.1.1",
        reason="550 5.1.1 The email account that you tried to reach does not exist.",
    )


def post_webhook(stack: Stack, sub: str, events: list[dict[str, Any]]) -> None:
    reply = httpx.post(
        f"{stack.gateway}/webhooks/sendgrid/{sub}",
        content=json.dumps(events),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert reply.status_code in (200, 202), reply.text


def suppressed(stack: Stack, sub: str) -> dict[str, dict[str, Any]]:
    reply = httpx.get(
        f"{stack.api}/v1/suppressions/{sub}", headers=stack.admin_headers, timeout=10
    )
    reply.raise_for_status()
    return {e["address"]: e for e in reply.json()}


def submit(stack: Stack, sub: str, recipient: str) -> str:
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
            "subaccount": sub,
        },
    )
    assert reply.status_code == 202, reply.text
    message_id: str = reply.json()["message_id"]
    return message_id


def events_of(stack: Stack, message_id: str, type_: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{stack.api}/v1/messages/{message_id}",
        headers=stack.admin_headers,
        timeout=10,
    )
    if reply.status_code != 200:
        return []
    return [e for e in reply.json()["events"] if e["type"] == type_]


def sent_to(standin: StandInServer) -> list[str]:
    messages = httpx.get(f"{standin.url}/_sent", timeout=10).json()["messages"]
    return [r for m in messages for r in m["recipients"]]


def wait_sent(stack: Stack, message_id: str) -> None:
    assert wait_until(lambda: bool(events_of(stack, message_id, "sent")), 30), (
        stack.log_tail("worker")
    )


def test_hard_bounce_suppresses_the_recipient_and_later_mail_is_rejected(
    stack: Stack, standin: StandInServer, sub: str
) -> None:
    gone = f"gone-{sub}@gmail.com"

    post_webhook(stack, sub, [hard_bounce(gone)])

    assert wait_until(lambda: gone in suppressed(stack, sub), 30), stack.log_tail(
        "worker"
    )
    entry = suppressed(stack, sub)[gone]
    assert entry["reason"] == "hard bounce"
    assert entry["source"] == "sendgrid:bounce"
    # Suppressions are per subaccount: the same address elsewhere is not listed.
    assert gone not in suppressed(stack, f"other-{sub}")

    message_id = submit(stack, sub, gone)
    assert wait_until(lambda: bool(events_of(stack, message_id, "rejected")), 30)
    (rejected,) = events_of(stack, message_id, "rejected")
    assert "on the suppression list: hard bounce" in rejected["reason"]
    status = httpx.get(
        f"{stack.api}/v1/messages/{message_id}", headers=stack.admin_headers
    ).json()
    assert [d["action"] for d in status["decisions"]] == ["suppress"]
    # A message submitted after it is delivered, so the first had its turn.
    wait_sent(stack, submit(stack, sub, f"fine-{sub}@gmail.com"))
    assert gone not in sent_to(standin)


def test_deleted_suppression_lets_the_next_message_through(
    stack: Stack, standin: StandInServer, sub: str
) -> None:
    back = f"back-{sub}@gmail.com"
    post_webhook(stack, sub, [hard_bounce(back)])
    assert wait_until(lambda: back in suppressed(stack, sub), 30)

    reply = httpx.delete(
        f"{stack.api}/v1/suppressions/{sub}/{back}",
        headers=stack.admin_headers,
        timeout=10,
    )

    assert reply.status_code == 204
    assert wait_until(lambda: back not in suppressed(stack, sub), 15)
    message_id = submit(stack, sub, back)
    wait_sent(stack, message_id)
    assert back in sent_to(standin)
    assert events_of(stack, message_id, "rejected") == []
    again = httpx.delete(
        f"{stack.api}/v1/suppressions/{sub}/{back}",
        headers=stack.admin_headers,
        timeout=10,
    )
    assert again.status_code == 404


def test_soft_bounce_deferral_and_block_do_not_suppress(
    stack: Stack, standin: StandInServer, sub: str
) -> None:
    deferred = f"deferred-{sub}@yahoo.com"
    blocked = f"blocked-{sub}@outlook.com"
    soft = [
        sendgrid_event(
            "deferred",
            deferred,
            response="421 4.7.0 [TSS04] Messages temporarily deferred",
            attempt="2",
        ),
        sendgrid_event(
            "bounce",
            blocked,
            type="blocked",
            status="5.7.1",
            reason="Service unavailable; Client host blocked using Spamhaus",
        ),
    ]

    post_webhook(stack, sub, soft)

    # The ledger has counted both, so the suppression feed has seen them...
    assert wait_until(lambda: stack.counts(subaccount=sub)["total"] == 2, 30)
    # ...and a hard bounce posted after them is listed by now.
    marker = f"marker-{sub}@gmail.com"
    post_webhook(stack, sub, [hard_bounce(marker)])
    assert wait_until(lambda: marker in suppressed(stack, sub), 30)
    assert set(suppressed(stack, sub)) == {marker}
    ids = [submit(stack, sub, deferred), submit(stack, sub, blocked)]
    for message_id in ids:
        wait_sent(stack, message_id)
    assert {deferred, blocked} <= set(sent_to(standin))
