"""The shared pieces of the ESP sinks: Retry-After, raw headers, the runner."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailyard.outbound import MESSAGE_ID_HEADER
from sinks.esp_http import UnsendableDelivery, parse_retry_after, raw_with_header
from tests.sink_cases import RAW_MIME, make_delivery

REPO = Path(__file__).resolve().parent.parent


@given(st.integers(min_value=0, max_value=10**9))
def test_retry_after_seconds_are_read_as_given(seconds: int) -> None:
    assert parse_retry_after(str(seconds)) == float(seconds)


def test_retry_after_as_an_http_date_is_seconds_from_now() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=120)

    wait = parse_retry_after(format_datetime(when, usegmt=True))

    assert wait is not None
    assert 110 <= wait <= 121


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3"])
def test_retry_after_that_is_neither_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_a_past_retry_after_date_means_no_wait() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_our_header_follows_the_messages_own_line_endings() -> None:
    delivery = make_delivery(raw_mime=RAW_MIME.replace(b"\r\n", b"\n"))

    raw = raw_with_header("test", delivery)

    assert raw.startswith(f"{MESSAGE_ID_HEADER}: {delivery.message_id}\nFrom:".encode())


def test_our_header_in_the_body_does_not_count_as_present() -> None:
    delivery = make_delivery()
    delivery.raw_mime = RAW_MIME + f"{MESSAGE_ID_HEADER}: other\r\n".encode()

    raw = raw_with_header("test", delivery)

    assert raw.startswith(f"{MESSAGE_ID_HEADER}: {delivery.message_id}".encode())


def test_a_message_id_with_a_line_break_cannot_become_a_header() -> None:
    delivery = make_delivery(message_id="abc\r\nBcc: x@example.org", raw_mime=RAW_MIME)

    with pytest.raises(UnsendableDelivery, match="line break"):
        raw_with_header("test", delivery)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_standin_runs_standalone_and_is_steered_over_http() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "tests.standins", "postmark", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_up(url, process)
        switched = httpx.post(f"{url}/_control", json={"mode": "fail_503"})
        refused = httpx.post(f"{url}/email", json={})
        sent = httpx.get(f"{url}/_sent").json()
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert switched.json()["mode"] == "fail_503"
    assert refused.status_code == 503
    assert refused.json()["Message"] == "Service Unavailable"
    assert sent == {"count": 0, "messages": []}


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the stand-in process exited early"
        try:
            httpx.get(f"{url}/_control", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"The stand-in on {url} did not come up.")
