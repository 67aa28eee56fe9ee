"""Loading, versioning, round trips, the example files and the Avro records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailyard.codec import Codec, load_schema
from streams.rules import (
    Decision,
    HealthSnapshot,
    Message,
    RuleSet,
    RuleValidationError,
    StaticHealth,
    load_rules,
    simulate,
    summarize,
)
from tests.rules_factories import NOON_MONDAY, make_message, ruleset_data

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example_messages() -> list[Message]:
    paths = sorted((EXAMPLES / "messages").glob("*.json"))
    return [Message.from_record(json.loads(p.read_text())) for p in paths]


def test_example_rule_file_validates_with_its_header() -> None:
    ruleset = load_rules(EXAMPLES / "rules.yaml")

    assert ruleset.version == 7 and ruleset.author == "ops@mailyard.example"
    assert ruleset.created_at == "2026-11-20T09:30:00Z"
    assert ruleset.default == "primary-sendgrid"
    assert "vip" in [r.name for r in ruleset.rules]
    assert ruleset.destinations["marketing-mailgun"].max_rate == 100.0
    assert ruleset.destinations["backup-ses"].credentials_env == "AWS_SES_SMTP_SECRET"


def test_example_rule_file_loads_from_a_path_string_too() -> None:
    assert load_rules(str(EXAMPLES / "rules.yaml")) == load_rules(
        EXAMPLES / "rules.yaml"
    )


def test_to_dict_from_dict_round_trip_is_equal_and_stable() -> None:
    ruleset = load_rules(EXAMPLES / "rules.yaml")
    again = RuleSet.from_dict(ruleset.to_dict())

    assert again == ruleset
    assert again.to_dict() == ruleset.to_dict()
    assert json.loads(json.dumps(ruleset.to_dict())) == ruleset.to_dict()


def test_json_text_loads_like_yaml() -> None:
    data = ruleset_data([{"name": "r", "action": {"route": "backup"}}])
    ruleset = load_rules(json.dumps(data, indent=2))

    assert [r.name for r in ruleset.rules] == ["r"] and ruleset.version == 3


def test_unquoted_yaml_timestamp_is_kept_as_iso_text() -> None:
    text = json.dumps(ruleset_data([{"name": "r", "action": {"hold": True}}]))
    text = text.replace('"2026-01-05T08:00:00Z"', "2026-01-05T08:00:00Z")

    assert load_rules(text).created_at == "2026-01-05T08:00:00Z"


def test_destinations_can_come_from_a_separate_file(tmp_path: Path) -> None:
    data = ruleset_data([{"name": "r", "action": {"route": "remote"}}])
    extra = {"destinations": [{"name": "remote", "kind": "smtp_direct"}]}
    (tmp_path / "dest.yaml").write_text(json.dumps(extra))
    ruleset = load_rules(json.dumps(data), destinations=tmp_path / "dest.yaml")

    assert "remote" in ruleset.destinations
    with pytest.raises(RuleValidationError, match="unknown destination 'remote'"):
        load_rules(json.dumps(data))


def test_simulating_the_examples_routes_and_fails_over() -> None:
    ruleset = load_rules(EXAMPLES / "rules.yaml")
    sick = HealthSnapshot(volume=1200, deferral_rate=0.35)
    health = StaticHealth({"primary-sendgrid": sick})
    decisions = simulate(ruleset, example_messages(), health, clock=lambda: NOON_MONDAY)
    by_recipient = {d.recipient: d for d in decisions}

    outlook = by_recipient["Jane.Doe@outlook.com"]
    assert outlook.rule == "marketing-split"
    assert outlook.throttle_key is not None and outlook.throttle_key.endswith(
        "/microsoft"
    )
    assert by_recipient["sam@gmail.com"].destination == "backup-ses"
    assert summarize(decisions)["by_rule"] == {
        "marketing-split": 1,
        "transactional-failover": 2,
    }


def test_summary_counts_destinations_and_undecided_recipients() -> None:
    ruleset = load_rules(EXAMPLES / "rules.yaml")
    messages = [
        make_message(stream="other", to=["a@corp.example"], cc=["b@example.com"])
    ]
    summary = summarize(simulate(ruleset, messages, StaticHealth()))

    assert summary["by_destination"] == {"primary-sendgrid": 1, "(none)": 1}
    assert summary["by_action"] == {"default": 1, "suppress": 1}


def test_submitted_message_round_trips_through_avro() -> None:
    codec = Codec(load_schema("submitted_message"))
    message = example_messages()[0]

    assert codec.name == "dev.mailyard.SubmittedMessage"
    assert (
        Message.from_record(codec.decode(codec.encode(message.to_record()))) == message
    )


def test_routing_decision_round_trips_through_avro() -> None:
    codec = Codec(load_schema("routing_decision"))
    decision = Decision(
        message_id="<m@x>",
        recipient="a@outlook.com",
        rule="fo",
        ruleset_version=9,
        action="failover",
        destination="backup",
        throttle_key="backup/microsoft",
        throttle_rate=2.5,
        tags=["vip"],
        metadata={"tier": "gold"},
        rejected=[("primary", "deferral_rate 0.35 > 0.20 over 1200 events")],
    )
    decoded = codec.decode(codec.encode(decision.to_dict()))

    assert codec.name == "dev.mailyard.RoutingDecision"
    assert Decision.from_dict(decoded) == decision


def test_avro_schemas_have_a_field_for_every_dataclass_field() -> None:
    message_fields = {f["name"] for f in load_schema("submitted_message")["fields"]}
    decision_fields = {f["name"] for f in load_schema("routing_decision")["fields"]}

    # The schema also carries the content (text, html, raw MIME) routing ignores.
    assert set(make_message().to_record()) <= message_fields
    assert decision_fields == set(Decision("m", "r", None, 1, "hold", None).to_dict())
