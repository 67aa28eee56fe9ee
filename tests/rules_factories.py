"""Factories for Rule Engine tests: rule sets, messages and engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.rules import Engine, HealthView, Message, RuleSet, StaticHealth

DESTINATIONS = [
    {
        "name": "primary",
        "kind": "esp_http",
        "provider": "sendgrid",
        "credentials": {"env": "SENDGRID_API_KEY"},
    },
    {"name": "backup", "kind": "esp_http", "provider": "amazon_ses"},
    {"name": "third", "kind": "smtp_direct"},
    {
        "name": "vip",
        "kind": "esp_http",
        "provider": "postmark",
        "limits": {"max_rate": 20},
    },
]
# Monday 1 December 2025, 12:00:00 UTC.
NOON_MONDAY = 1_764_590_400.0


def ruleset_data(rules: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    """A valid rule file as data, with ``rules`` and overrides of the header."""
    data: dict[str, Any] = {
        "version": 3,
        "author": "ops@example.org",
        "created_at": "2026-01-05T08:00:00Z",
        "reason": "test",
        "default": "primary",
        "destinations": DESTINATIONS,
        "rules": rules,
    }
    data.update(top)
    return data


def make_ruleset(*rules: dict[str, Any], **top: Any) -> RuleSet:
    return RuleSet.from_dict(ruleset_data(list(rules), **top))


def rule(name: str, action: dict[str, Any], condition: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "action": action}
    if condition is not None:
        out["condition"] = condition
    return out


def make_message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "message_id": "<m1@shop.example>",
        "from_addr": "news@mail.shop.example",
        "to": ["jane@gmail.com"],
        "subaccount": "shop",
        "stream": "marketing",
        "headers": {"List-Unsubscribe": "<https://shop.example/u>"},
        "tags": ["spring"],
        "metadata": {"campaign": "spring-2026", "priority": "7"},
        "size_bytes": 4_000,
    }
    fields.update(overrides)
    return Message(**fields)


def make_engine(
    *rules: dict[str, Any],
    health: HealthView | None = None,
    clock: Callable[[], float] = lambda: NOON_MONDAY,
) -> Engine:
    return Engine(make_ruleset(*rules), health or StaticHealth(), clock=clock)
