"""SparkPost: batches of msys wrappers, epoch or ISO timestamps, bounce classes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from connectors import sparkpost
from mailyard.errors import WebhookError
from mailyard.model import make_event_id
from tests.connector_fixtures import body, events


@pytest.fixture(scope="module")
def batch():
    return events("sparkpost", "batch.json")


def test_the_webhook_ping_holds_no_events() -> None:
    assert events("sparkpost", "ping.json") == []


def test_a_batch_yields_one_event_per_wrapper_in_body_order(batch) -> None:
    assert [e.esp_event for e in batch] == [
        "delivery", "bounce", "bounce", "delay", "out_of_band", "bounce",
        "initial_open", "open", "click", "generation_failure", "list_unsubscribe",
        "sms_status",
    ]  # fmt: skip
    assert [e.type for e in batch] == [
        "delivered", "bounced", "bounced", "deferred", "bounced", "autoresponded",
        "unknown", "opened", "clicked", "failed", "unsubscribed", "unknown",
    ]  # fmt: skip


def test_delivery_reads_transmission_id_rcpt_fields_and_sending_ip(batch) -> None:
    event = batch[0]
    assert event.esp_message_id == "65832150921904138"
    assert event.recipient == "recipient@example.com"
    assert event.event_id == make_event_id("sparkpost", "92356927693813856")
    assert event.tags == ["male", "US"]
    assert (event.message_id, event.metadata) == ("my-9", {"customKey": "customValue"})
    assert event.sending_ip == "127.0.0.1"
    assert event.timestamp == datetime(2016, 4, 18, 14, 25, 7, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("index", "bounce_class", "smtp_code"),
    [(1, "hard", 550), (2, "block", 554), (3, "soft", 421), (4, None, 550)],
)
def test_bounce_classes_come_from_sparkpost_categories(
    batch, index, bounce_class, smtp_code
) -> None:
    assert (batch[index].bounce_class, batch[index].smtp_code) == (
        bounce_class,
        smtp_code,
    )


def test_iso_timestamps_with_offsets_are_read_as_utc(batch) -> None:
    assert batch[3].timestamp == datetime(2016, 4, 18, 14, 25, 10, tzinfo=timezone.utc)
    assert batch[8].timestamp == datetime(
        2016, 4, 18, 14, 25, 14, 123000, tzinfo=timezone.utc
    )


def test_raw_reason_is_preferred_over_the_redacted_reason(batch) -> None:
    assert batch[1].reason.startswith("550 5.1.1 <nobody@gmail.com>")
    assert batch[1].enhanced_status == "5.1.1"


def test_click_url_is_byte_exact(batch) -> None:
    assert batch[8].url == "https://example.com/x?a=1&b=%20#f"


def test_generation_failure_without_transmission_id_is_still_an_event(batch) -> None:
    event = batch[9]
    assert event.esp_message_id is None
    assert event.bounce_class is None


def test_raw_rcpt_to_is_the_fallback_recipient() -> None:
    event = {"type": "delivery", "raw_rcpt_to": "A@B.example"}
    payload = json.dumps([{"msys": {"message_event": event}}]).encode()
    (event,) = sparkpost.parse(payload, "application/json")
    assert event.recipient == "A@B.example"
    assert event.timestamp is None


def test_inbound_relay_message_is_unknown_named_by_its_class() -> None:
    payload = b'[{"msys": {"relay_message": {"rcpt_to": "in@example.com"}}}]'
    (event,) = sparkpost.parse(payload, "application/json")
    assert (event.type, event.esp_event) == ("unknown", "relay_message")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'{"msys": {}}', "must be a JSON array"),
        (b"[{}]", "wrapper 0 has no 'msys' object"),
        (b'[{"msys": []}]', "'msys' of wrapper 0 must be"),
        (b'[{"msys": {"message_event": null}}]', "'message_event' of wrapper 0"),
        (b'[{"msys": {"message_event": {"rcpt_tags": {"a": 1}}}}]', "'rcpt_tags'"),
        (b'[{"msys": {"message_event": {"timestamp": true}}}]', "not a timestamp"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        sparkpost.parse(payload, "application/json")


def test_fixture_is_a_real_format_array() -> None:
    assert body("sparkpost", "batch.json").lstrip().startswith(b"[")
