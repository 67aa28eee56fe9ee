"""The router and subaccounts: own rules, pins, suspensions, deleted ones.

Each test routes a submitted message with a real :class:`Router` over a
tenant directory and reads back the records it would produce (decisions,
dispatches, rejected events), decoded with the agents' own codecs. The
installation sends Gmail to ``backup`` and everything else to ``primary``.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any

import pytest

from mailyard.codec import codec
from mailyard.model import EmailEvent
from mailyard.tenancy import Subaccount, TenantDirectory, subaccount_record
from mailyard.topics import DECISIONS, DISPATCH, EVENTS
from streams.normalize import decode_event
from streams.router import Routed, Router
from streams.rules import EngineBook
from streams.state import SuppressionList, suppression_key
from tests.rules_factories import make_engine, rule

_DECISION = codec("routing_decision")
_DISPATCH = codec("dispatch")
GMAIL_TO_BACKUP = rule(
    "gmail-to-backup",
    {"route": "backup"},
    {"recipient_domain": {"equals": "gmail.com"}},
)
ALL_TO_VIP = rule("all-to-vip", {"route": "vip"})


def submitted(
    subaccount: str | None, *to: str, cc: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "message_id": f"<{subaccount}-1@shop.example>",
        "subaccount": subaccount,
        "stream": "transactional",
        "from_addr": "app@shop.example",
        "to": list(to),
        "cc": list(cc),
        "bcc": [],
        "subject": "Receipt",
        "text": "Thanks.",
        "html": None,
        "raw_mime": None,
        "headers": {},
        "tags": [],
        "metadata": {},
        "size_bytes": 100,
    }


def own_rules(subaccount: str, *rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "subaccount": subaccount,
        "version": 2,
        "author": "tests",
        "created_at": "2026-02-01T00:00:00Z",
        "reason": "test",
        "rules": list(rules),
    }


MakeRouter = Callable[..., Router]


@pytest.fixture
def suppressions() -> SuppressionList:
    return SuppressionList()


@pytest.fixture
def make_router(suppressions: SuppressionList) -> MakeRouter:
    """A router over ``subaccounts`` (the directory) and ``own`` rules by name."""

    def make(
        *subaccounts: Subaccount,
        own: dict[str, dict[str, Any]] | None = None,
        tenants: bool = True,
    ) -> Router:
        directory = TenantDirectory()
        for sub in subaccounts:
            key, value = subaccount_record(sub)
            directory.apply(key.decode(), value)
        found = own or {}
        book = EngineBook(make_engine(GMAIL_TO_BACKUP), found.get)
        return Router(book, suppressions, tenants=directory if tenants else None)

    return make


def suppress(suppressions: SuppressionList, subaccount: str, address: str) -> None:
    key = suppression_key(subaccount, address).encode()
    value = json.dumps({"reason": "hard bounce"}).encode()
    suppressions.on_record(types.SimpleNamespace(key=key, value=value))


def decisions(routed: Routed) -> list[dict[str, Any]]:
    return [_DECISION.decode(v) for t, _, v in routed.records if t == DECISIONS.name]


def dispatches(routed: Routed) -> list[dict[str, Any]]:
    return [_DISPATCH.decode(v) for t, _, v in routed.records if t == DISPATCH.name]


def rejected(routed: Routed) -> list[EmailEvent]:
    return [decode_event(v) for t, _, v in routed.records if t == EVENTS.name]


def test_own_rules_route_only_their_subaccounts_mail(make_router: MakeRouter) -> None:
    router = make_router(
        Subaccount("shop"),
        Subaccount("cafe"),
        own={"shop": own_rules("shop", ALL_TO_VIP)},
    )

    shop = router.route(submitted("shop", "jane@gmail.com"))
    cafe = router.route(submitted("cafe", "jane@gmail.com"))

    (own,) = decisions(shop)
    assert (own["rule"], own["destination"], own["subaccount"]) == (
        "all-to-vip",
        "vip",
        "shop",
    )
    assert (own["ruleset_version"], own["subaccount_ruleset_version"]) == (3, 2)
    assert [d["destination"] for d in dispatches(shop)] == ["vip"]
    (installation,) = decisions(cafe)
    assert (installation["rule"], installation["destination"]) == (
        "gmail-to-backup",
        "backup",
    )
    assert installation["subaccount"] == "cafe"
    assert installation["subaccount_ruleset_version"] is None


def test_pinned_subaccount_sends_every_recipient_to_its_destination(
    make_router: MakeRouter,
) -> None:
    router = make_router(
        Subaccount("shop", pinned_destination="third"),
        own={"shop": own_rules("shop", ALL_TO_VIP)},
    )

    routed = router.route(
        submitted("shop", "jane@gmail.com", "joe@example.org", cc=("ann@outlook.com",))
    )

    assert [
        (d["action"], d["rule"], d["destination"], d["subaccount"])
        for d in decisions(routed)
    ] == [("route", "pinned:shop", "third", "shop")] * 3
    assert [d["destination"] for d in dispatches(routed)] == ["third"] * 3
    assert routed.dispatched == 3


def test_pinned_subaccount_still_respects_the_suppression_list(
    make_router: MakeRouter, suppressions: SuppressionList
) -> None:
    suppress(suppressions, "shop", "jane@gmail.com")
    router = make_router(Subaccount("shop", pinned_destination="third"))

    routed = router.route(submitted("shop", "jane@gmail.com", "joe@example.org"))

    (event,) = rejected(routed)
    assert (event.type, event.recipient) == ("rejected", "jane@gmail.com")
    assert event.reason == "on the suppression list: hard bounce"
    assert [d["recipient"] for d in dispatches(routed)] == ["joe@example.org"]


def test_pin_to_an_undeclared_destination_holds_naming_it(
    make_router: MakeRouter,
) -> None:
    router = make_router(Subaccount("shop", pinned_destination="retired"))

    routed = router.route(submitted("shop", "jane@gmail.com"))

    (decision,) = decisions(routed)
    assert (decision["action"], decision["rule"], decision["destination"]) == (
        "hold",
        "pinned:shop",
        None,
    )
    assert "'retired'" in decision["reason"]
    assert "rule set version 3" in decision["reason"]
    assert dispatches(routed) == [] and routed.held == 1


def test_suspended_subaccount_is_rejected_per_recipient_and_never_sent(
    make_router: MakeRouter,
) -> None:
    router = make_router(
        Subaccount("shop", status="suspended", pinned_destination="vip"),
        own={"shop": own_rules("shop", ALL_TO_VIP)},
    )

    routed = router.route(submitted("shop", "jane@gmail.com", "joe@example.org"))

    assert dispatches(routed) == []
    events = rejected(routed)
    assert [(e.type, e.recipient, e.reason, e.subaccount) for e in events] == [
        ("rejected", "jane@gmail.com", "subaccount suspended", "shop"),
        ("rejected", "joe@example.org", "subaccount suspended", "shop"),
    ]
    assert {(d["action"], d["reason"], d["subaccount"]) for d in decisions(routed)} == {
        ("suppress", "subaccount suspended", "shop")
    }
    assert routed.rejected == 2


def test_retry_of_a_subaccount_suspended_since_is_rejected(
    make_router: MakeRouter,
) -> None:
    active = make_router(Subaccount("shop"))
    (first,) = dispatches(active.route(submitted("shop", "jane@gmail.com")))
    suspended = make_router(Subaccount("shop", status="suspended"))

    routed = suspended.reroute({**first, "attempt": 2, "destination": None})

    assert dispatches(routed) == []
    (event,) = rejected(routed)
    assert event.reason == "subaccount suspended"


def test_deleted_subaccount_is_routed_by_the_installation_rules(
    make_router: MakeRouter,
) -> None:
    # Its own rules are still on the topic; the directory no longer has it.
    router = make_router(
        Subaccount("cafe"), own={"shop": own_rules("shop", ALL_TO_VIP)}
    )

    routed = router.route(submitted("shop", "jane@gmail.com"))

    (decision,) = decisions(routed)
    assert (decision["rule"], decision["destination"]) == ("gmail-to-backup", "backup")
    assert decision["subaccount"] == "shop"
    assert decision["subaccount_ruleset_version"] is None


def test_message_without_subaccount_is_decided_by_the_installation(
    make_router: MakeRouter,
) -> None:
    router = make_router(
        Subaccount("shop"), own={"shop": own_rules("shop", ALL_TO_VIP)}
    )

    (decision,) = decisions(router.route(submitted(None, "jane@gmail.com")))

    assert (decision["destination"], decision["subaccount"]) == ("backup", None)


def test_router_without_a_directory_uses_the_installation_rules(
    make_router: MakeRouter,
) -> None:
    router = make_router(own={"shop": own_rules("shop", ALL_TO_VIP)}, tenants=False)

    (decision,) = decisions(router.route(submitted("shop", "jane@gmail.com")))

    assert (decision["destination"], decision["subaccount"]) == ("backup", "shop")


def test_suppressed_recipient_decision_names_its_subaccount(
    make_router: MakeRouter, suppressions: SuppressionList
) -> None:
    suppress(suppressions, "shop", "jane@gmail.com")
    router = make_router(Subaccount("shop"))

    (decision,) = decisions(router.route(submitted("shop", "jane@gmail.com")))

    assert (decision["action"], decision["subaccount"]) == ("suppress", "shop")
