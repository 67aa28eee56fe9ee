"""A subaccount's own rules: composition, validation, rebuilds, storage.

The installation's rule set comes from :mod:`tests.rules_factories`
(destinations ``primary``, ``backup``, ``third`` and ``vip``, default
``primary``, version 3); the subaccount is ``shop``, the factories'
message's own.
"""

from __future__ import annotations

import copy
import json
import types
from typing import Any

import pytest

from mailyard.codec import Codec, codec, load_schema
from streams.rules import (
    Decision,
    Engine,
    EngineBook,
    HealthSnapshot,
    RuleValidationError,
    StaticHealth,
    SubaccountRules,
    simulate,
)
from streams.state import MessageIndex, RulesStore
from tests.rules_factories import (
    DESTINATIONS,
    NOON_MONDAY,
    make_engine,
    make_message,
    make_ruleset,
    rule,
)

GMAIL = {"recipient_domain": {"equals": "gmail.com"}}
GMAIL_TO_BACKUP = rule("gmail-to-backup", {"route": "backup"}, GMAIL)


def own_data(*rules: dict[str, Any], version: int = 1, **top: Any) -> dict[str, Any]:
    """A subaccount rule set as published, for ``shop``."""
    data: dict[str, Any] = {
        "subaccount": "shop",
        "version": version,
        "author": "shop-admin@example.org",
        "created_at": "2026-02-01T09:00:00Z",
        "reason": "test",
        "rules": list(rules),
    }
    data.update(top)
    return data


def make_own(*rules: dict[str, Any], version: int = 1) -> SubaccountRules:
    destinations = make_ruleset(GMAIL_TO_BACKUP).destinations
    return SubaccountRules.from_dict(own_data(*rules, version=version), destinations)


def shop_engine(
    *own: dict[str, Any],
    installation: tuple[dict[str, Any], ...] = (),
    health: StaticHealth | None = None,
) -> Engine:
    base = make_engine(*(installation or (GMAIL_TO_BACKUP,)), health=health)
    return base.with_own(make_own(*own, version=7))


# --- composition -------------------------------------------------------------


def test_own_rule_decides_before_the_installations_rules() -> None:
    engine = shop_engine(rule("all-to-vip", {"route": "vip"}))

    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("all-to-vip", "vip")
    assert decision.subaccount_ruleset_version == 7
    assert decision.ruleset_version == 3  # the installation's, whose vip it is
    assert decision.subaccount == "shop"


def test_installation_rules_decide_when_no_own_rule_matches() -> None:
    transactional = {"stream": {"equals": "transactional"}}
    engine = shop_engine(rule("receipts-to-vip", {"route": "vip"}, transactional))

    marketing = engine.decide(make_message(), "jane@gmail.com")
    fallback = engine.decide(make_message(), "jane@example.org")

    assert (marketing.rule, marketing.destination) == ("gmail-to-backup", "backup")
    assert marketing.subaccount_ruleset_version is None
    assert (fallback.rule, fallback.action, fallback.destination) == (
        None,
        "default",
        "primary",
    )
    assert fallback.subaccount_ruleset_version is None


def test_same_rule_name_in_both_sets_is_told_apart_by_the_version() -> None:
    vip_tag = {"tags": {"in": ["vip"]}}
    engine = shop_engine(
        rule("route-all", {"route": "vip"}, vip_tag),
        installation=(rule("route-all", {"route": "backup"}),),
    )

    own = engine.decide(make_message(tags=["vip"]), "jane@gmail.com")
    installation = engine.decide(make_message(), "jane@gmail.com")

    assert (own.rule, own.destination, own.subaccount_ruleset_version) == (
        "route-all",
        "vip",
        7,
    )
    assert (installation.rule, installation.destination) == ("route-all", "backup")
    assert installation.subaccount_ruleset_version is None


def test_the_installation_engine_is_unchanged_by_a_subaccount_engine() -> None:
    base = make_engine(GMAIL_TO_BACKUP)
    base.with_own(make_own(rule("all-to-vip", {"route": "vip"})))

    decision = base.decide(make_message(), "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("gmail-to-backup", "backup")
    assert decision.subaccount == "shop"


def test_installation_rules_see_tags_an_own_rule_added() -> None:
    engine = shop_engine(
        rule("mark", {"annotate": {"tags": ["bulk"]}}),
        installation=(
            rule("bulk-to-third", {"route": "third"}, {"tags": {"in": ["bulk"]}}),
        ),
    )

    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("bulk-to-third", "third")
    assert decision.tags == ["bulk"]


def test_installation_throttle_applies_when_an_own_rule_decides() -> None:
    per_subaccount = rule("fair-share", {"throttle": {"rate": 5, "per": "subaccount"}})
    engine = shop_engine(
        rule("all-to-backup", {"route": "backup"}),
        installation=(per_subaccount, GMAIL_TO_BACKUP),
    )

    decision = engine.decide(make_message(), "jane@gmail.com")

    assert decision.rule == "all-to-backup"
    assert (decision.throttle_key, decision.throttle_rate) == ("shop", 5.0)


def test_destination_limit_applies_to_an_own_route() -> None:
    engine = shop_engine(rule("all-to-vip", {"route": "vip"}))

    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.throttle_key, decision.throttle_rate) == ("vip", 20.0)


def test_own_failover_trips_apart_from_an_installation_rule_of_the_same_name() -> None:
    def failover(second: str, trip: float) -> dict[str, Any]:
        return {
            "failover": {
                "destinations": ["primary", second],
                "trip": {"deferral_rate": trip},
            }
        }

    health = StaticHealth({"primary": HealthSnapshot(volume=1000, deferral_rate=0.3)})
    base = make_engine(rule("fo", failover("backup", 0.2)), health=health)
    own = base.with_own(make_own(rule("fo", failover("third", 0.5))))

    installation = base.decide(make_message(subaccount=None), "jane@gmail.com")
    shop = own.decide(make_message(), "jane@gmail.com")

    assert installation.destination == "backup"
    # The installation's trip of primary is not the subaccount's: 0.3 < 0.5.
    assert (shop.destination, shop.subaccount_ruleset_version) == ("primary", 1)
    assert base.state is own.state
    assert ("fo", "primary", None) in base.state.tripped()
    assert ("shop/fo", "primary", None) not in base.state.tripped()


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "condition", "field"),
    [
        ({"route": "nowhere"}, None, "action.route"),
        (
            {
                "split": [
                    {"destination": "primary", "weight": 50},
                    {"destination": "nowhere", "weight": 50},
                ]
            },
            None,
            "action.split[1].destination",
        ),
        (
            {
                "failover": {
                    "destinations": ["primary", "nowhere"],
                    "trip": {"deferral_rate": 0.2},
                }
            },
            None,
            "action.failover.destinations[1]",
        ),
        (
            {"route": "primary"},
            {"health": {"destination": "nowhere", "deferral_rate": {"gt": 0.1}}},
            "condition.health.destination",
        ),
    ],
)
def test_own_rule_naming_an_undeclared_destination_is_refused(
    action: dict[str, Any], condition: dict[str, Any] | None, field: str
) -> None:
    with pytest.raises(RuleValidationError) as caught:
        make_own(rule("to-nowhere", action, condition))

    error = caught.value
    assert (error.rule, error.field) == ("to-nowhere", field)
    assert "names unknown destination 'nowhere'" in error.problem
    assert "backup, primary, third, vip" in error.problem
    assert str(error).startswith("rule 'to-nowhere': ")


@pytest.mark.parametrize("key", ["destinations", "default"])
def test_own_rule_set_may_not_declare_destinations_or_a_default(key: str) -> None:
    data = {**own_data(rule("r", {"route": "primary"})), key: "primary"}

    with pytest.raises(RuleValidationError) as caught:
        SubaccountRules.from_dict(data, make_ruleset(GMAIL_TO_BACKUP).destinations)

    assert caught.value.field == key
    assert "installation's rule set" in caught.value.problem


def test_own_throttle_rule_is_refused_naming_the_rule() -> None:
    with pytest.raises(RuleValidationError) as caught:
        make_own(rule("faster", {"throttle": {"rate": 1000}}))

    assert (caught.value.rule, caught.value.field) == ("faster", "action.throttle")
    assert "installation's to set" in caught.value.problem


def test_own_rules_are_validated_like_the_installations() -> None:
    with pytest.raises(RuleValidationError) as caught:
        make_own(rule("twice", {"route": "vip"}), rule("twice", {"route": "primary"}))

    assert (caught.value.rule, caught.value.field) == ("twice", "name")


def test_empty_own_rule_list_leaves_the_mail_to_the_installation() -> None:
    own = make_own()
    engine = make_engine(GMAIL_TO_BACKUP).with_own(own)

    decision = engine.decide(make_message(), "jane@gmail.com")

    assert own.rules == ()
    assert (decision.rule, decision.subaccount_ruleset_version) == (
        "gmail-to-backup",
        None,
    )


def test_own_rules_round_trip_through_plain_data() -> None:
    own = make_own(rule("all-to-vip", {"route": "vip"}, GMAIL))
    destinations = make_ruleset(GMAIL_TO_BACKUP).destinations

    again = SubaccountRules.from_dict(
        json.loads(json.dumps(own.to_dict())), destinations
    )

    assert again == own


# --- the engine book: hot reload ---------------------------------------------


class Store:
    """Stands in for the rules store: the current own rules per subaccount."""

    def __init__(self) -> None:
        self.current: dict[str, dict[str, Any]] = {}

    def get(self, subaccount: str) -> dict[str, Any] | None:
        return self.current.get(subaccount)


def test_book_switches_to_a_new_own_version_and_installation_version() -> None:
    store = Store()
    book = EngineBook(make_engine(GMAIL_TO_BACKUP), store.get)
    store.current["shop"] = own_data(rule("all-to-vip", {"route": "vip"}))
    first = book.decide(make_message(), "jane@gmail.com", subaccount="shop")

    store.current["shop"] = own_data(
        rule("all-to-third", {"route": "third"}), version=2
    )
    second = book.decide(make_message(), "jane@gmail.com", subaccount="shop")
    book.installation.reload(make_ruleset(GMAIL_TO_BACKUP, version=4))
    third = book.decide(make_message(), "jane@gmail.com", subaccount="shop")

    assert (first.destination, first.subaccount_ruleset_version) == ("vip", 1)
    assert (second.destination, second.subaccount_ruleset_version) == ("third", 2)
    assert (third.destination, third.ruleset_version) == ("third", 4)


def test_book_decides_other_subaccounts_and_none_with_the_installation() -> None:
    store = Store()
    store.current["shop"] = own_data(rule("all-to-vip", {"route": "vip"}))
    book = EngineBook(make_engine(GMAIL_TO_BACKUP), store.get)

    other = book.decide(
        make_message(subaccount="cafe"), "jane@gmail.com", subaccount="cafe"
    )
    unnamed = book.decide(make_message(), "jane@gmail.com", subaccount=None)

    assert (other.destination, other.subaccount) == ("backup", "cafe")
    assert (unnamed.destination, unnamed.subaccount_ruleset_version) == ("backup", None)


def test_book_holds_mail_when_own_rules_no_longer_fit_the_installation() -> None:
    store = Store()
    told: list[tuple[str, str]] = []
    book = EngineBook(
        make_engine(GMAIL_TO_BACKUP),
        store.get,
        on_invalid=lambda s, p: told.append((s, p)),
    )
    store.current["shop"] = own_data(rule("all-to-vip", {"route": "vip"}))
    without_vip = DESTINATIONS[:3]  # vip is the last
    book.installation.reload(
        make_ruleset(GMAIL_TO_BACKUP, version=5, destinations=without_vip)
    )

    held = [
        book.decide(make_message(), r, subaccount="shop")
        for r in ("jane@gmail.com", "joe@gmail.com")
    ]

    assert [d.action for d in held] == ["hold", "hold"]
    reason = held[0].reason or ""
    assert "rule 'all-to-vip': action.route names unknown destination 'vip'" in reason
    assert "rule set version 5" in reason
    assert held[0].subaccount_ruleset_version == 1
    assert [s for s, _ in told] == ["shop"]  # told once, not per decision


def test_simulate_with_own_rules_tries_them_first() -> None:
    own = make_own(rule("all-to-vip", {"route": "vip"}))
    message = make_message(to=["a@gmail.com"], cc=["b@gmail.com"])

    decisions = simulate(
        make_ruleset(GMAIL_TO_BACKUP),
        [message],
        StaticHealth(),
        clock=lambda: NOON_MONDAY,
        own=own,
    )

    assert [(d.destination, d.subaccount_ruleset_version) for d in decisions] == [
        ("vip", 1),
        ("vip", 1),
    ]


# --- the rules topic ---------------------------------------------------------


def record(key: str, value: dict[str, Any] | None) -> Any:
    encoded = None if value is None else json.dumps(value).encode()
    return types.SimpleNamespace(key=key.encode(), value=encoded)


def test_rules_store_keeps_installation_and_subaccount_versions_apart() -> None:
    changes: list[int] = []
    store = RulesStore(lambda ruleset: changes.append(ruleset.version))
    installation = make_ruleset(GMAIL_TO_BACKUP).to_dict()

    store.on_record(record("3", installation))  # a plain key, as before
    store.on_record(record("shop/1", own_data(version=1)))
    store.on_record(record("shop/2", own_data(version=2)))
    store.on_record(record("cafe/1", {**own_data(), "subaccount": "cafe"}))

    assert changes == [3]
    assert store.current is not None and store.current.version == 3
    assert set(store.versions) == {3}
    assert set(store.subaccount_versions["shop"]) == {1, 2}
    assert (store.subaccount_rules("shop") or {})["version"] == 2
    assert store.next_subaccount_version("shop") == 3
    assert store.next_subaccount_version("new") == 1
    assert store.subaccount_rules("new") is None


def test_a_deleted_subaccount_version_gives_way_to_the_one_before() -> None:
    store = RulesStore(lambda ruleset: None)
    store.on_record(record("shop/1", own_data(version=1)))
    store.on_record(record("shop/2", own_data(version=2)))

    store.on_record(record("shop/2", None))
    current = store.subaccount_rules("shop")
    store.on_record(record("shop/1", None))

    assert current is not None and current["version"] == 1
    assert store.subaccount_rules("shop") is None


# --- decisions carry the subaccount ------------------------------------------


def decision_record(value: bytes) -> Any:
    return types.SimpleNamespace(key=b"<m1@shop.example>", value=value)


def test_decision_with_its_subaccount_round_trips_through_avro() -> None:
    decision = Decision(
        "<m@x>",
        "a@gmail.com",
        "all-to-vip",
        3,
        "route",
        "vip",
        subaccount="shop",
        subaccount_ruleset_version=7,
    )
    decision_codec = codec("routing_decision")

    decoded = decision_codec.decode(decision_codec.encode(decision.to_dict()))

    assert Decision.from_dict(decoded) == decision


def test_message_index_finds_the_owner_from_a_decision() -> None:
    index = MessageIndex()
    decision = make_engine(GMAIL_TO_BACKUP).decide(make_message(), "jane@gmail.com")

    index.on_decision(
        decision_record(codec("routing_decision").encode(decision.to_dict()))
    )

    assert index.owner("<m1@shop.example>") == "shop"
    assert index.owner("<unknown@x>") is None


def test_message_index_reads_decisions_written_before_the_subaccount_field() -> None:
    before = copy.deepcopy(load_schema("routing_decision"))
    added = {"subaccount", "subaccount_ruleset_version"}
    before["fields"] = [f for f in before["fields"] if f["name"] not in added]
    old = Decision("<m1@shop.example>", "a@gmail.com", None, 2, "default", "primary")
    written = Codec(before).encode(
        {k: v for k, v in old.to_dict().items() if k not in added}
    )
    index = MessageIndex()

    index.on_decision(decision_record(written))

    entry = index.get("<m1@shop.example>")
    assert entry is not None
    (decision,) = entry["decisions"]
    assert decision["subaccount"] is None and decision["destination"] == "primary"
    assert index.owner("<m1@shop.example>") is None
