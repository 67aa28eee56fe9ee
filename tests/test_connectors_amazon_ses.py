"""Amazon SES via SNS: string-in-string Message, handshakes, per-recipient fan-out."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from connectors import amazon_ses
from mailyard.errors import WebhookError
from mailyard.model import make_event_id
from tests.connector_fixtures import body, events

SNS = "text/plain; charset=UTF-8"


def ses(name: str):
    return events("amazon_ses", f"{name}.json", SNS)


@pytest.mark.parametrize(
    "name",
    ["subscription_confirmation", "unsubscribe_confirmation", "validation_notice"],
)
def test_sns_handshakes_and_the_validation_notice_hold_no_events(name) -> None:
    assert ses(name) == []


def test_bounce_fans_out_to_each_bounced_recipient() -> None:
    first, second = ses("bounce_notification")
    assert [first.recipient, second.recipient] == ["zoe@gmail.com", "bob@example.com"]
    assert {first.type, second.type} == {"bounced"}
    assert {first.bounce_class, second.bounce_class} == {"hard"}
    assert (first.smtp_code, first.enhanced_status) == (550, "5.1.1")
    # No diagnosticCode: the structured status stays, the code is unknown.
    assert (second.smtp_code, second.enhanced_status) == (None, "5.1.1")


def test_timestamp_is_the_event_objects_not_the_sns_timestamp() -> None:
    first, _ = ses("bounce_notification")
    assert first.timestamp == datetime(2026, 3, 2, 8, 0, 5, 456000, tzinfo=timezone.utc)


def test_event_id_is_sns_message_id_plus_recipient_plus_type() -> None:
    envelope = json.loads(body("amazon_ses", "bounce_notification.json"))
    first, second = ses("bounce_notification")
    assert first.event_id == make_event_id(
        "amazon_ses", envelope["MessageId"], "zoe@gmail.com", "bounced"
    )
    assert first.event_id != second.event_id


def test_esp_message_id_is_the_mail_message_id() -> None:
    assert {e.esp_message_id for e in ses("bounce_notification")} == {
        "0100018e0f0d3c-9b2c4d1e-000000"
    }


def test_transient_bounce_is_a_soft_bounce_and_tags_become_metadata() -> None:
    (event,) = ses("transient_event")
    assert (event.type, event.bounce_class, event.smtp_code) == ("bounced", "soft", 552)
    assert event.message_id == "my-1"
    assert event.metadata == {"campaign": "spring"}


def test_delivery_fans_out_over_delivery_recipients_with_smtp_response() -> None:
    events_ = ses("delivery_event")
    assert [e.recipient for e in events_] == ["zoe@gmail.com", "bob@example.com"]
    assert {e.smtp_code for e in events_} == {250}
    assert events_[0].reason == "250 2.6.0 Message received"


def test_delivery_delay_is_a_soft_deferral() -> None:
    (event,) = ses("delay_event")
    assert (event.type, event.bounce_class) == ("deferred", "soft")
    assert (event.smtp_code, event.enhanced_status) == (421, "4.4.1")


def test_open_goes_to_every_destination_with_display_names_removed() -> None:
    opened = ses("open_event")
    assert [e.recipient for e in opened] == ["zoe@gmail.com", "bob@example.com"]
    assert {e.type for e in opened} == {"opened"}
    assert opened[0].user_agent == "Mozilla/5.0 (iPhone)"


def test_click_url_is_byte_exact() -> None:
    assert {e.url for e in ses("click_event")} == {"https://example.com/?a=1&b=%2F#x"}


def test_send_uses_the_mail_timestamp() -> None:
    sent = ses("send_event")
    assert {e.type for e in sent} == {"sent"}
    assert sent[0].timestamp == datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def test_complaint_keeps_feedback_type_as_reason() -> None:
    (event,) = ses("complaint_notification")
    assert (event.type, event.reason, event.bounce_class) == (
        "complained",
        "abuse",
        None,
    )


def _notification(message: object) -> bytes:
    text = message if isinstance(message, str) else json.dumps(message)
    envelope = {"Type": "Notification", "MessageId": "m-1", "Message": text}
    return json.dumps(envelope).encode()


def test_unknown_ses_event_types_fan_out_as_unknown() -> None:
    message = {"eventType": "Subscription", "mail": {"destination": ["a@b.example"]}}
    (event,) = amazon_ses.parse(_notification(message), SNS)
    assert (event.type, event.esp_event) == ("unknown", "Subscription")


def test_a_message_with_a_trailing_newline_still_parses() -> None:
    delivery = {"recipients": ["a@b.c"]}
    message = json.dumps({"notificationType": "Delivery", "delivery": delivery})
    (event,) = amazon_ses.parse(_notification(message + "\n"), SNS)
    assert event.type == "delivered"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"[]", "the SNS message must be a JSON object"),
        (b'{"Type": "Surprise"}', "SNS Type 'Surprise'"),
        (b'{"notificationType": "Bounce"}', "turn raw delivery off"),
        (b'{"Type": "Notification"}', "no 'Message' string"),
        (_notification("not json"), "the SNS Message is not valid JSON"),
        (_notification([1]), "the SNS Message must be a JSON object"),
        (_notification({"eventType": "Open", "mail": {"destination": "a"}}), "'dest"),
        (_notification({"eventType": "Open", "mail": {"destination": [1]}}), "recip"),
        (_notification({"eventType": "Open", "open": {"timestamp": "x"}}), "timestamp"),
    ],
)
def test_malformed_bodies_raise_webhook_error(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        amazon_ses.parse(payload, SNS)
