"""Avro single-object encoding: fingerprints, schema evolution, bad bytes."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from mailyard.codec import MAGIC, Codec, codec, load_schema
from mailyard.errors import CodecError
from mailyard.model import EmailEvent, RawRef


def _older_event_schema() -> dict[str, object]:
    """email_event as an earlier release wrote it: without the newest fields."""
    schema = copy.deepcopy(load_schema("email_event"))
    dropped = {"sending_ip", "user_agent", "raw"}
    schema["fields"] = [f for f in schema["fields"] if f["name"] not in dropped]
    return schema


def test_records_carry_the_writer_schema_fingerprint() -> None:
    c = codec("email_event")
    event = EmailEvent("x", "opened", "sendgrid", "open", None)
    data = c.encode(event.to_record())
    assert data[:2] == MAGIC
    assert data[2:10] == c.fingerprint
    assert c.decode(data)["event_id"] == "x"


def test_newer_reader_reads_records_written_with_an_older_schema() -> None:
    old = Codec(_older_event_schema())
    written = old.encode(
        {**EmailEvent("e1", "bounced", "mailgun", "failed", None).to_record()}
    )
    reader = Codec(load_schema("email_event"), writers=[_older_event_schema()])
    event = EmailEvent.from_record(reader.decode(written))
    assert event.event_id == "e1" and event.type == "bounced"
    assert event.sending_ip is None and event.raw is None  # defaults filled in


def test_unknown_fingerprint_is_a_clear_error() -> None:
    written = Codec(_older_event_schema()).encode(
        EmailEvent("e1", "sent", "x", "sent", None).to_record()
    )
    with pytest.raises(CodecError, match="unknown writer schema fingerprint"):
        codec("email_event").decode(written)


@pytest.mark.parametrize("data", [b"", b"{}", b"\xc3\x01short", b"\xc3\x01" + b"\0" * 8])
def test_garbage_is_refused_with_codec_error(data: bytes) -> None:
    with pytest.raises(CodecError):
        codec("raw_webhook").decode(data)


def test_event_roundtrip_keeps_timestamps_utc_and_raw_ref() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    event = EmailEvent("i", "clicked", "sparkpost", "click", ts, raw=RawRef("t", 3, 99))
    back = EmailEvent.from_record(codec("email_event").decode(codec("email_event").encode(event.to_record())))
    assert back == event
    assert back.to_json_dict()["timestamp"] == "2026-01-02T03:04:05.678901Z"
