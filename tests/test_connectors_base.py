"""The helpers every connector shares: timestamps, SMTP codes, addresses, bodies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import (
    bare_address,
    build_event,
    enhanced_status,
    parse_timestamp,
    pick_enhanced_status,
    pick_smtp_code,
    smtp_code,
    strip_brackets,
)
from connectors.bodies import Record, load_json, parse_multipart, parse_urlencoded
from mailyard.errors import WebhookError

UTC = timezone.utc
MOMENT = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1772438400, MOMENT),
        ("1772438400", MOMENT),
        (1772438400000, MOMENT),  # milliseconds
        ("1772438400000", MOMENT),
        (1772438400.5, MOMENT.replace(microsecond=500000)),
        (1521472262.908181, datetime(2018, 3, 19, 15, 11, 2, 908181, tzinfo=UTC)),
        ("1772438400.9999999", MOMENT.replace(microsecond=999999)),  # truncated
        (1772438400123.9, MOMENT.replace(microsecond=123900)),
        ("2026-03-02T08:00:00Z", MOMENT),
        ("2026-03-02T03:00:00-05:00", MOMENT),
        ("2026-03-02T09:00:00+01:00", MOMENT),
        ("2026-03-02T03:00:00.1234567-05:00", MOMENT.replace(microsecond=123456)),
        ("2026-03-02T08:00:00", MOMENT),  # no offset: UTC
        ("2026-03-02 08:00:00.000+00:00", MOMENT),
        (None, None),
        ("", None),
    ],
)
def test_timestamps_parse_to_aware_utc(value, expected) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_seconds_and_milliseconds_split_at_10_to_the_11() -> None:
    assert parse_timestamp(99_999_999_999).year == 5138
    assert parse_timestamp(100_000_000_000).year == 1973


@pytest.mark.parametrize(
    "value", ["soon", "2026-13-01T00:00:00Z", True, [1], {"t": 1}, float("nan"),
              float("inf"), 10**30, "１２３", "Infinity"]  # fmt: skip
)
def test_values_that_are_not_timestamps_raise_value_error(value) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("550 5.1.1 The email account that you tried to reach does not exist", 550),
        ("smtp;550 5.1.1 user unknown", 550),
        ("smtp; 421 4.7.28 rate limited", 421),
        ("550-5.7.1 [192.0.2.1 25] Our system has detected", 550),
        ("sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)", 250),
        ("host 192.168.250.1 said: 554 blocked", 554),
        ("Mailbox size 5000 exceeded; try later 452", 452),
        ("5.1.1 user unknown", None),
        ("error 600 and 199 are not SMTP", None),
        ("", None),
        (None, None),
    ],
)
def test_smtp_code_is_the_first_standalone_reply_code(text, code) -> None:
    assert smtp_code(text) == code


def test_structured_smtp_code_wins_over_text_and_bad_ones_fall_back() -> None:
    assert pick_smtp_code(554, "550 5.1.1 x") == 554
    assert pick_smtp_code("421", "550 x") == 421
    assert pick_smtp_code(0, "550 x") == 550
    assert pick_smtp_code(605, None) is None
    assert pick_smtp_code(True, None) is None


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("550 5.1.1 user unknown", "5.1.1"),
        ("451 4.7.500 Server busy", "4.7.500"),
        ("smtp;250 2.0.0 OK", "2.0.0"),
        ("from 10.5.1.1.2 host", None),
        ("version 1.2.3", None),
        (None, None),
    ],
)
def test_enhanced_status_is_an_rfc_3463_triple(text, status) -> None:
    assert enhanced_status(text) == status


def test_structured_enhanced_status_wins_when_well_formed() -> None:
    assert pick_enhanced_status("5.7.1", "550 5.1.1") == "5.7.1"
    assert pick_enhanced_status("bogus", "550 5.1.1") == "5.1.1"


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("alice@example.com", "alice@example.com"),
        (" alice@example.com ", "alice@example.com"),
        ("Alice <alice@example.com>", "alice@example.com"),
        ('"Smith, Jane" <jane@example.org>', "jane@example.org"),
        ("Smith, Jane <jane@example.org>", "jane@example.org"),
        ("Zoë Müller <zoë@bücher.example>", "zoë@bücher.example"),
        ("<bare@example.com>", "bare@example.com"),
        ("Nobody, Really", None),
        ("", None),
        (None, None),
    ],
)
def test_bare_address_drops_display_names(value, address) -> None:
    assert bare_address(value) == address


def test_strip_brackets_removes_one_surrounding_pair_only() -> None:
    assert strip_brackets("<a@b>") == "a@b"
    assert strip_brackets("<<a@b>>") == "<a@b>"
    assert strip_brackets("a@b") == "a@b"
    assert strip_brackets("") is None


@pytest.mark.parametrize(
    ("type_", "given", "expected"),
    [("bounced", "block", "block"), ("deferred", "hard", "soft"),
     ("deferred", None, "soft"), ("delivered", "hard", None), ("opened", "soft", None)],
)  # fmt: skip
def test_bounce_class_exists_only_on_bounces_and_deferrals_are_soft(
    type_, given, expected
) -> None:
    event = build_event("x", type_, "e", bounce_class=given)
    assert event.bounce_class == expected


def test_build_event_fills_provider_and_splits_our_metadata() -> None:
    event = build_event(
        "x", "clicked", "click", recipient="a@Gmail.com", esp_message_id="<id@h>",
        url="https://e.x/?q=%20", meta={"mailyard_message_id": "m", "mailyard_stream":
        "s", "n": 3, "d": {"k": [1]}},
    )  # fmt: skip
    assert (event.recipient_domain, event.mailbox_provider) == ("gmail.com", "gmail")
    assert event.esp_message_id == "id@h"
    assert (event.message_id, event.stream) == ("m", "s")
    assert event.metadata == {"n": "3", "d": '{"k":[1]}'}
    assert event.url == "https://e.x/?q=%20"


def test_url_is_kept_only_on_clicks() -> None:
    assert build_event("x", "opened", "open", url="https://e.x").url is None


def test_fallback_event_id_depends_on_type_recipient_and_time() -> None:
    base = {"esp_message_id": "m", "recipient": "a@b.c", "timestamp": MOMENT}
    ids = {
        build_event("x", "opened", "open", **base).event_id,
        build_event("x", "clicked", "click", **base).event_id,
        build_event("x", "opened", "open", **{**base, "recipient": "z@b.c"}).event_id,
        build_event("x", "opened", "open", **{**base, "timestamp": None}).event_id,
    }
    assert len(ids) == 4
    assert build_event("x", "opened", "open", **base).event_id in ids


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[" * 100_000, "too deeply"),
        (b'"\\ud800"', "lone UTF-16 surrogate"),
        (b"1" * 5000, "not valid JSON"),
    ],
)
def test_load_json_raises_webhook_error_with_a_reason(payload, fragment) -> None:
    with pytest.raises(WebhookError, match=fragment):
        load_json("x", payload)


def test_load_json_accepts_surrogate_pairs() -> None:
    assert load_json("x", b'"\\ud83d\\ude00"') == "\N{GRINNING FACE}"


def test_record_names_the_field_and_its_place_in_errors() -> None:
    rec = Record("x", {"outer": {"inner": 5}}, "event 7")
    with pytest.raises(WebhookError, match="field 'inner' of 'outer' of event 7"):
        rec.record("outer").text("inner")


def test_urlencoded_forms_keep_every_value_in_order() -> None:
    form = parse_urlencoded(b"tag=a&tag=b&empty=&name=Zo%C3%AB")
    assert form == {"tag": ["a", "b"], "empty": [""], "name": ["Zoë"]}


def test_multipart_forms_read_text_fields_and_skip_files() -> None:
    body = (
        b"--XyZ\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nbounced\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\na\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"tag\"\r\n\r\nb\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"m.eml\"\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nhi\r\n--XyZ--\r\n"
    )
    form = parse_multipart("x", body, 'multipart/form-data; boundary="XyZ"')
    assert form == {"event": ["bounced"], "tag": ["a", "b"]}


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_text_helpers_never_raise_on_any_text(text) -> None:
    address = bare_address(text)
    assert address is None or (address == address.strip() and address)
    code = smtp_code(text)
    assert code is None or 200 <= code <= 599
    enhanced_status(text)
    try:
        parsed = parse_timestamp(text)
    except ValueError:
        return
    assert parsed is None or parsed.utcoffset() is not None
