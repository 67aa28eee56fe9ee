"""SMTP reply classification: the code-class default and the table's exceptions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailyard.outbound import Outcome
from sinks.smtp_replies import classify, enhanced_status, queue_id

# Real-world wordings from the shared reference on mailbox providers.
PROVIDER_REPLIES = [
    (550, "5.1.1 The email account that you tried to reach does not exist", "bounced"),
    (
        550,
        (
            "5.7.515 Access denied, sending domain example.test does not meet the "
            "required authentication level."
        ),
        "bounced",
    ),
    (550, "5.7.606 Access denied, banned sending IP [192.0.2.1]", "bounced"),
    (
        550,
        (
            "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Part of "
            "their network is on our block list (S3150)"
        ),
        "deferred",
    ),
    (
        550,
        "5.7.1 Service unavailable, client host temporarily rate limited",
        "deferred",
    ),
    (
        451,
        (
            "4.7.650 The mail server [192.0.2.1] has been temporarily rate limited "
            "due to IP reputation (S775)"
        ),
        "deferred",
    ),
    (
        421,
        "4.7.28 Our system has detected an unusual rate of unsolicited mail",
        "deferred",
    ),
    (454, "Throttling failure: Maximum sending rate exceeded.", "deferred"),
    (452, "4.2.2 The email account that you tried to reach is over quota", "deferred"),
    (250, "2.0.0 OK 1700000000 queued", "accepted"),
]


@pytest.mark.parametrize(("code", "text", "outcome"), PROVIDER_REPLIES)
def test_provider_replies_are_classified_as_the_reference_says(
    code: int, text: str, outcome: Outcome
) -> None:
    assert classify(code, text).outcome == outcome


def test_yahoo_suspension_codes_carry_kumomta_waiting_times() -> None:
    two_hours = classify(421, "4.7.0 [TSS04] Messages from 192.0.2.1 deferred")
    four_hours = classify(421, "4.7.0 [IPTS05] Messages from 192.0.2.1 deferred")

    assert (two_hours.outcome, two_hours.retry_after_s) == ("deferred", 7200)
    assert (four_hours.outcome, four_hours.retry_after_s) == ("deferred", 14400)


def test_a_plain_5xx_refusal_is_a_bounce_without_a_retry_hint() -> None:
    verdict = classify(554, "5.7.1 Message rejected as spam")

    assert (verdict.outcome, verdict.rule, verdict.retry_after_s) == (
        "bounced",
        "5xx",
        None,
    )


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("5.1.1 User unknown", "5.1.1"),
        ("4.7.650 The mail server has been rate limited", "4.7.650"),
        ("  2.0.0 Ok", "2.0.0"),
        ("User unknown 5.1.1", None),
        ("5.1.1.4 not a status", None),
        ("3.1.1 wrong class", None),
        ("", None),
    ],
)
def test_enhanced_status_is_read_from_the_start_of_the_text(
    text: str, status: str | None
) -> None:
    assert enhanced_status(text) == status


def test_queue_id_is_read_from_the_data_reply() -> None:
    assert queue_id("2.0.0 Ok: queued as 4XyZ1.2") == "4XyZ1.2"
    assert queue_id("2.0.0 Ok") is None


@given(code=st.integers(), text=st.text())
def test_any_reply_classifies_without_raising(code: int, text: str) -> None:
    verdict = classify(code, text)

    assert verdict.outcome in {"accepted", "deferred", "bounced"}


@given(code=st.integers(200, 299), text=st.text())
def test_2xx_is_always_accepted(code: int, text: str) -> None:
    assert classify(code, text).outcome == "accepted"


@given(code=st.integers(400, 499), text=st.text())
def test_4xx_is_always_deferred(code: int, text: str) -> None:
    assert classify(code, text).outcome == "deferred"


@given(code=st.integers().filter(lambda c: not 200 <= c <= 599), text=st.text())
def test_codes_outside_2xx_to_5xx_are_never_bounced_or_accepted(
    code: int, text: str
) -> None:
    assert classify(code, text).outcome == "deferred"
