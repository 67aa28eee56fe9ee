"""Rule order, non-terminal actions, sticky splits, throttles and reloads."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from streams.rules import sticky_fraction
from tests.rules_factories import make_engine, make_message, make_ruleset, rule

SHOP = {"subaccount": {"equals": "shop"}}
MARKETING = {"stream": {"equals": "marketing"}}


def split(a: float, b: float) -> dict[str, object]:
    shares = [{"destination": "primary", "weight": a}]
    return {"split": [*shares, {"destination": "backup", "weight": b}]}


def test_first_matching_rule_wins_even_when_later_ones_match() -> None:
    engine = make_engine(
        rule("no-match", {"route": "third"}, {"stream": {"equals": "other"}}),
        rule("first", {"route": "backup"}, SHOP),
        rule("second", {"route": "vip"}, MARKETING),
    )
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("first", "backup")
    assert decision.action == "route" and decision.ruleset_version == 3


def test_no_matching_rule_falls_back_to_the_default_destination() -> None:
    engine = make_engine(
        rule("other", {"route": "backup"}, {"stream": {"equals": "x"}})
    )
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert decision.rule is None
    assert (decision.action, decision.destination) == ("default", "primary")


def test_annotate_continues_and_later_rules_see_the_added_tag() -> None:
    engine = make_engine(
        rule(
            "mark", {"annotate": {"tags": ["vip"], "metadata": {"tier": "gold"}}}, SHOP
        ),
        rule("by-tag", {"route": "vip"}, {"tags": {"equals": "vip"}}),
    )
    message = make_message()
    decision = engine.decide(message, "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("by-tag", "vip")
    assert decision.tags == ["vip"] and decision.metadata == {"tier": "gold"}
    assert message.tags == ["spring"], "the submitted message is not changed"


def test_annotations_survive_to_the_default_decision() -> None:
    engine = make_engine(rule("mark", {"annotate": {"tags": ["seen"]}}))
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert decision.action == "default" and decision.tags == ["seen"]


def test_suppress_and_hold_have_no_destination_and_keep_the_reason() -> None:
    engine = make_engine(
        rule(
            "gone", {"suppress": {"reason": "unsubscribed"}}, {"tags": {"equals": "x"}}
        ),
        rule("later", {"hold": {"reason": "night"}}),
    )
    held = engine.decide(make_message(), "jane@gmail.com")
    gone = engine.decide(make_message(tags=["x"]), "jane@gmail.com")

    assert (held.action, held.destination, held.reason) == ("hold", None, "night")
    assert (gone.action, gone.destination) == ("suppress", None)
    assert gone.reason == "unsubscribed" and gone.throttle_key is None


def test_throttle_per_provider_keys_on_destination_and_provider() -> None:
    engine = make_engine(
        rule(
            "ms",
            {"throttle": {"rate": "120/min", "per": ["destination", "provider"]}},
            {"provider": {"equals": "microsoft"}},
        ),
        rule("to-backup", {"route": "backup"}),
    )
    slow = engine.decide(make_message(), "sam@outlook.com")
    normal = engine.decide(make_message(), "sam@gmail.com")

    assert (slow.throttle_key, slow.throttle_rate) == ("backup/microsoft", 2.0)
    assert (normal.throttle_key, normal.throttle_rate) == (None, None)


def test_first_matching_throttle_wins() -> None:
    engine = make_engine(
        rule("tight", {"throttle": {"rate": 5}}, SHOP),
        rule("loose", {"throttle": {"rate": 500}}),
    )
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.throttle_key, decision.throttle_rate) == ("primary", 5.0)


def test_destination_max_rate_applies_without_a_throttle_rule() -> None:
    engine = make_engine(rule("v", {"route": "vip"}))
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.throttle_key, decision.throttle_rate) == ("vip", 20.0)


def test_sticky_split_is_within_one_percent_over_100k_recipients() -> None:
    engine = make_engine(rule("split", split(80, 20), MARKETING))
    message = make_message()
    counts = Counter(
        engine.decide(message, f"user{i}@example.org").destination
        for i in range(100_000)
    )

    assert abs(counts["primary"] / 100_000 - 0.80) < 0.01
    assert abs(counts["backup"] / 100_000 - 0.20) < 0.01


def test_split_sends_a_recipient_the_same_way_across_messages_and_case() -> None:
    engine = make_engine(rule("split", split(50, 50)))
    first = [
        engine.decide(make_message(message_id=f"<{i}@x>"), f"User{i}@Example.org")
        for i in range(200)
    ]
    again = [
        engine.decide(make_message(message_id="<other@x>"), f"user{i}@example.org")
        for i in range(200)
    ]

    assert [d.destination for d in first] == [d.destination for d in again]
    assert {d.destination for d in first} == {"primary", "backup"}


def test_split_is_sticky_per_subaccount_not_across_them() -> None:
    fractions = {sticky_fraction(f"sub-{i}", "jane@gmail.com") for i in range(50)}

    assert len(fractions) == 50


@given(st.text(max_size=30), st.emails())
def test_sticky_fraction_is_in_unit_interval_and_case_blind(
    subaccount: str, recipient: str
) -> None:
    value = sticky_fraction(subaccount, recipient)

    assert 0.0 <= value < 1.0
    assert value == sticky_fraction(subaccount, recipient.upper())


def test_reload_switches_rules_and_version_for_the_next_decision() -> None:
    engine = make_engine(rule("a", {"route": "backup"}))
    before = engine.decide(make_message(), "jane@gmail.com")
    engine.reload(make_ruleset(rule("b", {"route": "third"}), version=4))
    after = engine.decide(make_message(), "jane@gmail.com")

    assert (before.rule, before.ruleset_version) == ("a", 3)
    assert (after.rule, after.destination, after.ruleset_version) == ("b", "third", 4)


def test_guard_index_keeps_rule_order_across_fields() -> None:
    # Rules guarded on different fields must still be tried in file order.
    engine = make_engine(
        rule("by-provider", {"route": "third"}, {"provider": {"equals": "gmail"}}),
        rule("by-sub", {"route": "backup"}, SHOP),
        rule("by-stream", {"route": "vip"}, MARKETING),
    )

    assert engine.decide(make_message(), "a@gmail.com").rule == "by-provider"
    assert engine.decide(make_message(), "a@yahoo.com").rule == "by-sub"
    assert (
        engine.decide(make_message(subaccount="x"), "a@yahoo.com").rule == "by-stream"
    )
    assert (
        engine.decide(make_message(subaccount="x", stream="y"), "a@me.com").rule is None
    )


def test_rules_skipped_by_presence_still_match_after_annotate_adds_the_key() -> None:
    engine = make_engine(
        rule("late", {"route": "vip"}, {"metadata.tier": {"equals": "gold"}}),
        rule("mark", {"annotate": {"metadata": {"tier": "gold"}}}, SHOP),
        rule("after", {"route": "third"}, {"metadata.tier": {"exists": True}}),
    )
    decision = engine.decide(make_message(), "jane@gmail.com")

    assert (decision.rule, decision.destination) == ("after", "third")


def test_header_and_tag_guards_pick_the_right_rule_per_message() -> None:
    engine = make_engine(
        rule("gold", {"route": "vip"}, {"headers.X-Tier": {"regex": "^gold"}}),
        rule(
            "tagged",
            {"route": "backup"},
            {"any": [{"tags": {"equals": "a"}}, {"tags": {"in": ["b", "c"]}}]},
        ),
    )
    gold = make_message(headers={"x-tier": "gold-plus"})

    assert engine.decide(gold, "j@gmail.com").rule == "gold"
    assert engine.decide(make_message(tags=["c"]), "j@gmail.com").rule == "tagged"
    assert engine.decide(make_message(), "j@gmail.com").rule is None
