"""Postmark: one record per POST, local-offset timestamps with seven digits."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import postmark
from mailyard.errors import WebhookError
from tests.connector_fixtures import events


def one(name: str):
    (event,) = events("postmark", f"{name}.json")
    return event


def test_delivery_converts_a_seven_digit_local_time_to_utc() -> None:
    event = one("delivery")
    assert event.type == "delivered"
    assert event.timestamp == datetime(
        2019, 11, 5, 21, 33, 54, 907025, tzinfo=timezone.utc
    )
    assert event.esp_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert event.tags == ["welcome-email"]
    assert (event.message_id, event.metadata) == ("my-5", {"a_key": "a_value"})


def test_hard_bounce_strips_display_name_with_comma_and_reads_details() -> None:
    event = one("hard_bounce")
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.recipient == "john@example.com"
    assert (event.smtp_code, event.enhanced_status) == (550, "5.1.1")
    assert event.reason.startswith("smtp;550 5.1.1")


def test_soft_bounce_is_a_soft_bounce_and_positive_offsets_convert() -> None:
    event = one("soft_bounce")
    assert (event.type, event.bounce_class, event.smtp_code) == ("bounced", "soft", 552)
    assert event.timestamp == datetime(
        2019, 11, 5, 15, 33, 54, 123456, tzinfo=timezone.utc
    )


def test_transient_bounce_is_a_deferral() -> None:
    event = one("transient")
    assert (event.type, event.bounce_class) == ("deferred", "soft")
    assert event.smtp_code == 421


def test_unsubscribe_bounce_without_email_or_time_is_an_unsubscribe() -> None:
    event = one("unsubscribe_bounce")
    assert event.type == "unsubscribed"
    assert (event.recipient, event.timestamp, event.bounce_class) == (None, None, None)


def test_click_keeps_original_link_byte_exact() -> None:
    event = one("click")
    assert event.url == "https://example.com/x?y=%20z&w=1#frag"
    assert event.user_agent == "Mozilla/5.0 (Macintosh)"
    assert event.timestamp == datetime(2017, 10, 25, 19, 21, 11, tzinfo=timezone.utc)


def test_suppression_caused_by_a_hard_bounce_is_reported_as_that() -> None:
    event = one("subscription_change")
    assert (event.type, event.bounce_class) == ("bounced", "hard")


def test_lifting_a_suppression_is_a_subscribe() -> None:
    assert one("resubscribe").type == "subscribed"


def test_spam_complaint_is_a_complaint() -> None:
    assert one("spam_complaint").type == "complained"


def test_event_ids_are_derived_and_stable() -> None:
    assert one("delivery").event_id == one("delivery").event_id
    assert one("delivery").event_id != one("click").event_id


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (b'{"RecordType": "Bounce", "Type": "AutoResponder"}', "autoresponded"),
        (b'{"RecordType": "Bounce", "Type": "BadEmailAddress"}', "rejected"),
        (b'{"RecordType": "Bounce", "Type": "BrandNewType"}', "bounced"),
        (b'{"RecordType": "Inbound?"}', "unknown"),
        (b'{"FromFull": {"Email": "a@b.c"}}', "unknown"),
    ],
)
def test_record_and_bounce_types_map_through_tables(record, expected) -> None:
    (event,) = postmark.parse(record, "application/json")
    assert event.type == expected


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"[]", "the body must be a JSON object"),
        (b'{"RecordType": 1}', "'RecordType'"),
        (b'{"RecordType": "Open", "ReceivedAt": "yesterday"}', "'ReceivedAt'"),
        (b'{"RecordType": "Open", "Metadata": []}', "'Metadata'"),
        (b'{"RecordType": "SubscriptionChange", "SuppressSending": "yes"}', "boolean"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        postmark.parse(payload, "application/json")
