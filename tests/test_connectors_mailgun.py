"""Mailgun: JSON webhooks and legacy form posts, one event per request."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors import mailgun
from mailyard.errors import WebhookError
from tests.connector_fixtures import body, events

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=--Mailgun7f1c"


def one(name: str, content_type: str = "application/json"):
    (event,) = events("mailgun", name, content_type)
    return event


def test_delivered_json_event_reads_event_data_not_signature() -> None:
    event = one("delivered.json")
    assert event.type == "delivered"
    # event-data.timestamp, float seconds, to the microsecond.
    assert event.timestamp == datetime(
        2018, 3, 19, 15, 11, 2, 908181, tzinfo=timezone.utc
    )
    assert event.recipient == "alice@example.com"
    assert event.esp_message_id == "20130503182626.18666.16540@mg.example.com"
    assert event.tags == ["my_tag_1", "my_tag_2"]
    assert event.message_id == "my-42"
    assert event.metadata == {"order": "123", "vip": "true"}
    assert event.sending_ip == "209.61.154.250"
    assert event.smtp_code == 250


def test_permanent_failure_is_a_hard_bounce_with_structured_code() -> None:
    event = one("failed_permanent.json")
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert (event.smtp_code, event.enhanced_status) == (550, "5.1.1")
    assert event.reason.startswith("5.1.1 The email account")


def test_temporary_failure_is_a_soft_deferral_not_a_bounce() -> None:
    event = one("failed_temporary.json")
    assert (event.type, event.bounce_class) == ("deferred", "soft")
    assert (event.smtp_code, event.enhanced_status) == (451, "4.7.500")


def test_null_delivery_status_and_null_message_are_tolerated() -> None:
    event = one("failed_status_null.json")
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.smtp_code is None
    assert event.esp_message_id is None
    assert event.reason == "suppress-bounce"


def test_rejected_event_takes_recipient_from_to_header_despite_comma() -> None:
    event = one("rejected.json")
    assert event.type == "rejected"
    assert event.recipient == "jane.smith@example.org"
    assert event.reason == "Sandbox subdomains are for test purposes only"


def test_click_keeps_url_and_user_agent_and_not_the_reader_ip() -> None:
    event = one("clicked.json")
    assert event.url == "https://example.com/p?q=%E2%9C%93&x=1#top"
    assert event.user_agent.startswith("Mozilla/5.0 (X11")
    assert event.sending_ip is None


def test_unmapped_event_is_unknown_and_keeps_its_name() -> None:
    event = one("stored.json")
    assert (event.type, event.esp_event) == ("unknown", "stored")


def test_event_id_is_stable_and_differs_between_events() -> None:
    first = one("delivered.json").event_id
    assert first == one("delivered.json").event_id
    assert first != one("clicked.json").event_id


def test_legacy_form_reads_first_values_and_mailgun_signature_fields_last() -> None:
    event = one("legacy_opened.form", FORM)
    # A user variable named "event" adds a second value; the event's own is first.
    assert (event.type, event.esp_event) == ("opened", "opened")
    # For timestamp Mailgun's value is the last one (the variable said 999).
    assert event.timestamp == datetime(2018, 3, 16, 23, 35, 39, tzinfo=timezone.utc)
    assert event.metadata == {"event": "my-event-variable", "timestamp": "999",
                              "campaign": "spring"}  # fmt: skip
    assert event.message_id == "my-77"


def test_legacy_repeated_tag_fields_become_tags() -> None:
    assert one("legacy_opened.form", FORM).tags == ["newsletter", "spring"]


def test_legacy_delivered_strips_brackets_and_reads_x_mailgun_tag() -> None:
    event = one("legacy_delivered.form", FORM)
    assert event.type == "delivered"
    assert event.esp_message_id == "20130503182626.18666.16540@mg.example.com"
    assert event.tags == ["receipt"]
    assert "message-headers" not in event.metadata


def test_legacy_multipart_bounce_skips_the_attached_message() -> None:
    event = one("legacy_bounced.multipart", MULTIPART)
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert (event.smtp_code, event.enhanced_status) == (550, "5.1.1")
    assert "attachment-1" not in event.metadata


@pytest.mark.parametrize(
    ("code", "smtp_code", "enhanced"),
    [("550", 550, "5.1.1"), ("5.1.2", 421, "5.1.2"), ("605", 421, "5.1.1")],
)
def test_legacy_code_is_used_when_smtp_and_text_is_the_fallback(
    code, smtp_code, enhanced
) -> None:
    form = (
        f"event=bounced&recipient=a%40b.example&code={code}&timestamp=1521243341"
        "&error=421+5.1.1+try+later"
    )
    (event,) = mailgun.parse(form.encode(), FORM)
    assert (event.smtp_code, event.enhanced_status) == (smtp_code, enhanced)


def test_content_type_parameters_and_case_do_not_matter() -> None:
    content_type = "Application/JSON; charset=utf-8"
    (event,) = mailgun.parse(body("mailgun", "delivered.json"), content_type)
    assert event.type == "delivered"


@pytest.mark.parametrize(
    ("payload", "content_type", "fragment"),
    [
        (b"{}", "text/html", "not one Mailgun sends"),
        (b'{"signature": {}}', "application/json", "no 'event-data' object"),
        (b'{"event-data": []}', "application/json", "'event-data' of the body"),
        (b'{"event-data": {"tags": "x", "event": 5}}', "application/json", "'event'"),
        (b"event=opened&timestamp=later", FORM, "form field 'timestamp'"),
        (b"event=opened", "multipart/form-data", "no multipart boundary"),
        (b"no parts here", MULTIPART, "no parts delimited"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, content_type, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        mailgun.parse(payload, content_type)
