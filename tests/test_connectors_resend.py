"""Resend: one event per POST; first ``to`` is the recipient; tags are metadata."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import resend
from mailyard.errors import WebhookError
from tests.connector_fixtures import events


def one(name: str):
    (event,) = events("resend", f"{name}.json")
    return event


def test_permanent_bounce_is_hard_and_has_no_smtp_code() -> None:
    event = one("bounced_permanent")
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.smtp_code is None
    assert event.reason.startswith("The email account that you tried to reach")


def test_transient_bounce_is_soft_and_an_untyped_one_is_hard() -> None:
    assert one("bounced_transient").bounce_class == "soft"
    assert one("bounced_untyped").bounce_class == "hard"


def test_recipient_is_the_first_to_without_its_display_name() -> None:
    assert one("bounced_permanent").recipient == "jose.garcia@gmail.com"
    assert one("bounced_transient").recipient == "mei.tanaka@yahoo.com"
    assert one("delivered").recipient == "zoe.dubois@icloud.com"
    assert one("bounced_untyped").recipient == "olu.okafor@aol.com"


def test_timestamp_is_the_event_time_not_the_message_time() -> None:
    assert one("bounced_permanent").timestamp == datetime(
        2026, 3, 2, 8, 15, 12, 126000, tzinfo=timezone.utc
    )


def test_email_id_and_tags_give_the_ids_and_metadata() -> None:
    event = one("bounced_permanent")
    assert event.esp_message_id == "56761188-7520-42d8-8898-ff6fc54ce618"
    assert event.message_id == "my-0a1b2c3d4e5f"
    assert event.metadata == {"category": "newsletter"}
    assert one("delivered").stream == "transactional"


def test_click_keeps_the_link_byte_exact_and_reads_name_value_tags() -> None:
    event = one("clicked")
    assert event.type == "clicked"
    assert event.url == (
        "https://app.example.io/invoice/INV-2026-0042?token=a%2Fb%3D&x=1#pay"
    )
    assert event.user_agent.startswith("Mozilla/5.0 (iPhone")
    assert event.message_id == "my-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("delivered", "delivered"),
        ("delivery_delayed", "deferred"),
        ("opened", "opened"),
        ("failed", "failed"),
        ("received", "unknown"),
    ],
)
def test_types_map_through_the_table(name, expected) -> None:
    assert one(name).type == expected


def test_a_delay_is_a_soft_deferral_without_a_url() -> None:
    event = one("delivery_delayed")
    assert (event.bounce_class, event.url) == ("soft", None)


def test_failed_keeps_resends_reason() -> None:
    assert one("failed").reason == "reached_daily_quota"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (b'{"type": "email.suppressed", "data": {"to": ["a@b.c"]}}', "rejected"),
        (b'{"type": "email.scheduled", "data": {}}', "queued"),
        (b'{"type": "email.sent", "data": {}}', "sent"),
        (b'{"type": "email.brand_new", "data": {}}', "unknown"),
        (b'{"type": "contact.created", "data": {"email": "a@b.c"}}', "unknown"),
        (b"{}", "unknown"),
    ],
)
def test_newer_and_non_email_types(record, expected) -> None:
    (event,) = resend.parse(record, "application/json")
    assert event.type == expected


def test_event_ids_are_derived_and_stable() -> None:
    assert one("clicked").event_id == one("clicked").event_id
    assert one("opened").event_id != one("clicked").event_id


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"[]", "the body must be a JSON object"),
        (b'{"type": "email.sent", "data": []}', "'data'"),
        (b'{"type": "email.sent", "created_at": "soon"}', "'created_at'"),
        (b'{"type": "email.sent", "data": {"to": [1]}}', "'to'"),
        (b'{"type": "email.bounced", "data": {"bounce": "x"}}', "'bounce'"),
        (b'{"type": "email.sent", "data": {"tags": [5]}}', "tag 0"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        resend.parse(payload, "application/json")
