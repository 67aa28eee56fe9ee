"""The rules API of a running worker: publish, validate, restore and simulate.

The gateway and the worker run as real processes against the session's
broker, with a SendGrid stand-in behind two destination names (``alpha``
and ``beta``), so a decision's destination shows which rule set version
routed a message. Other modules publish rule sets on the same broker, so
versions are read from the API, never assumed.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e import Stack, wait_until
from tests.standins import sendgrid
from tests.standins.server import StandInServer

pytestmark = pytest.mark.kafka


def rules_data(
    url: str, *, default: str, rules: list[dict[str, Any]]
) -> dict[str, Any]:
    """A rule set (without its header) over the stand-in's two destinations."""
    dest = {
        "kind": "esp_http",
        "provider": "sendgrid",
        "base_url": url,
        "credentials": {"api_key": "TEST_SENDGRID_KEY"},
    }
    return {
        "destinations": [{"name": "alpha", **dest}, {"name": "beta", **dest}],
        "default": default,
        "rules": rules,
    }


def everything_to(destination: str) -> list[dict[str, Any]]:
    return [{"name": f"everything-to-{destination}", "action": {"route": destination}}]


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
    data = tmp_path_factory.mktemp("rules-api")
    header = {
        "version": 1,
        "author": "tests",
        "created_at": "2026-12-01T00:00:00Z",
        "reason": "rules API test",
    }
    rules_file = data / "rules.json"
    baseline = rules_data(standin.url, default="alpha", rules=everything_to("alpha"))
    rules_file.write_text(json.dumps({**header, **baseline}))
    stack = Stack(kafka_bootstrap, data)
    stack.env.update(
        {"MAILYARD_RULES": str(rules_file), "TEST_SENDGRID_KEY": sendgrid.API_KEY}
    )
    try:
        stack.start("gateway")
        stack.start("worker")
        # Rules from other modules may be current: start from this module's own.
        rules_url, admin = f"{stack.api}/v1/rules", stack.admin_headers
        assert wait_until(
            lambda: httpx.get(rules_url, headers=admin).status_code == 200, 30
        )
        publish(stack, baseline, reason="rules API baseline")
        yield stack
    finally:
        stack.stop()


def versions(stack: Stack) -> list[int]:
    reply = httpx.get(
        f"{stack.api}/v1/rules/versions", headers=stack.admin_headers, timeout=10
    )
    reply.raise_for_status()
    return [v["version"] for v in reply.json()]


def current(stack: Stack) -> dict[str, Any]:
    reply = httpx.get(f"{stack.api}/v1/rules", headers=stack.admin_headers, timeout=10)
    body: dict[str, Any] = reply.json()
    return body


def publish(stack: Stack, rules: dict[str, Any] | str, *, reason: str) -> int:
    reply = httpx.post(
        f"{stack.api}/v1/rules",
        headers=stack.admin_headers,
        timeout=10,
        json={"rules": rules, "author": "tests", "reason": reason},
    )
    assert reply.status_code == 201, reply.text
    version: int = reply.json()["version"]
    assert wait_until(lambda: current(stack).get("version") == version, 15), (
        stack.log_tail("worker")
    )
    return version


def submit(stack: Stack, recipient: str, *, stream: str = "transactional") -> str:
    reply = httpx.post(
        f"{stack.gateway}/v1/messages",
        headers=stack.admin_headers,
        timeout=10,
        json={
            "from": "app@shop.example",
            "to": [recipient],
            "subject": "Receipt",
            "text": "Thanks!",
            "stream": stream,
            "subaccount": "shop",
        },
    )
    assert reply.status_code == 202, reply.text
    message_id: str = reply.json()["message_id"]
    return message_id


def delivered(stack: Stack, message_id: str) -> dict[str, Any]:
    """The message's status once it has a sent event."""

    def status() -> dict[str, Any] | None:
        reply = httpx.get(
            f"{stack.api}/v1/messages/{message_id}",
            headers=stack.admin_headers,
            timeout=10,
        )
        if reply.status_code != 200:
            return None
        body: dict[str, Any] = reply.json()
        return body if any(e["type"] == "sent" for e in body["events"]) else None

    last = f"{stack.api}/v1/messages/{message_id}"
    assert wait_until(lambda: status() is not None, 30), httpx.get(
        last, headers=stack.admin_headers
    ).text
    found = status()
    assert found is not None
    return found


def sent_to(standin: StandInServer) -> list[str]:
    messages = httpx.get(f"{standin.url}/_sent", timeout=10).json()["messages"]
    return [r for m in messages for r in m["recipients"]]


def test_json_rule_set_decides_the_next_messages_without_a_restart(
    stack: Stack, standin: StandInServer
) -> None:
    worker_pid = stack.procs["worker"].pid
    before = versions(stack)

    version = publish(
        stack,
        rules_data(standin.url, default="beta", rules=everything_to("beta")),
        reason="to beta",
    )
    status = delivered(stack, submit(stack, "json-rules@gmail.com"))

    assert version > max(before)
    (decision,) = status["decisions"]
    assert decision["ruleset_version"] == version
    assert decision["destination"] == "beta"
    assert decision["rule"] == "everything-to-beta"
    sent = next(e for e in status["events"] if e["type"] == "sent")
    assert sent["metadata"]["mailyard_destination"] == "beta"
    assert "json-rules@gmail.com" in sent_to(standin)
    assert stack.procs["worker"].pid == worker_pid
    assert stack.procs["worker"].poll() is None


def test_yaml_rule_set_text_is_published_and_used(
    stack: Stack, standin: StandInServer
) -> None:
    # A rule file as written, header and all; the server stamps its own header.
    text = textwrap.dedent(f"""\
        version: 1
        author: someone
        created_at: 2026-12-01T00:00:00Z
        reason: written by hand
        destinations:
          - {{name: alpha, kind: esp_http, provider: sendgrid, base_url: "{standin.url}",
             credentials: {{api_key: TEST_SENDGRID_KEY}}}}
          - {{name: beta, kind: esp_http, provider: sendgrid, base_url: "{standin.url}",
             credentials: {{api_key: TEST_SENDGRID_KEY}}}}
        default: beta
        rules:
          - name: transactional-on-alpha
            condition: {{stream: {{equals: transactional}}}}
            action: {{route: alpha}}
        """)

    version = publish(stack, text, reason="yaml")
    transactional = delivered(stack, submit(stack, "yaml-t@gmail.com"))
    marketing = delivered(stack, submit(stack, "yaml-m@gmail.com", stream="marketing"))

    now = current(stack)
    assert (now["version"], now["author"], now["reason"]) == (version, "tests", "yaml")
    assert now["rules"][0]["name"] == "transactional-on-alpha"
    (t,) = transactional["decisions"]
    assert (t["ruleset_version"], t["rule"], t["destination"]) == (
        version,
        "transactional-on-alpha",
        "alpha",
    )
    (m,) = marketing["decisions"]
    assert (m["ruleset_version"], m["rule"], m["destination"]) == (
        version,
        None,
        "beta",
    )


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_invalid_rule_set_is_refused_naming_rule_and_field_and_not_published(
    stack: Stack, standin: StandInServer, form: str
) -> None:
    bad = rules_data(
        standin.url,
        default="alpha",
        rules=[{"name": "to-nowhere", "action": {"route": "nowhere"}}],
    )
    body: dict[str, Any] | str = bad if form == "json" else json.dumps(bad)
    before = versions(stack)

    reply = httpx.post(
        f"{stack.api}/v1/rules",
        headers=stack.admin_headers,
        timeout=10,
        json={"rules": body, "author": "tests", "reason": "bad"},
    )

    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert "rule 'to-nowhere'" in detail
    assert "action.route" in detail
    assert "nowhere" in detail
    # A valid rule set published next is the only new version.
    good = rules_data(standin.url, default="alpha", rules=everything_to("alpha"))
    version = publish(stack, good, reason="after bad")
    assert versions(stack) == [*before, version]


def test_restore_publishes_an_old_versions_content_as_a_new_version(
    stack: Stack, standin: StandInServer
) -> None:
    old = publish(
        stack,
        rules_data(standin.url, default="alpha", rules=everything_to("alpha")),
        reason="old",
    )
    old_content = current(stack)
    publish(
        stack,
        rules_data(standin.url, default="beta", rules=everything_to("beta")),
        reason="newer",
    )

    reply = httpx.post(
        f"{stack.api}/v1/rules/restore",
        headers=stack.admin_headers,
        timeout=10,
        json={"version": old, "author": "ops"},
    )
    assert reply.status_code == 201, reply.text
    restored = reply.json()["version"]
    assert wait_until(lambda: current(stack).get("version") == restored, 15)

    assert restored == max(versions(stack)) > old
    now = current(stack)
    assert now["reason"] == f"restore version {old}"
    assert now["author"] == "ops"
    same = ("default", "destinations", "rules")
    assert {k: now[k] for k in same} == {k: old_content[k] for k in same}
    (decision,) = delivered(stack, submit(stack, "restored@gmail.com"))["decisions"]
    assert (decision["ruleset_version"], decision["destination"]) == (restored, "alpha")


def test_restoring_an_unknown_version_is_404(stack: Stack) -> None:
    missing = max(versions(stack)) + 100

    reply = httpx.post(
        f"{stack.api}/v1/rules/restore",
        headers=stack.admin_headers,
        timeout=10,
        json={"version": missing, "author": "ops"},
    )

    assert reply.status_code == 404
    assert str(missing) in reply.json()["detail"]


def test_simulating_a_message_returns_the_decision_and_sends_nothing(
    stack: Stack, standin: StandInServer
) -> None:
    live = publish(
        stack,
        rules_data(standin.url, default="alpha", rules=everything_to("alpha")),
        reason="sim",
    )
    before = versions(stack)
    recipient = f"simulated-{uuid.uuid4().hex[:8]}@gmail.com"
    message = {
        "message_id": "<sim-1@shop.example>",
        "from_addr": "app@shop.example",
        "to": [recipient],
        "stream": "transactional",
        "subaccount": "shop",
    }
    candidate = rules_data(standin.url, default="beta", rules=everything_to("beta"))

    with_live = httpx.post(
        f"{stack.api}/v1/rules/simulate",
        headers=stack.admin_headers,
        timeout=10,
        json={"message": message},
    )
    with_candidate = httpx.post(
        f"{stack.api}/v1/rules/simulate",
        headers=stack.admin_headers,
        timeout=10,
        json={"message": message, "rules": candidate},
    )

    assert with_live.status_code == 200, with_live.text
    (decision,) = with_live.json()["decisions"]
    assert decision["recipient"] == recipient
    assert (
        decision["ruleset_version"],
        decision["destination"],
        decision["action"],
    ) == (live, "alpha", "route")
    assert with_live.json()["summary"]["by_destination"] == {"alpha": 1}
    assert with_candidate.json()["decisions"][0]["destination"] == "beta"
    # A real message sent afterwards arrives; the simulated one never does.
    delivered(stack, submit(stack, "after-simulation@gmail.com"))
    assert "after-simulation@gmail.com" in sent_to(standin)
    assert recipient not in sent_to(standin)
    assert versions(stack) == before  # trying a candidate publishes nothing


def test_simulating_a_recorded_time_range_counts_volume_per_destination(
    stack: Stack, standin: StandInServer
) -> None:
    publish(
        stack,
        rules_data(
            standin.url,
            default="beta",
            rules=[
                {
                    "name": "transactional-on-alpha",
                    "condition": {"stream": {"equals": "transactional"}},
                    "action": {"route": "alpha"},
                }
            ],
        ),
        reason="range",
    )
    start = datetime.now(UTC) - timedelta(milliseconds=50)
    for n in range(3):
        submit(stack, f"range-t{n}@gmail.com")
    for n in range(2):
        submit(stack, f"range-m{n}@gmail.com", stream="marketing")
    end = datetime.now(UTC) + timedelta(milliseconds=50)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    everything_beta = rules_data(
        standin.url, default="beta", rules=everything_to("beta")
    )

    live = httpx.post(
        f"{stack.api}/v1/rules/simulate",
        headers=stack.admin_headers,
        timeout=30,
        json=window,
    )
    what_if = httpx.post(
        f"{stack.api}/v1/rules/simulate",
        headers=stack.admin_headers,
        timeout=30,
        json={**window, "rules": everything_beta},
    )

    assert live.status_code == 200, live.text
    assert live.json()["messages"] == 5
    summary = live.json()["summary"]
    assert summary["by_destination"] == {"alpha": 3, "beta": 2}
    assert summary["by_rule"] == {"transactional-on-alpha": 3, "(default)": 2}
    assert what_if.json()["summary"]["by_destination"] == {"beta": 5}


def test_rule_sets_published_at_once_each_get_their_own_version(
    stack: Stack, standin: StandInServer
) -> None:
    reasons = [f"at once {n}" for n in range(6)]

    def post(reason: str) -> httpx.Response:
        return httpx.post(
            f"{stack.api}/v1/rules",
            headers=stack.admin_headers,
            timeout=10,
            json={
                "rules": rules_data(
                    standin.url, default="alpha", rules=everything_to("alpha")
                ),
                "author": "tests",
                "reason": reason,
            },
        )

    with ThreadPoolExecutor(len(reasons)) as pool:
        replies = list(pool.map(post, reasons))

    assert [r.status_code for r in replies] == [201] * len(reasons)
    got = {r.json()["version"]: reason for r, reason in zip(replies, reasons)}
    assert len(got) == len(reasons), [r.json() for r in replies]
    assert wait_until(lambda: current(stack).get("version") == max(got), 15)
    # Every one of them is kept, none overwritten by another with its number.
    listed = {
        v["version"]: v["reason"]
        for v in httpx.get(
            f"{stack.api}/v1/rules/versions", headers=stack.admin_headers, timeout=10
        ).json()
    }
    assert {v: listed.get(v) for v in got} == got
