"""Validation of submitted messages: records, and refusals that name the field."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.submission import (
    MAX_BATCH,
    SubmissionError,
    SubmissionTooLarge,
    parse_submission,
    smtp_record,
    submission_record,
)
from connectors.submission_mime import address_tokens
from mailyard.codec import codec
from mailyard.outbound import MESSAGE_ID_HEADER

LIMIT = 100_000
RAW = (
    b'From: "Doe, Jane" <jane@example.com>\r\n'
    b"To: a@example.org, Team: b@example.net, c@example.net;\r\n"
    b"Cc: d@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"X-Mailyard-Stream: marketing\r\n"
    b"X-Mailyard-Tags: spring, sale\r\n"
    b"\r\n"
    b"Hello.\r\n"
)
BROKEN_MULTIPART = (
    "From: a@example.com\r\nTo: b@example.org\r\n"
    'Content-Type: multipart/mixed; boundary="b"\r\n\r\nno parts here\r\n'
)


def message(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from": "sender@example.com",
        "to": ["rcpt@example.org"],
        "subject": "Hi",
        "text": "Hello",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def refusal(payload: object, limit: int = LIMIT) -> SubmissionError:
    with pytest.raises(SubmissionError) as caught:
        parse_submission(payload, max_bytes=limit)
    return caught.value


def test_a_valid_message_becomes_a_record_the_avro_codec_round_trips() -> None:
    record = submission_record(message(html="<p>Hello</p>"), max_bytes=LIMIT)

    decoded = codec("submitted_message").decode(
        codec("submitted_message").encode(record)
    )

    assert decoded["to"] == ["rcpt@example.org"] and decoded["text"] == "Hello"
    assert decoded["html"] == "<p>Hello</p>" and decoded["source"] == "api"
    assert decoded["message_id"] == record["message_id"]


def test_every_message_gets_a_new_hex_id_carried_as_a_header_too() -> None:
    first = submission_record(message(), max_bytes=LIMIT)
    second = submission_record(message(), max_bytes=LIMIT)

    assert first["message_id"] != second["message_id"]
    assert len(first["message_id"]) == 32 and first["message_id"].isalnum()
    assert first["headers"][MESSAGE_ID_HEADER] == first["message_id"]


def test_a_display_name_stays_in_the_from_header_and_leaves_from_addr_bare() -> None:
    record = submission_record(
        message(**{"from": "Jane <j@example.com>"}), max_bytes=LIMIT
    )

    assert record["from_addr"] == "j@example.com"
    assert record["headers"]["From"] == "Jane <j@example.com>"


def test_recipients_may_be_a_single_string_and_lose_their_display_names() -> None:
    record = submission_record(
        message(to="Bob <bob@example.org>", bcc=["x@example.net"]), max_bytes=LIMIT
    )

    assert record["to"] == ["bob@example.org"] and record["bcc"] == ["x@example.net"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("bob@", "the domain after the @ is missing"),
        ("bob", "it has no @"),
        ("bob@localhost", "'localhost' is not a valid domain name"),
        ("bo b@example.com", "the part before the @ is not a valid mailbox name"),
        ("bob@exa_mple.com", "'exa_mple.com' is not a valid domain name"),
    ],
)
def test_a_bad_recipient_is_named_by_field_and_index(bad: str, reason: str) -> None:
    error = refusal(message(to=["a@example.org", "b@example.org", bad]))

    assert error.field == "to[2]"
    assert str(error) == f"to[2]: {bad!r} is not a valid email address ({reason})."


def test_international_addresses_are_accepted() -> None:
    record = submission_record(message(to=["jörg@bücher.example"]), max_bytes=LIMIT)

    assert record["to"] == ["jörg@bücher.example"]


def test_a_message_without_any_recipient_is_refused() -> None:
    assert refusal(message(to=[])).field == "to"


def test_more_than_a_thousand_recipients_are_refused() -> None:
    many = [f"r{i}@example.org" for i in range(600)]
    error = refusal(message(to=many, cc=[f"c{i}@example.org" for i in range(401)]))

    assert "1001 recipients" in str(error) and "limit is 1000" in str(error)


def test_a_recipient_given_twice_is_refused_naming_both_places() -> None:
    error = refusal(message(to=["a@example.org"], bcc=["A@example.org"]))

    assert str(error) == "bcc[0]: 'A@example.org' is already a recipient (to[0])."


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X-Campaign": "a\r\nBcc: victim@example.net"}, "headers.X-Campaign"),
        ({"X-Campaign": "a\nb"}, "headers.X-Campaign"),
        ({"X-Bad\r\nBcc": "x"}, "headers"),
        ({"X Space": "x"}, "headers"),
    ],
)
def test_header_injection_is_refused(headers: dict[str, str], field: str) -> None:
    error = refusal(message(headers=headers))

    assert error.field == field


def test_a_line_break_in_the_subject_is_refused_as_injection() -> None:
    error = refusal(message(subject="Hi\r\nBcc: victim@example.net"))

    assert error.field == "subject" and "header injection" in str(error)


@pytest.mark.parametrize(
    "name", ["From", "to", "Subject", "Content-Type", "Date", MESSAGE_ID_HEADER]
)
def test_headers_the_fields_or_the_builder_own_are_refused(name: str) -> None:
    error = refusal(message(headers={name: "x"}))

    assert error.field == f"headers.{name}"


def test_other_headers_such_as_message_id_pass_through() -> None:
    headers = {"Message-ID": "<1@example.com>", "List-Unsubscribe": "<mailto:u@x.org>"}
    record = submission_record(message(headers=headers), max_bytes=LIMIT)

    assert record["headers"]["Message-ID"] == "<1@example.com>"
    assert record["headers"]["List-Unsubscribe"] == "<mailto:u@x.org>"


def test_parts_and_raw_together_are_refused() -> None:
    assert refusal(message(raw=RAW.decode())).field == "text"


def test_a_message_without_content_is_refused() -> None:
    error = refusal(message(text=None))

    assert error.field == "text" and "needs text, html, raw or raw_base64" in str(error)


def test_raw_mime_fills_sender_recipients_and_subject_from_its_headers() -> None:
    record = submission_record({"raw": RAW.decode()}, max_bytes=LIMIT)

    assert record["from_addr"] == "jane@example.com"
    assert record["to"] == ["a@example.org", "b@example.net", "c@example.net"]
    assert record["cc"] == ["d@example.org"] and record["subject"] == "Grüße"
    assert record["headers"]["From"] == '"Doe, Jane" <jane@example.com>'


def test_fields_given_beside_raw_mime_win_over_its_headers() -> None:
    payload = {"raw": RAW.decode(), "to": "only@example.org", "subject": "Other"}
    record = submission_record(payload, max_bytes=LIMIT)

    assert record["to"] == ["only@example.org"] and record["cc"] == []
    assert record["subject"] == "Other"


def test_raw_mime_loses_only_its_mailyard_control_headers() -> None:
    record = submission_record(
        {"raw_base64": base64.b64encode(RAW).decode()}, max_bytes=LIMIT
    )

    kept = b"".join(line for line in RAW.splitlines(True) if b"X-Mailyard" not in line)
    assert record["raw_mime"] == kept and record["size_bytes"] == len(kept)
    assert record["stream"] is None and record["tags"] == []


def test_invalid_base64_is_refused() -> None:
    error = refusal({"raw_base64": "not base64!"})

    assert error.field == "raw_base64" and "not valid base64" in str(error)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("just some text", "line 1 of the header block"),
        ("Subject: hi\r\nbody without a blank line\r\n", "line 2 of the header block"),
        (
            BROKEN_MULTIPART,
            "not well-formed MIME",
        ),
    ],
)
def test_unparseable_raw_mime_is_refused(raw: str, words: str) -> None:
    error = refusal({"raw": raw, "to": "b@example.org", "from": "a@example.com"})

    assert error.field == "raw" and words in str(error)


def test_a_bad_address_in_a_raw_to_header_is_named_by_header_and_index() -> None:
    raw = "From: a@example.com\r\nTo: ok@example.org, bob@\r\n\r\nx"

    assert refusal({"raw": raw}).field == "raw.To[1]"


def test_smtp_envelope_decides_recipients_and_control_headers_set_fields() -> None:
    record = smtp_record(
        RAW,
        mail_from="bounces@example.com",
        rcpt_tos=["hidden@example.org"],
        max_bytes=LIMIT,
    )

    assert record["from_addr"] == "bounces@example.com"
    assert record["to"] == ["hidden@example.org"] and record["cc"] == []
    assert record["stream"] == "marketing" and record["tags"] == ["spring", "sale"]
    assert record["source"] == "smtp" and b"X-Mailyard" not in record["raw_mime"]


def test_a_bad_smtp_control_header_is_named() -> None:
    raw = b"From: a@example.com\r\nX-Mailyard-Subaccount: no spaces\r\n\r\nx"
    with pytest.raises(SubmissionError) as caught:
        smtp_record(
            raw, mail_from="a@example.com", rcpt_tos=["b@example.org"], max_bytes=LIMIT
        )

    assert caught.value.field == "X-Mailyard-Subaccount"


@pytest.mark.parametrize(
    "stream", ["transactional", "marketing", "notification", "q3-promo_2"]
)
def test_standard_and_named_streams_are_accepted(stream: str) -> None:
    assert (
        submission_record(message(stream=stream), max_bytes=LIMIT)["stream"] == stream
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"stream": "Marketing"}, "stream"),
        ({"subaccount": "has space"}, "subaccount"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"tags": ["ok", "x" * 65]}, "tags[1]"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"metadata": {"order": 42}}, "metadata.order"),
        ({"fro": "typo@example.com"}, "fro"),
        ({"text": "\ud800"}, "text"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    assert refusal(message(**fields)).field == field


def test_repeated_tags_are_kept_once_in_order() -> None:
    record = submission_record(message(tags=["b", "a", "b"]), max_bytes=LIMIT)

    assert record["tags"] == ["b", "a"]


def test_a_message_over_the_size_limit_is_refused_as_too_large() -> None:
    error = refusal(message(text="x" * 2000), limit=1000)

    assert isinstance(error, SubmissionTooLarge) and error.limit == 1000
    assert "MAILYARD_MAX_MESSAGE_BYTES" in str(error)


def test_a_batch_may_be_a_list_or_an_object_with_messages() -> None:
    as_list = parse_submission([message(), message()], max_bytes=LIMIT)
    as_object = parse_submission({"messages": [message()]}, max_bytes=LIMIT)

    assert as_list.batch and len(as_list.records) == 2
    assert as_object.batch and len(as_object.records) == 1
    assert not parse_submission(message(), max_bytes=LIMIT).batch


def test_a_batch_error_names_the_message_index() -> None:
    batch = {"messages": [message(), message(), message(), message(to=["bob@"])]}

    assert refusal(batch).field == "messages[3].to[0]"
    assert refusal([message(), "not an object"]).field == "messages[1]"


def test_a_too_large_message_in_a_batch_keeps_its_index() -> None:
    error = refusal([message(), message(text="x" * 2000)], limit=1000)

    assert isinstance(error, SubmissionTooLarge) and error.field == "messages[1]"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([message()] * (MAX_BATCH + 1), "limit is 500"),
        ([], "at least one message"),
        ({"messages": [message()], "extra": 1}, "only a 'messages' list"),
    ],
)
def test_batch_limits_are_enforced(payload: object, words: str) -> None:
    assert words in str(refusal(payload))


def test_address_lists_split_at_commas_outside_quotes_groups_and_comments() -> None:
    tokens = address_tokens(
        'a@example.com (Al, ice), "x, y" <c@example.com>, undisclosed-recipients:;'
    )

    assert tokens == ["a@example.com", '"x, y" <c@example.com>']


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "text",
        "html",
        "raw",
        "raw_base64",
        "headers",
        "subaccount",
        "stream",
        "tags",
        "metadata",
    ]
)
near_messages = st.dictionaries(field_names, json_values | st.emails(), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, near_messages, st.lists(near_messages, max_size=3)))
def test_any_json_value_is_either_a_record_or_a_submission_error(
    payload: object,
) -> None:
    try:
        submission = parse_submission(payload, max_bytes=LIMIT)
    except SubmissionError as exc:
        assert exc.field and str(exc).startswith(f"{exc.field}: ")
        return
    for record in submission.records:
        codec("submitted_message").encode(record)


raw_lines = st.lists(
    st.sampled_from(
        [
            "From: a@example.com",
            "To: b@example.org, x",
            "Cc: (c",
            "Subject: =?x?q?",
            "Content-Type: multipart/mixed; boundary=z",
            "--z",
            "--z--",
            "",
            " fold",
            "X-Mailyard-Tags: a,,b",
            "X-Mailyard-Stream: B",
            "body",
            "\x00",
            "Ü: x",
        ]
    ),
    max_size=10,
).map("\r\n".join)


@settings(max_examples=300, deadline=None)
@given(raw_lines | st.text(), st.lists(st.emails(), max_size=3))
def test_any_raw_mime_is_either_a_record_or_a_submission_error(
    raw: str, rcpt_tos: list[str]
) -> None:
    builds: tuple[Callable[[], dict[str, Any]], ...] = (
        lambda: submission_record({"raw": raw}, max_bytes=LIMIT),
        lambda: smtp_record(
            raw.encode(errors="replace"),
            mail_from="a@example.com",
            rcpt_tos=rcpt_tos,
            max_bytes=LIMIT,
        ),
    )
    for build in builds:
        try:
            record = build()
        except SubmissionError as exc:
            assert str(exc).startswith(f"{exc.field}: ")
            continue
        codec("submitted_message").encode(record)
