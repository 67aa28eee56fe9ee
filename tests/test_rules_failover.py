"""Failover: trips on bad health, needs volume, holds steady, returns home."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.rules import (
    HealthInputError,
    HealthSnapshot,
    StaticHealth,
    WindowedHealth,
)
from tests.rules_factories import make_engine, make_message, rule

FAILOVER = {
    "failover": {
        "destinations": ["primary", "backup", "third"],
        "trip": {"deferral_rate": 0.2, "error_rate": 0.1},
        "recover": {"deferral_rate": 0.1},
        "min_volume": 200,
    }
}


def reading(deferral: float, volume: int = 1200, error: float = 0.0) -> HealthSnapshot:
    return HealthSnapshot(volume=volume, deferral_rate=deferral, error_rate=error)


@pytest.fixture
def health() -> StaticHealth:
    return StaticHealth({"primary": reading(0.01), "backup": reading(0.01)})


def test_healthy_primary_takes_the_traffic(health: StaticHealth) -> None:
    decision = make_engine(rule("fo", FAILOVER), health=health).decide(
        make_message(), "jane@gmail.com"
    )

    assert (decision.action, decision.destination) == ("failover", "primary")
    assert decision.rejected == []


def test_unhealthy_primary_trips_to_backup_with_the_reason(
    health: StaticHealth,
) -> None:
    health.set("primary", reading(0.35))
    decision = make_engine(rule("fo", FAILOVER), health=health).decide(
        make_message(), "jane@gmail.com"
    )

    assert decision.destination == "backup"
    assert decision.rejected == [
        ("primary", "deferral_rate 0.35 > 0.20 over 1200 events")
    ]


def test_error_rate_alone_also_trips(health: StaticHealth) -> None:
    health.set("primary", reading(0.0, error=0.15))
    engine = make_engine(rule("fo", FAILOVER), health=health)

    assert engine.decide(make_message(), "a@gmail.com").destination == "backup"


def test_low_volume_is_not_evidence_of_trouble(health: StaticHealth) -> None:
    health.set("primary", reading(0.9, volume=199))
    engine = make_engine(rule("fo", FAILOVER), health=health)

    assert engine.decide(make_message(), "a@gmail.com").destination == "primary"
    assert engine.state.tripped() == frozenset()


def test_between_thresholds_nothing_flaps(health: StaticHealth) -> None:
    engine = make_engine(rule("fo", FAILOVER), health=health)
    seen = []
    # Healthy, then tripped, then hovering between recover (0.1) and trip (0.2).
    for deferral in [0.15, 0.19, 0.25, 0.15, 0.11, 0.19, 0.12]:
        health.set("primary", reading(deferral))
        seen.append(engine.decide(make_message(), "a@gmail.com").destination)

    assert seen == [
        "primary",
        "primary",
        "backup",
        "backup",
        "backup",
        "backup",
        "backup",
    ]


def test_primary_returns_automatically_once_below_recover(
    health: StaticHealth,
) -> None:
    engine = make_engine(rule("fo", FAILOVER), health=health)
    health.set("primary", reading(0.3))
    assert engine.decide(make_message(), "a@gmail.com").destination == "backup"

    health.set("primary", reading(0.09))
    decision = engine.decide(make_message(), "a@gmail.com")

    assert decision.destination == "primary" and decision.rejected == []
    assert engine.state.tripped() == frozenset()


def test_tripped_reason_says_what_recovery_needs(health: StaticHealth) -> None:
    engine = make_engine(rule("fo", FAILOVER), health=health)
    health.set("primary", reading(0.3))
    engine.decide(make_message(), "a@gmail.com")
    health.set("primary", reading(0.15, volume=800))

    decision = engine.decide(make_message(), "a@gmail.com")

    assert decision.rejected == [
        ("primary", "tripped, deferral_rate 0.15 not yet below 0.10 over 800 events")
    ]


def test_all_destinations_tripped_holds_by_default(health: StaticHealth) -> None:
    for name in ("primary", "backup", "third"):
        health.set(name, reading(0.5))
    decision = make_engine(rule("fo", FAILOVER), health=health).decide(
        make_message(), "a@gmail.com"
    )

    assert (decision.action, decision.destination) == ("hold", None)
    assert [dest for dest, _ in decision.rejected] == ["primary", "backup", "third"]


def test_all_tripped_can_fall_through_to_the_last(health: StaticHealth) -> None:
    spec = {"failover": {**FAILOVER["failover"], "when_all_tripped": "last"}}
    for name in ("primary", "backup", "third"):
        health.set(name, reading(0.5))
    decision = make_engine(rule("fo", spec), health=health).decide(
        make_message(), "a@gmail.com"
    )

    assert (decision.action, decision.destination) == ("failover", "third")


def test_by_provider_trips_only_that_providers_traffic(health: StaticHealth) -> None:
    spec = {"failover": {**FAILOVER["failover"], "by_provider": True}}
    health.set("primary", reading(0.4), "microsoft")
    engine = make_engine(rule("fo", spec), health=health)

    assert engine.decide(make_message(), "a@outlook.com").destination == "backup"
    assert engine.decide(make_message(), "a@gmail.com").destination == "primary"
    assert engine.state.tripped() == {("fo", "primary", "microsoft")}


def test_windowed_health_counts_rates_over_the_window() -> None:
    now = [1_000_000.0]
    health = WindowedHealth(window=60, bucket=10, clock=lambda: now[0])
    for _ in range(3):
        health.record("primary", "gmail", "deferred", now[0])
    for _ in range(6):
        health.record("primary", "gmail", "delivered", now[0] - 15)
    health.record("primary", "gmail", "error", now[0] - 5)
    health.record("primary", "gmail", "sent", now[0])
    health.record("primary", "gmail", "complained", now[0])

    snap = health.rates("primary", "gmail")

    assert (snap.volume, snap.sent) == (10, 1)
    assert snap.deferral_rate == pytest.approx(0.3)
    assert snap.error_rate == pytest.approx(0.1)
    assert snap.complaint_rate == pytest.approx(0.1)
    assert health.rates("primary") == snap, "provider counts also roll up"
    assert health.rates("primary", "yahoo").volume == 0


def test_windowed_health_forgets_buckets_older_than_the_window() -> None:
    now = [1_000_000.0]
    health = WindowedHealth(window=60, bucket=10, clock=lambda: now[0])
    health.record("primary", None, "deferred", now[0])
    now[0] += 50
    health.record("primary", None, "delivered", now[0])
    assert health.rates("primary").volume == 2

    now[0] += 15
    assert health.rates("primary").volume == 1
    health.record("primary", None, "deferred", now[0] - 120)
    assert health.rates("primary").volume == 1, "a too-old outcome is dropped"


def test_windowed_health_accepts_datetimes_and_refuses_unknown_outcomes() -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    health = WindowedHealth(clock=when.timestamp)
    health.record("backup", None, "bounced", when)

    assert health.rates("backup").bounce_rate == 1.0
    with pytest.raises(HealthInputError, match="'opened'"):
        health.record("backup", None, "opened", when)


def test_engine_fails_over_from_windowed_health_and_returns() -> None:
    now = [2_000_000.0]
    health = WindowedHealth(window=60, bucket=10, clock=lambda: now[0])
    engine = make_engine(rule("fo", FAILOVER), health=health, clock=lambda: now[0])
    for i in range(300):
        health.record("primary", "gmail", "deferred" if i % 3 == 0 else "delivered")

    assert engine.decide(make_message(), "a@gmail.com").destination == "backup"
    now[0] += 70
    for _ in range(300):
        health.record("primary", "gmail", "delivered")
    assert engine.decide(make_message(), "a@gmail.com").destination == "primary"
