"""Rule files that are wrong are refused with the rule, field and problem named."""

from __future__ import annotations

from typing import Any

import pytest

from mailyard.errors import MailyardError
from streams.rules import RuleSet, RuleValidationError, load_rules
from tests.rules_factories import DESTINATIONS, make_ruleset, rule, ruleset_data


def refused(*rules: dict[str, Any], **top: Any) -> RuleValidationError:
    with pytest.raises(RuleValidationError) as caught:
        make_ruleset(*rules, **top)
    return caught.value


def test_split_weights_not_summing_to_100_name_rule_field_and_total() -> None:
    split = [{"destination": "primary", "weight": 70}]
    split.append({"destination": "backup", "weight": 20})
    error = refused(rule("vip-split", {"split": split}))

    assert str(error) == (
        "rule 'vip-split': action.split weights must sum to 100, got 90."
    )
    assert (error.rule, error.field) == ("vip-split", "action.split")
    assert isinstance(error, MailyardError) and isinstance(error, ValueError)


def test_unknown_destination_in_route_lists_declared_ones() -> None:
    error = refused(rule("r1", {"route": "nowhere"}))

    assert error.rule == "r1" and error.field == "action.route"
    assert "'nowhere'" in error.problem and "backup, primary" in error.problem


def test_unknown_destination_in_failover_names_its_position() -> None:
    failover = {"destinations": ["primary", "ghost"], "trip": {"error_rate": 0.1}}
    error = refused(rule("fo", {"failover": failover}))

    assert error.field == "action.failover.destinations[1]"


def test_bad_regex_names_the_nested_condition_path() -> None:
    cond = {"all": [{"stream": {"equals": "x"}}, {"subject": {"regex": "(unclosed"}}]}
    error = refused(rule("subj", {"hold": True}, cond))

    assert error.rule == "subj"
    assert error.field == "condition.all[1].subject.regex"
    assert "not a valid regular expression" in error.problem


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(?:x*)*", "(a|aa)*b", "((ab)+)+", "(x+x+)+y", r"(\w+b?\w*)+$"]
)
def test_a_regex_that_can_backtrack_exponentially_is_refused(pattern: str) -> None:
    cond = {"recipient_domain": {"regex": pattern}}
    error = refused(rule("evil", {"hold": True}, cond))

    assert error.rule == "evil"
    assert error.field == "condition.recipient_domain.regex"
    assert "exponential time" in error.problem


@pytest.mark.parametrize(
    "pattern", [r"^(?:[a-z0-9-]+\.)*example\.com$", "(foo|bar)+", r"(\d+\.)+\d+"]
)
def test_repeats_separated_by_a_fixed_part_are_allowed(pattern: str) -> None:
    cond = {"recipient_domain": {"regex": pattern}}
    ruleset = make_ruleset(rule("fine", {"hold": True}, cond))

    assert [r.name for r in ruleset.rules] == ["fine"]


def test_a_rule_file_that_is_missing_or_not_text_is_a_validation_error(
    tmp_path: Any,
) -> None:
    binary = tmp_path / "rules.yaml"
    binary.write_bytes(bytes(range(256)))

    for path in (tmp_path / "absent.yaml", binary):
        with pytest.raises(RuleValidationError, match="cannot be read"):
            load_rules(path)


def test_unknown_operator_lists_the_known_ones() -> None:
    error = refused(rule("op", {"hold": True}, {"stream": {"equal": "x"}}))

    assert error.field == "condition.stream"
    assert "'equal'" in error.problem and "equals" in error.problem


def test_unknown_field_is_refused() -> None:
    error = refused(rule("f", {"hold": True}, {"colour": {"equals": "red"}}))

    assert error.field == "condition" and "'colour'" in error.problem


def test_unknown_mailbox_provider_value_is_refused() -> None:
    error = refused(rule("p", {"hold": True}, {"provider": {"in": ["gmial"]}}))

    assert error.field == "condition.provider.in" and "'gmial'" in error.problem


def test_unknown_action_is_refused() -> None:
    error = refused(rule("a", {"bounce": True}))

    assert error.field == "action" and "'bounce'" in error.problem


def test_recover_threshold_must_be_below_trip() -> None:
    failover = {
        "destinations": ["primary", "backup"],
        "trip": {"deferral_rate": 0.2},
        "recover": {"deferral_rate": 0.3},
    }
    error = refused(rule("fo", {"failover": failover}))

    assert error.field == "action.failover.recover.deferral_rate"


def test_health_condition_on_unknown_destination_is_refused() -> None:
    cond = {"health": {"destination": "ghost", "deferral_rate": {"gt": 0.2}}}
    error = refused(rule("h", {"hold": True}, cond))

    assert error.field == "condition.health.destination"


def test_time_condition_with_bad_day_is_refused() -> None:
    error = refused(rule("t", {"hold": True}, {"time": {"days": ["funday"]}}))

    assert error.field == "condition.time.days" and "funday" in error.problem


def test_duplicate_rule_names_are_refused() -> None:
    error = refused(rule("same", {"hold": True}), rule("same", {"hold": True}))

    assert error.rule == "same" and error.field == "name"


def test_default_must_be_a_declared_destination() -> None:
    error = refused(rule("r", {"hold": True}), default="ghost")

    assert error.rule is None and error.field == "default"


def test_destination_with_inline_secret_is_refused() -> None:
    bad: dict[str, Any] = {"name": "leaky", "kind": "esp_http", "provider": "mailgun"}
    bad["credentials"] = {"api_key": "key-123"}
    data = ruleset_data([], destinations=[*DESTINATIONS, bad])
    with pytest.raises(RuleValidationError) as caught:
        RuleSet.from_dict({**data, "rules": [rule("r", {"hold": True})]})

    assert caught.value.field == "destinations.leaky.credentials.api_key"
    assert "key-123" not in str(caught.value)


def test_esp_destination_needs_a_known_provider() -> None:
    bad = {"name": "odd", "kind": "esp_http", "provider": "pigeon"}
    with pytest.raises(RuleValidationError) as caught:
        make_ruleset(rule("r", {"hold": True}), destinations=[*DESTINATIONS, bad])

    assert caught.value.field == "destinations.odd.provider"


def test_unknown_top_level_key_is_refused() -> None:
    error = refused(rule("r", {"hold": True}), rulez=[])

    assert error.field == "rule set" and "'rulez'" in error.problem


def test_text_that_is_not_yaml_is_refused() -> None:
    with pytest.raises(RuleValidationError) as caught:
        load_rules("rules: [\n  {name: broken")

    assert caught.value.field == "file"
