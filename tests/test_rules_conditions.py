"""Every condition operator, on scalar, list, metadata and header fields."""

from __future__ import annotations

from typing import Any

import pytest

from streams.rules import HealthSnapshot, Message, StaticHealth
from tests.rules_factories import NOON_MONDAY, make_engine, make_message, rule

HOUR = 3600.0


def matches(
    condition: dict[str, Any],
    message: Message | None = None,
    recipient: str = "jane@gmail.com",
    **engine: Any,
) -> bool:
    """Whether a rule with ``condition`` decides for this recipient."""
    eng = make_engine(rule("probe", {"route": "backup"}, condition), **engine)
    decision = eng.decide(message or make_message(), recipient)
    return decision.rule == "probe"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"subaccount": {"equals": "shop"}}, True),
        ({"subaccount": {"equals": "Shop"}}, False),
        ({"stream": {"in": ["transactional", "marketing"]}}, True),
        ({"stream": {"in": ["transactional"]}}, False),
        ({"from_domain": {"equals": "mail.shop.example"}}, True),
        ({"recipient_domain": {"equals": "gmail.com"}}, True),
        ({"provider": {"equals": "gmail"}}, True),
        ({"mailbox_provider": {"in": ["microsoft", "yahoo"]}}, False),
        ({"recipient": {"regex": "^jane@"}}, True),
        ({"subject": {"exists": True}}, False),
        ({"subject": {"exists": False}}, True),
        ({"size_bytes": {"gt": 3_999}}, True),
        ({"size_bytes": {"gt": 4_000}}, False),
        ({"size_bytes": {"gte": 4_000}}, True),
        ({"size_bytes": {"lt": 4_000}}, False),
        ({"size_bytes": {"lte": 4_000}}, True),
        ({"size_bytes": {"equals": 4_000}}, True),
    ],
)
def test_scalar_field_operators(condition: dict[str, Any], expected: bool) -> None:
    assert matches(condition) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"tags": {"equals": "spring"}}, True),
        ({"tags": {"equals": "winter"}}, False),
        ({"tags": {"in": ["winter", "spring"]}}, True),
        ({"tags": {"regex": "^spr"}}, True),
        ({"tags": {"exists": True}}, True),
        ({"metadata.campaign": {"equals": "spring-2026"}}, True),
        ({"metadata.campaign": {"regex": "2025$"}}, False),
        ({"metadata.missing": {"exists": False}}, True),
        ({"metadata.priority": {"gt": 5}}, True),
        ({"metadata.priority": {"lt": 5}}, False),
        ({"metadata.campaign": {"gt": 5}}, False),
        ({"headers.list-unsubscribe": {"exists": True}}, True),
        ({"headers.LIST-UNSUBSCRIBE": {"regex": "^<https://"}}, True),
        ({"headers.x-priority": {"exists": True}}, False),
    ],
)
def test_list_metadata_and_header_operators(
    condition: dict[str, Any], expected: bool
) -> None:
    assert matches(condition) is expected


def test_tags_exists_is_false_for_an_untagged_message() -> None:
    assert matches({"tags": {"exists": True}}, make_message(tags=[])) is False


def test_all_any_and_not_combine() -> None:
    shop = {"subaccount": {"equals": "shop"}}
    other = {"stream": {"equals": "transactional"}}

    assert matches({"all": [shop, other]}) is False
    assert matches({"any": [shop, other]}) is True
    assert matches({"not": other}) is True
    assert matches({"all": [shop, {"not": other}, {"tags": {"exists": True}}]})
    assert matches({"any": [other, {"not": shop}, {"tags": {"equals": "x"}}]}) is False


def test_recipient_provider_is_derived_per_recipient() -> None:
    outlook = {"provider": {"equals": "microsoft"}}

    assert matches(outlook, recipient="Sam@Outlook.com") is True
    assert matches(outlook, recipient="sam@gmail.com") is False
    assert matches({"provider": {"equals": "other"}}, recipient="a@corp.example")


def test_time_of_day_uses_the_injected_clock() -> None:
    office = {"time": {"hours": [9, 17]}}

    assert matches(office, clock=lambda: NOON_MONDAY) is True
    assert matches(office, clock=lambda: NOON_MONDAY + 5 * HOUR) is False
    assert matches(office, clock=lambda: NOON_MONDAY - 3 * HOUR) is True
    assert matches(office, clock=lambda: NOON_MONDAY - 4 * HOUR) is False


def test_time_range_wraps_past_midnight() -> None:
    night = {"time": {"hours": [22, 6]}}

    assert matches(night, clock=lambda: NOON_MONDAY + 11 * HOUR) is True  # 23:00
    assert matches(night, clock=lambda: NOON_MONDAY + 17 * HOUR) is True  # 05:00
    assert matches(night, clock=lambda: NOON_MONDAY + 18 * HOUR) is False  # 06:00


def test_time_days_of_week_are_utc_days() -> None:
    weekend = {"time": {"days": ["sat", "sun"]}}

    assert matches(weekend, clock=lambda: NOON_MONDAY) is False
    assert matches(weekend, clock=lambda: NOON_MONDAY - 24 * HOUR) is True  # Sunday
    assert matches({"time": {"days": ["mon"], "hours": [12, 13]}}) is True


def test_health_condition_trips_only_with_enough_volume() -> None:
    cond = {
        "health": {
            "destination": "primary",
            "deferral_rate": {"gt": 0.2},
            "min_volume": 500,
        }
    }
    busy = StaticHealth({"primary": HealthSnapshot(volume=1200, deferral_rate=0.35)})
    quiet = StaticHealth({"primary": HealthSnapshot(volume=40, deferral_rate=0.9)})
    fine = StaticHealth({"primary": HealthSnapshot(volume=1200, deferral_rate=0.05)})

    assert matches(cond, health=busy) is True
    assert matches(cond, health=quiet) is False
    assert matches(cond, health=fine) is False


def test_health_condition_by_provider_reads_the_recipients_provider() -> None:
    cond = {
        "health": {
            "destination": "primary",
            "bounce_rate": {"gte": 0.1},
            "by_provider": True,
        }
    }
    health = StaticHealth(
        {
            "primary": HealthSnapshot(volume=900, bounce_rate=0.0),
            ("primary", "microsoft"): HealthSnapshot(volume=300, bounce_rate=0.12),
        }
    )

    assert matches(cond, recipient="a@hotmail.com", health=health) is True
    assert matches(cond, recipient="a@gmail.com", health=health) is False
