"""Mandrill: a JSON array in a form field; event ts, not msg.ts; sync events."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest

from connectors import mandrill
from mailyard.errors import WebhookError
from tests.connector_fixtures import body, events

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=------------------------d74496d66958873e"


@pytest.fixture(scope="module")
def batch():
    return events("mandrill", "batch.form", FORM)


def form(text: str) -> bytes:
    return urlencode({"mandrill_events": text}).encode()


def test_the_empty_test_post_holds_no_events() -> None:
    assert events("mandrill", "empty.form", FORM) == []


def test_events_map_to_our_types_in_body_order(batch) -> None:
    assert [e.type for e in batch] == [
        "sent", "deferred", "bounced", "bounced", "opened", "clicked",
        "complained", "unsubscribed", "rejected", "unknown", "unknown", "unknown",
    ]  # fmt: skip


def test_hard_and_soft_bounces_read_msg_diag(batch) -> None:
    hard, soft = batch[2], batch[3]
    assert (hard.bounce_class, hard.smtp_code, hard.enhanced_status) == (
        "hard", 550, "5.1.1"
    )
    assert (soft.bounce_class, soft.smtp_code) == ("soft", 552)
    assert hard.reason.startswith("smtp;550 5.1.1")


def test_the_event_ts_is_used_not_the_send_time_in_msg(batch) -> None:
    hard = batch[2]
    assert hard.timestamp == datetime(2026, 3, 2, 8, 15, tzinfo=timezone.utc)


def test_a_deferral_reads_the_last_smtp_attempt(batch) -> None:
    deferral = batch[1]
    assert (deferral.bounce_class, deferral.smtp_code) == ("soft", 451)
    assert deferral.enhanced_status == "4.7.500"
    assert deferral.sending_ip == "198.2.180.15"


def test_message_id_tags_and_metadata_come_from_msg(batch) -> None:
    send = batch[0]
    assert send.esp_message_id == "11111111111111111111111111111111"
    assert (send.message_id, send.stream) == ("my-1001", "transactional")
    assert (send.metadata, send.tags) == ({"tier": "3"}, ["welcome"])
    assert send.recipient == "anna.smith@outlook.com"


def test_click_keeps_the_url_byte_exact_and_the_reader_agent(batch) -> None:
    click = batch[5]
    assert click.url == (
        "https://shop.example.com/spring?utm_source=newsletter&utm_medium=email#top"
    )
    assert click.user_agent == "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
    assert batch[4].url is None


def test_sync_events_are_unknown_and_name_their_address(batch) -> None:
    allowlist, denylist = batch[9], batch[10]
    assert (allowlist.esp_event, allowlist.recipient) == (
        "whitelist", "vip@northwind.example"
    )
    assert (denylist.esp_event, denylist.recipient) == (
        "blacklist", "jose.garcia@gmail.com"
    )
    assert denylist.timestamp == datetime(2026, 3, 2, 8, 15, 1, tzinfo=timezone.utc)
    assert denylist.esp_message_id is None


def test_inbound_messages_are_unknown_not_dropped(batch) -> None:
    assert (batch[11].type, batch[11].esp_event) == ("unknown", "inbound")


def test_event_ids_are_distinct_and_stable(batch) -> None:
    assert len({e.event_id for e in batch}) == len(batch)
    again = events("mandrill", "batch.form", FORM)
    assert [e.event_id for e in again] == [e.event_id for e in batch]


def test_a_multipart_post_reads_the_same_field() -> None:
    (event,) = events("mandrill", "hard_bounce.multipart", MULTIPART)
    assert (event.type, event.bounce_class, event.smtp_code) == ("bounced", "hard", 550)


def test_the_multipart_and_form_bodies_give_the_same_event(batch) -> None:
    (event,) = events("mandrill", "hard_bounce.multipart", MULTIPART)
    assert event.event_id == batch[2].event_id


@pytest.mark.parametrize(
    ("payload", "content_type", "fragment"),
    [
        (b"[]", "application/json", "is not one Mandrill sends"),
        (b"other=1", FORM, "no 'mandrill_events' field"),
        (form("{}"), FORM, "must be a JSON array"),
        (form("[nope"), FORM, "is not valid JSON"),
        (form("[1]"), FORM, "event 0 must be a JSON object"),
        (form('[{"event": "send", "msg": []}]'), FORM, "'msg'"),
        (form('[{"event": "send", "ts": "later"}]'), FORM, "'ts'"),
        (form('[{"event": "send", "msg": {"smtp_events": [1]}}]'), FORM, "SMTP event"),
        (b"mandrill_events=[]", "multipart/form-data", "no multipart boundary"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, content_type, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        mandrill.parse(payload, content_type)


def test_fixture_bodies_are_form_encoded_as_mandrill_posts_them() -> None:
    assert body("mandrill", "batch.form").startswith(b"mandrill_events=%5B%7B")
