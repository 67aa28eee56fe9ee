"""A subaccount's own rules over REST, through a real broker and processes.

The gateway and the worker run as processes against the session's broker
with a SendGrid stand-in behind two destinations (``alpha``, ``beta``).
The installation sends everything to ``alpha``; one subaccount publishes
rules of its own that send its mail to ``beta``, another has none. The
subaccounts get fresh names, since other modules share the broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mailyard.tenancy import new_key
from tests.e2e import Stack, wait_until
from tests.standins import sendgrid
from tests.standins.server import StandInServer

pytestmark = pytest.mark.kafka

TO_BETA = [{"name": "own-to-beta", "action": {"route": "beta"}}]
TO_ALPHA = [{"name": "own-to-alpha", "action": {"route": "alpha"}}]


class Api:
    """The worker's API as one caller (a key) sees it."""

    def __init__(self, base: str, key_text: str) -> None:
        self.base = base
        self.headers = {"Authorization": f"Bearer {key_text}"}

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", headers=self.headers, timeout=10)

    def post(
        self, path: str, body: dict[str, Any], timeout: float = 10
    ) -> httpx.Response:
        return httpx.post(
            f"{self.base}{path}", json=body, headers=self.headers, timeout=timeout
        )


class Setup:
    def __init__(
        self,
        stack: Stack,
        admin: Api,
        own: str,
        other: str,
        own_key: Api,
        standin: StandInServer,
    ) -> None:
        self.stack = stack
        self.admin = admin
        self.own = own
        self.other = other
        self.own_key = own_key
        self.standin = standin


def installation_rules(url: str) -> dict[str, Any]:
    dest = {
        "kind": "esp_http",
        "provider": "sendgrid",
        "base_url": url,
        "credentials": {"api_key": "TEST_SENDGRID_KEY"},
    }
    return {
        "destinations": [{"name": "alpha", **dest}, {"name": "beta", **dest}],
        "default": "alpha",
        "rules": [{"name": "everything-to-alpha", "action": {"route": "alpha"}}],
    }


@pytest.fixture(scope="module")
def setup(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    standin = StandInServer(sendgrid.create().app)
    standin.start()
    data = tmp_path_factory.mktemp("subaccount-rules-api")
    header = {
        "version": 1,
        "author": "tests",
        "created_at": "2026-12-01T00:00:00Z",
        "reason": "subaccount rules API test",
    }
    rules_file = data / "rules.json"
    rules_file.write_text(json.dumps({**header, **installation_rules(standin.url)}))
    admin_text = new_key(None, ["admin"])[1]
    stack = Stack(kafka_bootstrap, data)
    stack.env.update(
        {
            "MAILYARD_RULES": str(rules_file),
            "TEST_SENDGRID_KEY": sendgrid.API_KEY,
            "MAILYARD_ADMIN_KEY": admin_text,
        }
    )
    try:
        stack.start("gateway")
        stack.start("worker")
        admin = Api(stack.api, admin_text)
        assert wait_until(lambda: admin.get("/v1/rules").status_code == 200, 30)
        # Other modules' rule sets may be current: make this module's current.
        reply = admin.post(
            "/v1/rules",
            {
                "rules": installation_rules(standin.url),
                "author": "tests",
                "reason": "baseline",
            },
        )
        assert reply.status_code == 201, reply.text
        version = reply.json()["version"]
        assert wait_until(
            lambda: admin.get("/v1/rules").json()["version"] == version, 15
        )
        own, other = (f"{n}-{uuid.uuid4().hex[:8]}" for n in ("own", "other"))
        for name in (own, other):
            reply = admin.post("/v1/subaccounts", {"name": name})
            assert reply.status_code == 201, reply.text
        reply = admin.post("/v1/keys", {"subaccount": own, "scopes": ["rules:manage"]})
        assert reply.status_code == 201, reply.text
        yield Setup(
            stack, admin, own, other, Api(stack.api, reply.json()["key"]), standin
        )
    finally:
        stack.stop()
        standin.stop()


def publish(api: Api, subaccount: str, rules: list[dict[str, Any]], reason: str) -> int:
    reply = api.post(
        f"/v1/subaccounts/{subaccount}/rules",
        {"rules": {"rules": rules}, "author": "shop-admin", "reason": reason},
    )
    assert reply.status_code == 201, reply.text
    version: int = reply.json()["version"]
    assert wait_until(lambda: current_version(api, subaccount) == version, 15)
    return version


def current_version(api: Api, subaccount: str) -> int | None:
    reply = api.get(f"/v1/subaccounts/{subaccount}/rules")
    return reply.json()["version"] if reply.status_code == 200 else None


def submit(setup: Setup, subaccount: str, recipient: str) -> str:
    reply = httpx.post(
        f"{setup.stack.gateway}/v1/messages",
        headers=setup.admin.headers,
        timeout=10,
        json={
            "from": "app@shop.example",
            "to": [recipient],
            "subject": "Receipt",
            "text": "Thanks!",
            "subaccount": subaccount,
        },
    )
    assert reply.status_code == 202, reply.text
    message_id: str = reply.json()["message_id"]
    return message_id


def delivered(setup: Setup, message_id: str) -> dict[str, Any]:
    """The message's status once it has a sent event."""

    def status() -> dict[str, Any] | None:
        reply = setup.admin.get(f"/v1/messages/{message_id}")
        if reply.status_code != 200:
            return None
        body: dict[str, Any] = reply.json()
        return body if any(e["type"] == "sent" for e in body["events"]) else None

    assert wait_until(lambda: status() is not None, 30), setup.stack.log_tail("worker")
    found = status()
    assert found is not None
    return found


def test_subaccount_rules_route_its_mail_while_another_follows_the_installation(
    setup: Setup,
) -> None:
    version = publish(setup.own_key, setup.own, TO_BETA, reason="to beta")

    own = delivered(setup, submit(setup, setup.own, "own-rules@gmail.com"))
    other = delivered(setup, submit(setup, setup.other, "other-rules@gmail.com"))

    (mine,) = own["decisions"]
    assert (mine["rule"], mine["destination"], mine["subaccount"]) == (
        "own-to-beta",
        "beta",
        setup.own,
    )
    assert mine["subaccount_ruleset_version"] == version
    sent = next(e for e in own["events"] if e["type"] == "sent")
    assert sent["metadata"]["mailyard_destination"] == "beta"
    (theirs,) = other["decisions"]
    assert (theirs["rule"], theirs["destination"], theirs["subaccount"]) == (
        "everything-to-alpha",
        "alpha",
        setup.other,
    )
    assert theirs["subaccount_ruleset_version"] is None
    listed = setup.own_key.get(f"/v1/subaccounts/{setup.own}/rules/versions").json()
    assert {
        "version": version,
        "author": "shop-admin",
        "reason": "to beta",
    }.items() <= listed[-1].items()


def test_restoring_an_old_version_routes_by_it_again(setup: Setup) -> None:
    old = publish(setup.own_key, setup.own, TO_BETA, reason="old")
    publish(setup.own_key, setup.own, TO_ALPHA, reason="newer")

    reply = setup.own_key.post(
        f"/v1/subaccounts/{setup.own}/rules/restore", {"version": old, "author": "ops"}
    )
    assert reply.status_code == 201, reply.text
    restored = reply.json()["version"]
    assert wait_until(lambda: current_version(setup.admin, setup.own) == restored, 15)
    (decision,) = delivered(setup, submit(setup, setup.own, "restored@gmail.com"))[
        "decisions"
    ]

    assert restored > old
    now = setup.admin.get(f"/v1/subaccounts/{setup.own}/rules").json()
    assert (now["reason"], now["author"], now["rules"]) == (
        f"restore version {old}",
        "ops",
        TO_BETA,
    )
    assert (decision["destination"], decision["subaccount_ruleset_version"]) == (
        "beta",
        restored,
    )


def test_rule_naming_an_undeclared_destination_is_refused_and_not_published(
    setup: Setup,
) -> None:
    before = setup.admin.get(f"/v1/subaccounts/{setup.own}/rules/versions").json()

    reply = setup.own_key.post(
        f"/v1/subaccounts/{setup.own}/rules",
        {
            "rules": "- {name: to-nowhere, action: {route: nowhere}}",
            "author": "shop-admin",
            "reason": "bad",
        },
    )

    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert "rule 'to-nowhere'" in detail and "action.route" in detail
    assert "unknown destination 'nowhere'; declared: alpha, beta" in detail
    assert (
        setup.admin.get(f"/v1/subaccounts/{setup.own}/rules/versions").json() == before
    )


def test_keys_reach_only_their_own_subaccounts_rules(setup: Setup) -> None:
    others = setup.own_key.get(f"/v1/subaccounts/{setup.other}/rules")
    unknown = setup.admin.get("/v1/subaccounts/no-such-subaccount/rules/versions")
    none_yet = setup.admin.get(f"/v1/subaccounts/{setup.other}/rules")
    installation = setup.own_key.get("/v1/rules")

    assert others.status_code == 403
    assert unknown.status_code == 404 and "no-such-subaccount" in unknown.text
    assert none_yet.status_code == 404 and "no rules of its own" in none_yet.text
    assert installation.status_code == 403


def test_simulating_a_candidate_decides_as_the_subaccount_and_sends_nothing(
    setup: Setup,
) -> None:
    recipient = f"simulated-{uuid.uuid4().hex[:8]}@gmail.com"
    message = {
        "message_id": "<sim-own@shop.example>",
        "from_addr": "app@shop.example",
        "to": [recipient],
        "subaccount": setup.other,
    }

    reply = setup.own_key.post(
        f"/v1/subaccounts/{setup.own}/rules/simulate",
        {"message": message, "rules": {"rules": TO_ALPHA}},
    )

    assert reply.status_code == 200, reply.text
    (decision,) = reply.json()["decisions"]
    # Taken as the caller's subaccount's message, whatever it named.
    assert (decision["subaccount"], decision["rule"], decision["destination"]) == (
        setup.own,
        "own-to-alpha",
        "alpha",
    )
    assert reply.json()["summary"]["by_destination"] == {"alpha": 1}
    sent = httpx.get(f"{setup.standin.url}/_sent", timeout=10).json()["messages"]
    assert recipient not in [r for m in sent for r in m["recipients"]]
