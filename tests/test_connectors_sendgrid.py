"""SendGrid Event Webhook: batched JSON arrays with CRLF after each event."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from connectors import sendgrid
from mailyard.errors import WebhookError
from tests.connector_fixtures import body, events

CT = "application/json;charset=utf-8"


@pytest.fixture(scope="module")
def batch() -> dict[str, object]:
    parsed = events("sendgrid", "batch.json", CT)
    return {event.esp_event: event for event in parsed} | {"_all": parsed}


def test_a_batch_yields_one_event_per_array_entry_in_body_order() -> None:
    raw = json.loads(body("sendgrid", "batch.json"))
    parsed = events("sendgrid", "batch.json", CT)
    assert [e.esp_event for e in parsed] == [item["event"] for item in raw]


def test_the_crlf_framing_sendgrid_signs_is_accepted_as_is() -> None:
    assert body("sendgrid", "batch.json").endswith(b"}\r\n]\r\n")
    assert len(events("sendgrid", "batch.json", CT)) == 12


@pytest.mark.parametrize(
    ("esp_event", "expected"),
    [
        ("processed", "queued"), ("delivered", "delivered"), ("deferred", "deferred"),
        ("dropped", "rejected"), ("open", "opened"), ("click", "clicked"),
        ("spamreport", "complained"), ("group_unsubscribe", "unsubscribed"),
        ("group_resubscribe", "subscribed"), ("account_status_change", "unknown"),
    ],
)  # fmt: skip
def test_sendgrid_events_map_to_our_types(batch, esp_event, expected) -> None:
    assert batch[esp_event].type == expected


def test_delivered_event_carries_ids_custom_args_and_tags(batch) -> None:
    event = batch["delivered"]
    assert event.timestamp == datetime(2017, 12, 15, 0, 59, 30, tzinfo=timezone.utc)
    assert event.recipient == "Zoë.Müller@gmail.com"
    assert event.mailbox_provider == "gmail"
    assert event.esp_message_id == "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    assert event.message_id == "my-0001"
    assert event.stream == "marketing"
    assert event.metadata == {"user_id": "42"}
    assert event.tags == ["cat facts", "weekly"]
    assert event.sending_ip == "167.89.101.12"
    assert event.bounce_class is None


def test_a_single_category_string_becomes_one_tag(batch) -> None:
    assert batch["processed"].tags == ["cat facts"]


def test_event_id_is_derived_from_sg_event_id(batch) -> None:
    from mailyard.model import make_event_id

    assert batch["delivered"].event_id == make_event_id(
        "sendgrid", "sZROwMGMagFgnOEmSdvhig=="
    )


def test_bounce_type_bounce_is_hard_and_blocked_is_block() -> None:
    bounces = [e for e in events("sendgrid", "batch.json", CT) if e.type == "bounced"]
    assert [(b.recipient, b.bounce_class) for b in bounces] == [
        ("nobody@gmail.com", "hard"),
        ("pat@outlook.com", "block"),
    ]
    assert bounces[0].smtp_code == 550
    assert bounces[0].enhanced_status == "5.1.1"
    assert bounces[1].smtp_code == 554  # "(code 554)" in the reason text


def test_deferral_is_soft_with_code_from_response(batch) -> None:
    event = batch["deferred"]
    assert (event.bounce_class, event.smtp_code) == ("soft", 421)
    assert event.enhanced_status == "4.7.28"
    assert event.reason.startswith("421 4.7.28")


def test_dropped_event_without_sg_message_id_has_null_message_id(batch) -> None:
    event = batch["dropped"]
    assert event.esp_message_id is None
    assert event.reason == "Bounced Address"
    assert event.bounce_class is None


def test_click_url_is_kept_byte_exact_and_reader_ip_is_not_sending_ip(batch) -> None:
    event = batch["click"]
    assert event.url == "https://example.com/a%20b?x=1&y=caf%C3%A9#frag"
    assert event.sending_ip is None
    assert event.user_agent == "Mozilla/5.0"


def test_url_on_non_click_events_is_dropped(batch) -> None:
    assert batch["group_unsubscribe"].url is None


def test_reserved_keys_never_leak_into_metadata() -> None:
    for event in events("sendgrid", "batch.json", CT):
        assert not set(event.metadata) & sendgrid.RESERVED_KEYS


def test_an_empty_batch_yields_no_events() -> None:
    assert sendgrid.parse(b"[]\r\n", CT) == []


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"event": "delivered"}', "must be a JSON array"),
        (b"[1]", "event 0 must be a JSON object"),
        (b'[{"event": "open", "email": ["a@b.c"]}]', "field 'email' of event 0"),
        (b'[{"event": "open", "timestamp": "soon"}]', "'timestamp' of event 0"),
        (b'[{"event": "open", "category": [1]}]', "field 'category'"),
        (b"[{", "not valid JSON"),
    ],
)
def test_malformed_bodies_raise_webhook_error_naming_the_problem(
    payload, fragment
) -> None:
    with pytest.raises(WebhookError, match=fragment):
        sendgrid.parse(payload, CT)
