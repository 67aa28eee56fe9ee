"""Behaviour every connector must share, checked over all ten ESPs.

Generated traffic must normalize to the expected counts with stable ids
and well-formed fields, and no input whatsoever may make a parser raise
anything but :class:`WebhookError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.registry import CONNECTORS, esp_names, normalize
from connectors.samples import Sample, generate, write_samples
from mailyard.errors import UnknownEspError, WebhookError
from mailyard.model import EVENT_TYPES

ESPS = ["sendgrid", "mailgun", "sparkpost", "amazon_ses", "postmark", "mailjet",
        "brevo", "mandrill", "resend", "socketlabs"]  # fmt: skip
FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = {
    "sendgrid": ["application/json"],
    "mailgun": ["application/json", FORM, "multipart/form-data; boundary=b"],
    "sparkpost": ["application/json"],
    "amazon_ses": ["text/plain; charset=UTF-8"],
    "postmark": ["application/json"],
    "mailjet": ["application/json"],
    "brevo": ["application/json"],
    "mandrill": [FORM, "multipart/form-data; boundary=b"],
    "resend": ["application/json"],
    "socketlabs": ["application/json", FORM],
}  # fmt: skip
# Mandrill has no delivery event: its "send" (our "sent") is the nearest.
ACCEPTED_TYPES = {"mandrill": "sent"}
# How an ESP wraps its JSON document in the request body, and unwraps it.
WRAPPERS: dict[str, tuple[Callable[[str], bytes], Callable[[bytes], str]]] = {
    "mandrill": (
        lambda text: urlencode({"mandrill_events": text}).encode(),
        lambda body: parse_qs(body.decode())["mandrill_events"][0],
    ),
}


def wrap(esp: str, text: str) -> bytes:
    """A JSON text as ``esp`` would post it."""
    return WRAPPERS[esp][0](text) if esp in WRAPPERS else text.encode()


def unwrap(esp: str, body: bytes) -> str:
    """The JSON text inside a body ``esp`` posted."""
    return WRAPPERS[esp][1](body) if esp in WRAPPERS else body.decode()


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def traffic() -> list[Sample]:
    return generate(seed=11, n_events=1500, duplicate_rate=0.1)


def by_esp(traffic: list[Sample], esp: str) -> list[Sample]:
    return [sample for sample in traffic if sample.esp == esp]


def test_the_registry_names_exactly_the_ten_esps_in_order() -> None:
    assert esp_names() == ESPS
    assert set(CONNECTORS) == set(ESPS)


def test_an_unknown_esp_name_raises_unknown_esp_error() -> None:
    with pytest.raises(UnknownEspError, match="known ESPs are"):
        normalize("hotmail", b"[]", "application/json")


@pytest.mark.parametrize("esp", ESPS)
def test_generated_samples_normalize_to_their_expected_counts(traffic, esp) -> None:
    samples = by_esp(traffic, esp)
    assert samples, f"the generator made no {esp} traffic"
    for sample in samples:
        events = normalize(esp, sample.body, sample.content_type)
        assert len(events) == sample.expected_events
        assert {event.esp for event in events} <= {esp}


@pytest.mark.parametrize("esp", ESPS)
def test_event_ids_are_stable_across_parses_and_unique_within_traffic(
    traffic, esp
) -> None:
    ids: list[str] = []
    for sample in by_esp(traffic, esp):
        first = [e.event_id for e in normalize(esp, sample.body, sample.content_type)]
        again = [e.event_id for e in normalize(esp, sample.body, sample.content_type)]
        assert first == again
        if not sample.duplicate:
            ids.extend(first)
    assert len(ids) == len(set(ids))


def test_duplicates_resend_an_earlier_body_byte_for_byte(traffic) -> None:
    duplicates = [s for s in traffic if s.duplicate]
    originals = {s.body for s in traffic if not s.duplicate}
    assert duplicates
    assert all(d.body in originals for d in duplicates)


@pytest.mark.parametrize("esp", ESPS)
def test_events_are_well_formed(traffic, esp) -> None:
    seen_types: set[str] = set()
    for sample in by_esp(traffic, esp):
        for event in normalize(esp, sample.body, sample.content_type):
            seen_types.add(event.type)
            assert event.type in EVENT_TYPES
            assert event.timestamp is not None
            assert event.timestamp.utcoffset() == timedelta(0)
            assert event.recipient and "<" not in event.recipient
            assert event.recipient_domain == event.recipient.rsplit("@", 1)[1].lower()
            if event.type not in ("bounced", "deferred"):
                assert event.bounce_class is None
            if event.type == "deferred":
                assert event.bounce_class == "soft"
            if event.type in ("bounced", "deferred") and event.smtp_code is not None:
                assert 200 <= event.smtp_code <= 599
            assert (event.url is not None) == (event.type == "clicked")
            assert all(isinstance(v, str) for v in event.metadata.values())
    accepted = ACCEPTED_TYPES.get(esp, "delivered")
    assert {accepted, "opened", "bounced", "deferred"} <= seen_types


def test_generated_traffic_carries_our_ids_and_real_smtp_replies(traffic) -> None:
    events = [e for s in traffic for e in normalize(s.esp, s.body, s.content_type)]
    assert sum(e.message_id is not None for e in events) > len(events) / 2
    bounce_codes = {e.smtp_code for e in events if e.type == "bounced"}
    assert {550, 554} <= bounce_codes
    assert 421 in {e.smtp_code for e in events if e.type == "deferred"}
    providers = {e.mailbox_provider for e in events}
    assert providers >= {"gmail", "microsoft", "yahoo", "apple", "other"}


def test_the_same_seed_gives_the_same_bytes_and_another_seed_differs() -> None:
    first = generate(seed=3, n_events=200)
    assert [s.body for s in first] == [s.body for s in generate(seed=3, n_events=200)]
    assert [s.body for s in first] != [s.body for s in generate(seed=4, n_events=200)]


def test_generate_can_be_limited_to_some_esps() -> None:
    samples = generate(seed=1, n_events=100, esps=["postmark", "mailjet"])
    assert {s.esp for s in samples} == {"postmark", "mailjet"}
    assert sum(s.expected_events for s in samples) >= 100


def test_write_samples_writes_bodies_and_a_manifest(tmp_path, traffic) -> None:
    manifest_path = write_samples(tmp_path, traffic[:20])
    manifest = json.loads(manifest_path.read_text())
    assert len(manifest) == 20
    for entry, sample in zip(manifest, traffic[:20]):
        assert (tmp_path / entry["file"]).read_bytes() == sample.body
        assert entry["esp"] == sample.esp
        assert entry["content_type"] == sample.content_type
        assert entry["expected_events"] == sample.expected_events


def test_subaccount_is_set_on_every_event(traffic) -> None:
    sample = next(s for s in traffic if s.expected_events > 1)
    events = normalize(sample.esp, sample.body, sample.content_type, subaccount="eu-1")
    assert {e.subaccount for e in events} == {"eu-1"}


def only_webhook_errors(esp: str, body: bytes, content_type: str) -> None:
    try:
        events = normalize(esp, body, content_type)
    except WebhookError:
        return
    for event in events:
        assert event.type in EVENT_TYPES


@pytest.mark.parametrize("esp", ESPS)
@FUZZ
@given(data=st.data(), body=st.binary(max_size=300))
def test_random_bytes_raise_nothing_but_webhook_error(esp, data, body) -> None:
    only_webhook_errors(esp, body, data.draw(st.sampled_from(CONTENT_TYPES[esp])))


@pytest.mark.parametrize("esp", ESPS)
@FUZZ
@given(value=json_values)
def test_random_json_values_raise_nothing_but_webhook_error(esp, value) -> None:
    text = json.dumps(value)
    only_webhook_errors(esp, wrap(esp, text), CONTENT_TYPES[esp][0])
    only_webhook_errors(esp, wrap(esp, f"[{text}]"), CONTENT_TYPES[esp][0])


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document a value could be swapped in."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()  # fmt: skip
    for key, child in items:
        found.extend(paths(child, (*prefix, key)))
    return found


def replaced(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replaced(document[path[0]], path[1:], new)
    return copy


@pytest.mark.parametrize("esp", ESPS)
@FUZZ
@given(data=st.data())
def test_real_events_with_any_field_swapped_raise_nothing_but_webhook_error(
    traffic, esp, data
) -> None:
    json_samples = [
        s
        for s in by_esp(traffic, esp)
        if "form" not in s.content_type or esp in WRAPPERS
    ]
    sample = data.draw(st.sampled_from(json_samples[:30]))
    document = json.loads(unwrap(esp, sample.body))
    # SES hides its notification in a string; swap fields inside it too.
    inner = esp == "amazon_ses" and isinstance(document.get("Message"), str)
    if inner and document["Message"].startswith("{"):
        document["Message"] = json.loads(document["Message"])
    path = data.draw(st.sampled_from(paths(document)))
    mutated = replaced(document, path, data.draw(json_values))
    if inner and isinstance(mutated, dict) and isinstance(mutated.get("Message"), dict):
        mutated["Message"] = json.dumps(mutated["Message"])
    only_webhook_errors(esp, wrap(esp, json.dumps(mutated)), sample.content_type)


MAILGUN_FIELDS = [
    "event", "recipient", "timestamp", "code", "error", "Message-Id", "tag", "url",
    "signature", "token", "description", "user-agent",
]  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(MAILGUN_FIELDS), st.text(max_size=20))))
def test_random_mailgun_legacy_forms_raise_nothing_but_webhook_error(fields) -> None:
    from urllib.parse import urlencode

    form = urlencode(fields).encode()
    only_webhook_errors("mailgun", form, "application/x-www-form-urlencoded")


@pytest.mark.parametrize("esp", ESPS)
@FUZZ
@given(content_type=st.text(max_size=60), body=st.sampled_from(
    [b"{}", b"[]", b"event=opened", b"--b\r\nContent-Disposition: form-data\r\n\r\nx"]
))  # fmt: skip
def test_any_content_type_raises_nothing_but_webhook_error(
    esp, content_type, body
) -> None:
    only_webhook_errors(esp, body, content_type)
    only_webhook_errors(esp, body, f"multipart/form-data; boundary={content_type}")


SOCKETLABS_FIELDS = [
    "Type", "DateTime", "Address", "MessageId", "MailingId", "FailureType",
    "FailureCode", "TrackingType", "DeferralCode", "Reason", "Url", "UserAgent",
]  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(SOCKETLABS_FIELDS), st.text(max_size=20))))
def test_random_socketlabs_legacy_forms_raise_nothing_but_webhook_error(fields) -> None:
    form = urlencode(fields).encode()
    only_webhook_errors("socketlabs", form, FORM)
