"""Brevo: one object or a batched array; ts_epoch in ms or s; custom header metadata."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import brevo
from mailyard.errors import WebhookError
from tests.connector_fixtures import events


@pytest.fixture(scope="module")
def batch():
    return events("brevo", "batch.json")


def one(name: str):
    (event,) = events("brevo", name)
    return event


def test_a_batched_array_maps_events_in_body_order(batch) -> None:
    assert [e.type for e in batch] == [
        "queued", "delivered", "deferred", "opened", "opened", "opened", "opened",
        "clicked", "complained", "unsubscribed", "bounced", "rejected", "failed",
        "unknown",
    ]  # fmt: skip
    assert [e.esp_event for e in batch[3:7]] == [
        "unique_opened", "opened", "proxy_open", "unique_proxy_open",
    ]  # fmt: skip


def test_hard_bounce_strips_the_leading_space_and_reads_the_reply() -> None:
    event = one("hard_bounce.json")
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.reason.startswith("RecipientError: 550 5.1.1")
    assert (event.smtp_code, event.enhanced_status) == (550, "5.1.1")
    assert event.esp_message_id == "202603020814.71620931845@smtp-relay.mailin.fr"
    assert event.sending_ip == "167.89.101.12"


def test_ts_epoch_in_milliseconds_is_utc_not_the_shifted_ts() -> None:
    event = one("hard_bounce.json")
    assert event.timestamp == datetime(
        2026, 3, 2, 8, 14, 5, 318000, tzinfo=timezone.utc
    )


def test_a_seconds_sized_ts_epoch_is_read_as_seconds() -> None:
    event = one("soft_bounce_seconds.json")
    assert event.timestamp == datetime(2026, 3, 2, 8, 20, tzinfo=timezone.utc)
    assert (event.type, event.bounce_class, event.smtp_code) == ("bounced", "soft", 452)


def test_custom_header_json_gives_our_ids_and_metadata() -> None:
    event = one("hard_bounce.json")
    assert (event.message_id, event.stream) == ("my-0a1b2c3d4e5f", "marketing")
    assert event.metadata == {"campaign": "spring-sale-2026"}
    assert event.tags == ["newsletter", "spring"]


def test_custom_header_values_that_are_not_text_become_json_text(batch) -> None:
    assert batch[0].message_id == "my-1001"
    assert batch[0].metadata == {"tier": "3"}


def test_a_custom_header_that_is_not_json_is_kept_as_text(batch) -> None:
    assert batch[2].metadata == {"x-mailin-custom": "not json {"}
    assert batch[2].message_id is None


def test_tag_holding_a_json_array_gives_the_tags() -> None:
    assert one("soft_bounce_seconds.json").tags == ["receipt", "transactional"]


def test_recipient_is_the_bare_address() -> None:
    assert one("soft_bounce_seconds.json").recipient == "kowalski17@gmx.de"


def test_deferral_is_soft_and_reads_its_code(batch) -> None:
    event = batch[2]
    assert (event.bounce_class, event.smtp_code) == ("soft", 421)


def test_click_keeps_the_link_byte_exact(batch) -> None:
    click = batch[7]
    assert click.url == "https://example.com/search?q=caf%C3%A9+cr%C3%A8me&lang=fr#top"
    assert click.user_agent == "Mozilla/5.0 (Windows NT 10.0)"
    assert all(e.url is None for e in batch if e.type != "clicked")


def test_invalid_email_is_a_hard_bounce_and_blocked_is_a_rejection(batch) -> None:
    invalid, blocked = batch[10], batch[11]
    assert (invalid.type, invalid.bounce_class) == ("bounced", "hard")
    assert (blocked.type, blocked.bounce_class) == ("rejected", None)


def test_first_open_and_open_at_the_same_moment_get_different_ids(batch) -> None:
    assert len({e.event_id for e in batch}) == len(batch)
    assert batch[3].event_id != batch[4].event_id


def test_event_ids_are_stable() -> None:
    assert one("hard_bounce.json").event_id == one("hard_bounce.json").event_id


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ('"welcome-email"', ["welcome-email"]),
        ('"[\\"a\\", \\"b\\"]"', ["a", "b"]),
        ('"[not json"', ["[not json"]),
        ('""', []),
    ],
)
def test_tag_is_one_tag_or_a_json_array(tag, expected) -> None:
    body = f'{{"event": "delivered", "tag": {tag}}}'.encode()
    (event,) = brevo.parse(body, "application/json")
    assert event.tags == expected


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'"delivered"', "must be a JSON object or array"),
        (b"[1]", "event 0 must be a JSON object"),
        (b'{"event": 5}', "'event'"),
        (b'{"event": "click", "ts_epoch": "soon"}', "'ts_epoch'"),
        (b'{"event": "click", "tags": [1]}', "'tags'"),
        (b'{"event": "click", "X-Mailin-custom": 7}', "'X-Mailin-custom'"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        brevo.parse(payload, "application/json")
