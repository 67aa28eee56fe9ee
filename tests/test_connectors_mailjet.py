"""Mailjet: grouped arrays or a bare object; 64-bit message ids."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import mailjet
from mailyard.errors import WebhookError
from tests.connector_fixtures import events


@pytest.fixture(scope="module")
def batch():
    return events("mailjet", "batch.json")


def test_grouped_events_map_to_our_types_in_body_order(batch) -> None:
    assert [e.type for e in batch] == [
        "delivered", "bounced", "deferred", "bounced", "rejected", "opened",
        "clicked", "complained", "unsubscribed", "unknown",
    ]  # fmt: skip


def test_a_bare_object_is_one_event() -> None:
    (event,) = events("mailjet", "single.json")
    assert event.type == "delivered"


def test_message_id_above_2_53_keeps_every_digit(batch) -> None:
    assert batch[0].esp_message_id == "19421777835146490"


def test_sent_reads_smtp_reply_and_payload_metadata(batch) -> None:
    event = batch[0]
    assert event.smtp_code == 250
    assert event.timestamp == datetime(2015, 6, 3, 12, 19, 9, tzinfo=timezone.utc)
    assert (event.message_id, event.stream) == ("my-3", "transactional")
    assert event.metadata == {"custom_id": "helloworld"}


def test_hard_and_soft_bounces_and_greylisting(batch) -> None:
    hard, grey, soft = batch[1], batch[2], batch[3]
    assert (hard.bounce_class, hard.smtp_code, hard.tags) == ("hard", 550, ["spring"])
    assert (grey.type, grey.bounce_class, grey.smtp_code) == ("deferred", "soft", 451)
    assert (soft.type, soft.bounce_class, soft.smtp_code) == ("bounced", "soft", 552)


def test_a_payload_that_is_not_json_is_kept_as_text(batch) -> None:
    assert batch[2].metadata == {"payload": "not json at all"}


def test_click_url_and_agent(batch) -> None:
    assert batch[6].url == "https://mailjet.com/x?a=%20b&c=d#e"
    assert batch[6].user_agent == "Mozilla/5.0"


def test_same_second_events_of_different_types_get_different_ids(batch) -> None:
    assert len({e.event_id for e in batch}) == len(batch)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b'"sent"', "must be a JSON array or object"),
        (b"[null]", "event 0 must be a JSON object"),
        (b'[{"event": "sent", "MessageID": 1.5}]', "'MessageID'"),
        (b'[{"event": "bounce", "hard_bounce": "true"}]', "'hard_bounce'"),
        (b'[{"event": "sent", "time": [1]}]', "'time'"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        mailjet.parse(payload, "application/json")
