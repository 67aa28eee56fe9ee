"""SocketLabs: Delivered, Failed, Tracking and friends; asynchronous bounces."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import socketlabs
from mailyard.errors import WebhookError
from tests.connector_fixtures import events


def one(name: str):
    (event,) = events("socketlabs", f"{name}.json")
    return event


def test_queued_reads_meta_tags_and_seven_digit_time() -> None:
    event = one("queued")
    assert event.type == "queued"
    assert event.timestamp == datetime(
        2026, 3, 2, 8, 0, 0, 123456, tzinfo=timezone.utc
    )
    assert (event.message_id, event.stream) == ("my-1001", "transactional")
    assert event.metadata == {
        "UserRegion": "US-West", "mailing_id": "SL38211-2026030201"
    }
    assert event.tags == ["Transactional", "Order Confirmation"]
    assert event.esp_message_id == "1209957964"


def test_the_secret_key_never_reaches_an_event() -> None:
    for name in ("queued", "async_delivered", "complaint"):
        event = one(name)
        assert "Z7kq2TfV9mNw4XbR8cLp" not in str(event.to_json_dict())


def test_an_asynchronous_bounce_is_delivered_then_bounced_hard() -> None:
    delivered, failed = one("async_delivered"), one("async_failed")
    assert (delivered.type, delivered.smtp_code) == ("delivered", 250)
    assert delivered.sending_ip == "149.72.34.201"
    assert (failed.type, failed.bounce_class) == ("bounced", "hard")
    assert (failed.smtp_code, failed.enhanced_status) == (550, "5.1.1")
    assert failed.esp_message_id == delivered.esp_message_id
    assert failed.timestamp > delivered.timestamp
    assert failed.event_id != delivered.event_id


def test_failure_type_and_code_choose_the_outcome() -> None:
    soft, block, suppressed, auto_reply = events("socketlabs", "failed_batch.json")
    assert (soft.type, soft.bounce_class, soft.smtp_code) == ("bounced", "soft", 552)
    assert (block.bounce_class, block.smtp_code) == ("block", 554)
    assert (suppressed.type, suppressed.bounce_class) == ("rejected", None)
    assert (auto_reply.type, auto_reply.bounce_class) == ("autoresponded", None)


def test_deferral_is_soft_with_its_code() -> None:
    event = one("deferred")
    assert (event.type, event.bounce_class) == ("deferred", "soft")
    assert event.smtp_code == 421
    assert event.reason.startswith("421 4.7.0")


def test_tracking_events_are_named_by_tracking_type() -> None:
    opened, clicked, unsubscribed = events("socketlabs", "tracking.json")
    assert [e.type for e in (opened, clicked, unsubscribed)] == [
        "opened", "clicked", "unsubscribed",
    ]  # fmt: skip
    assert [e.esp_event for e in (opened, clicked, unsubscribed)] == [
        "Open", "Click", "Unsubscribe",
    ]  # fmt: skip
    assert opened.url is None and opened.user_agent == "Microsoft Office/16.0"


def test_click_keeps_the_url_byte_exact() -> None:
    clicked = events("socketlabs", "tracking.json")[1]
    assert clicked.url == "https://example.org/unsubscribe?u=9f8e%7C7d6c&next=%2Fhome#x"


def test_complaint_is_a_complaint() -> None:
    event = one("complaint")
    assert (event.type, event.recipient) == ("complained", "olu.okafor@aol.com")


def test_the_validation_post_is_unknown_not_dropped() -> None:
    event = one("validation")
    assert (event.type, event.esp_event, event.recipient) == (
        "unknown", "Validation", None
    )


def test_a_legacy_form_post_is_read_like_json() -> None:
    form = "application/x-www-form-urlencoded"
    (event,) = events("socketlabs", "legacy_delivered.form", form)
    assert (event.type, event.recipient, event.smtp_code) == (
        "delivered", "anna.smith@outlook.com", 250
    )
    assert event.metadata == {"mailing_id": "SL38211-1"}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (b'{"Type": "Sent"}', "delivered"),
        (b'{"Type": "Open"}', "opened"),
        (b'{"Type": "Click", "Url": "https://x.example/?a=%20"}', "clicked"),
        (b'{"Type": "Tracking", "TrackingType": 1}', "opened"),
        (b'{"Type": "Tracking", "TrackingType": "Forward"}', "unknown"),
        (b'{"Type": "Failed", "FailureType": "Odd"}', "bounced"),
        (b'{"Type": "SomethingNew"}', "unknown"),
    ],
)
def test_types_map_through_tables(record, expected) -> None:
    (event,) = socketlabs.parse(record, "application/json")
    assert event.type == expected


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'"Delivered"', "must be a JSON object or array"),
        (b"[null]", "event 0 must be a JSON object"),
        (b'{"Type": "Failed", "FailureCode": 1.5}', "'FailureCode'"),
        (b'{"Type": "Queued", "Data": {"Meta": [1]}}', "meta entry 0"),
        (b'{"Type": "Queued", "Data": {"Tags": "x", "Meta": {}}}', "'Meta'"),
        (b'{"Type": "Queued", "DateTime": "yesterday"}', "'DateTime'"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        socketlabs.parse(payload, "application/json")
