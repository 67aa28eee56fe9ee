"""The dispatcher against real local servers: an ESP stand-in and an SMTP server.

No Kafka: each test builds a dispatch record the way the router does (by
routing a submitted message with a real :class:`Router`), hands it to
:meth:`Dispatcher.dispatch` and reads the records it returns, decoded with
the same codecs the agents use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailyard.codec import codec
from mailyard.model import EmailEvent
from mailyard.topics import DISPATCH, EVENTS, REROUTE, RETRIES
from sinks.retry import RetryPolicy
from streams.dispatcher import Dispatcher, SinkPool, TokenBuckets
from streams.normalize import decode_event
from streams.producer import Record
from streams.router import Router
from streams.rules import Engine, RuleSet, StaticHealth
from streams.state import DESTINATION_KEY, ERROR_KEY, SuppressionList
from tests.smtp_fixtures import SmtpServerProcess, fault, smtp_server  # noqa: F401
from tests.standins import sendgrid
from tests.standins.server import StandInServer

_DISPATCH = codec("dispatch")
TIER_10S, TIER_60S, TIER_3600S = RETRIES[0].name, RETRIES[1].name, RETRIES[3].name
KEY_ENV = "TEST_SENDGRID_KEY"


@pytest.fixture(scope="module")
def esp() -> Iterator[tuple[StandInServer, Any]]:
    standin = sendgrid.create()
    server = StandInServer(standin.app)
    server.start()
    yield server, standin.state
    server.stop()


@pytest.fixture
def esp_state(esp: tuple[StandInServer, Any]) -> Any:
    _, state = esp
    state.reset()
    return state


def ruleset(
    esp_url: str, *, smtp_port: int | None = None, default: str = "esp"
) -> RuleSet:
    destinations: list[dict[str, Any]] = [
        {
            "name": "esp",
            "kind": "esp_http",
            "provider": "sendgrid",
            "base_url": esp_url,
            "credentials": {"api_key": KEY_ENV},
        },
    ]
    if smtp_port is not None:
        destinations.append(
            {
                "name": "relay",
                "kind": "smtp_relay",
                "host": "127.0.0.1",
                "port": smtp_port,
                "starttls": "off",
                "timeout_s": 5,
            }
        )
    return RuleSet.from_dict(
        {
            "version": 1,
            "author": "tests",
            "created_at": "2026-01-05T08:00:00Z",
            "reason": "dispatcher tests",
            "default": default,
            "destinations": destinations,
            "rules": [{"name": "everything", "action": {"route": default}}],
        }
    )


def submitted(recipient: str, number: int = 1) -> dict[str, Any]:
    return {
        "message_id": f"<dispatch-{number}@shop.example>",
        "subaccount": "shop",
        "stream": "transactional",
        "from_addr": "app@shop.example",
        "to": [recipient],
        "cc": [],
        "bcc": [],
        "subject": f"Receipt {number}",
        "text": "Thanks for your order.",
        "html": None,
        "raw_mime": None,
        "headers": {"Subject": "ignored: structural"},
        "tags": ["receipt"],
        "metadata": {"order": str(number)},
        "size_bytes": 120,
    }


def dispatch_record(rules: RuleSet, recipient: str, number: int = 1) -> dict[str, Any]:
    """What the route agent puts on the dispatch topic, decoded as the dispatch agent does."""
    router = Router(Engine(rules, StaticHealth()), SuppressionList())
    routed = router.route(submitted(recipient, number))
    (value,) = [v for topic, _, v in routed.records if topic == DISPATCH.name]
    record: dict[str, Any] = _DISPATCH.decode(value)
    return record


@pytest.fixture
async def make_dispatcher() -> AsyncIterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def make(rules: RuleSet | None, policy: RetryPolicy | None = None) -> Dispatcher:
        pool = SinkPool(environ={KEY_ENV: sendgrid.API_KEY})
        dispatcher = Dispatcher(lambda: rules, pool=pool, policy=policy)
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        await dispatcher.pool.aclose()


def events(records: list[Record]) -> list[EmailEvent]:
    return [decode_event(v) for topic, _, v in records if topic == EVENTS.name]


def others(records: list[Record]) -> list[tuple[str, dict[str, Any]]]:
    return [(t, _DISPATCH.decode(v)) for t, _, v in records if t != EVENTS.name]


# --- ESP HTTP destination -----------------------------------------------------


async def test_accepted_delivery_is_a_sent_event_naming_the_destination(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url)
    record = dispatch_record(rules, "jane@gmail.com")

    out = await make_dispatcher(rules).dispatch(record)

    (event,) = events(out)
    assert others(out) == []
    assert event.type == "sent"
    assert event.esp == "sendgrid"
    assert event.metadata[DESTINATION_KEY] == "esp"
    assert event.metadata["order"] == "1"
    assert ERROR_KEY not in event.metadata
    assert event.recipient == "jane@gmail.com"
    assert event.message_id == record["message_id"]
    (sent,) = esp_state.sent
    assert sent.recipients == ["jane@gmail.com"]
    assert event.esp_message_id == sent.provider_message_id


@pytest.mark.parametrize(
    ("base_s", "tier", "at_least_s"),
    [(1, TIER_10S, 1), (20, TIER_60S, 20), (700, TIER_3600S, 700)],
)
async def test_deferral_waits_on_the_tier_that_covers_the_backoff(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
    base_s: int,
    tier: str,
    at_least_s: int,
) -> None:
    rules = ruleset(esp[0].url)
    record = dispatch_record(rules, "jane@gmail.com")
    esp_state.control("fail_503")
    policy = RetryPolicy(base_s=base_s, jitter=0)

    before = datetime.now(UTC)
    out = await make_dispatcher(rules, policy).dispatch(record)

    (event,) = events(out)
    assert event.type == "deferred"
    assert event.metadata[ERROR_KEY] == "1"
    assert event.metadata[DESTINATION_KEY] == "esp"
    ((topic, retry),) = others(out)
    assert topic == tier
    assert retry["attempt"] == record["attempt"] + 1 == 2
    assert retry["destination"] is None  # the router decides again when it is due
    assert retry["due_at"] >= before + timedelta(seconds=at_least_s)
    assert retry["first_attempt_at"] == record["first_attempt_at"]
    assert esp_state.sent == []


async def test_deferral_past_the_maximum_age_is_a_final_failed_event(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url)
    record = dispatch_record(rules, "jane@gmail.com")
    record["first_attempt_at"] = datetime.now(UTC) - timedelta(hours=73)
    record["attempt"] = 9
    esp_state.control("fail_503")

    out = await make_dispatcher(rules, RetryPolicy(max_age_s=72 * 3600)).dispatch(
        record
    )

    assert [e.type for e in events(out)] == ["deferred", "failed"]
    final = events(out)[1]
    assert final.esp_event == "dispatch:gave-up"
    assert final.reason is not None
    assert final.reason.startswith("gave up after 9 attempts over 73.0 h")
    assert "Service Unavailable" in final.reason
    assert others(out) == []  # nothing waits on a retry tier any more


async def test_refused_request_fails_with_the_providers_words(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url)
    esp_state.control("fail_400")

    out = await make_dispatcher(rules).dispatch(
        dispatch_record(rules, "jane@gmail.com")
    )

    (event,) = events(out)
    assert event.type == "failed"
    assert event.reason is not None
    assert "the stand-in is in fail_400 mode" in event.reason
    assert event.metadata[ERROR_KEY] == "1"
    assert others(out) == []


async def test_missing_credentials_fail_with_the_variable_to_set(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
) -> None:
    rules = ruleset(esp[0].url)
    dispatcher = Dispatcher(lambda: rules, pool=SinkPool(environ={}))

    out = await dispatcher.dispatch(dispatch_record(rules, "jane@gmail.com"))

    (event,) = events(out)
    assert event.type == "failed"
    assert KEY_ENV in (event.reason or "")
    assert esp_state.sent == []


# --- SMTP relay destination -----------------------------------------------------


async def test_smtp_relay_250_is_sent(
    esp: tuple[StandInServer, Any],
    smtp_server: SmtpServerProcess,  # noqa: F811
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url, smtp_port=smtp_server.port, default="relay")
    record = dispatch_record(rules, "sam@yahoo.com")

    out = await make_dispatcher(rules).dispatch(record)

    (event,) = events(out)
    assert event.type == "sent"
    assert event.esp == "smtp_relay"
    assert event.metadata[DESTINATION_KEY] == "relay"
    (message,) = smtp_server.messages()
    assert message["rcpt_tos"] == ["sam@yahoo.com"]
    assert record["message_id"] in message["data"]


async def test_smtp_relay_451_is_deferred_with_the_code_and_retried(
    esp: tuple[StandInServer, Any],
    smtp_server: SmtpServerProcess,  # noqa: F811
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url, smtp_port=smtp_server.port, default="relay")
    smtp_server.set_mode(fault("rcpt", "451 4.7.1 Try again later"))

    out = await make_dispatcher(rules, RetryPolicy(base_s=1, jitter=0)).dispatch(
        dispatch_record(rules, "sam@yahoo.com")
    )

    (event,) = events(out)
    assert event.type == "deferred"
    assert event.smtp_code == 451
    assert event.bounce_class == "soft"
    assert "Try again later" in (event.reason or "")
    assert [topic for topic, _ in others(out)] == [TIER_10S]
    assert smtp_server.messages() == []


async def test_smtp_relay_550_is_a_hard_bounce_and_not_retried(
    esp: tuple[StandInServer, Any],
    smtp_server: SmtpServerProcess,  # noqa: F811
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url, smtp_port=smtp_server.port, default="relay")
    smtp_server.set_mode(fault("rcpt", "550 5.1.1 User unknown"))

    out = await make_dispatcher(rules).dispatch(
        dispatch_record(rules, "gone@yahoo.com")
    )

    (event,) = events(out)
    assert event.type == "bounced"
    assert event.bounce_class == "hard"
    assert event.smtp_code == 550
    assert event.enhanced_status == "5.1.1"
    assert others(out) == []


# --- Rule set changes -------------------------------------------------------------


async def test_delivery_to_a_destination_no_longer_declared_is_rerouted(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    smtp_server: SmtpServerProcess,  # noqa: F811
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    old = ruleset(esp[0].url, smtp_port=smtp_server.port, default="relay")
    record = dispatch_record(old, "sam@yahoo.com")
    new = ruleset(esp[0].url)  # "relay" is gone

    out = await make_dispatcher(new).dispatch(record)

    assert events(out) == []
    ((topic, again),) = others(out)
    assert topic == REROUTE.name
    assert again == {**record, "destination": None}
    assert out[0][1] == record["message_id"].encode()
    assert esp_state.sent == [] and smtp_server.messages() == []


async def test_delivery_before_any_rule_set_is_rerouted(
    esp: tuple[StandInServer, Any],
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    record = dispatch_record(ruleset(esp[0].url), "jane@gmail.com")

    out = await make_dispatcher(None).dispatch(record)

    assert [topic for topic, _ in others(out)] == [REROUTE.name]


# --- Throttling ---------------------------------------------------------------------


async def test_token_bucket_releases_waiters_in_arrival_order_at_the_rate() -> None:
    loop = asyncio.get_running_loop()
    buckets = TokenBuckets(clock=loop.time)
    rate = 20.0
    released: list[tuple[int, float]] = []

    async def waiter(n: int) -> None:
        await buckets.acquire("esp", rate)
        released.append((n, loop.time()))

    await asyncio.gather(*(waiter(n) for n in range(6)))

    assert [n for n, _ in released] == list(range(6))
    start = released[0][1]
    # Never early: waiter n is let go no sooner than n / rate after the first
    # (a little slack for the event loop's clock resolution).
    for n, at in released:
        assert at - start >= n / rate - 1e-3, (n, at - start)


async def test_token_buckets_of_different_keys_do_not_wait_for_each_other() -> None:
    frozen = 1000.0
    buckets = TokenBuckets(clock=lambda: frozen)
    # At 1 per second with a stopped clock the third waiter of "slow" sleeps 2 s.
    slow = [asyncio.create_task(buckets.acquire("slow", 1.0)) for _ in range(3)]
    await asyncio.sleep(0)

    await asyncio.wait_for(buckets.acquire("fast", 1.0), timeout=1.0)

    assert slow[0].done()
    assert not slow[2].done()
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)


async def test_throttled_deliveries_reach_the_provider_in_order(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url)
    records = [dispatch_record(rules, f"user{n}@gmail.com", n) for n in range(5)]
    for record in records:
        record.update(throttle_key="esp|gmail", throttle_rate=50.0)
    dispatcher = make_dispatcher(rules)

    outs = await asyncio.gather(*(dispatcher.dispatch(r) for r in records))

    assert [events(o)[0].type for o in outs] == ["sent"] * 5
    assert [m.recipients[0] for m in esp_state.sent] == [
        f"user{n}@gmail.com" for n in range(5)
    ]


async def test_a_delivery_far_over_its_rate_waits_on_a_tier_not_in_the_batch(
    esp: tuple[StandInServer, Any],
    esp_state: Any,
    make_dispatcher: Callable[..., Dispatcher],
) -> None:
    rules = ruleset(esp[0].url)
    records = [dispatch_record(rules, f"slow{n}@gmail.com", n) for n in range(3)]
    for record in records:
        record.update(throttle_key="esp|gmail", throttle_rate=1 / 60)  # 1 a minute
    dispatcher = make_dispatcher(rules)

    outs = await asyncio.wait_for(
        asyncio.gather(*(dispatcher.dispatch(r) for r in records)), timeout=30)

    assert [events(o)[0].type for o in outs[:1]] == ["sent"]
    assert [m.recipients[0] for m in esp_state.sent] == ["slow0@gmail.com"]
    for out in outs[1:]:
        assert events(out) == []  # no deferral event: health must not see one
        ((topic, held),) = others(out)
        assert topic == "mailyard.dispatch.retry.60s"
        assert held["destination"] is None and held["attempt"] == records[0]["attempt"]
