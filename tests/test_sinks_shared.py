"""Behaviour every ESP relay sink must show, checked against each stand-in."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from tests.sink_cases import CASES, RAW_MIME, Served, make_delivery, serve
from tests.standins.base import FAILURE_TEXT


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def running(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from serve(request.param)


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


async def test_a_valid_delivery_is_accepted_and_recorded_once(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery()

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    assert result.http_status in (200, 202)
    [sent] = served.standin.state.sent
    assert result.provider_message_id == sent.provider_message_id
    assert sent.recipients == [delivery.recipient]
    assert sent.metadata[MESSAGE_ID_METADATA] == delivery.message_id
    assert sent.header(MESSAGE_ID_HEADER) == delivery.message_id
    assert sent.subject == delivery.subject


async def test_a_wrong_key_fails_with_the_providers_error_text(served: Served) -> None:
    sink = served.sink(right_key=False)

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert result.outcome == "failed"
    assert result.http_status == served.case.auth_status
    assert result.detail.startswith(served.case.auth_error)
    assert served.standin.state.sent == []


@pytest.mark.parametrize("mode,status", [("fail_503", 503), ("fail_500", 500)])
async def test_a_server_error_is_deferred(
    served: Served, mode: Any, status: int
) -> None:
    served.standin.state.control(mode)
    sink = served.sink()

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("deferred", status)
    assert FAILURE_TEXT[status] in result.detail
    assert result.retry_after_s is None
    assert served.standin.state.sent == []


async def test_a_rate_limit_is_deferred_for_retry_after(served: Served) -> None:
    served.standin.state.control("fail_429", retry_after=17)
    sink = served.sink()

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("deferred", 429)
    assert result.retry_after_s == 17.0
    assert FAILURE_TEXT[429] in result.detail


async def test_a_bad_request_fails_with_the_providers_text(served: Served) -> None:
    served.standin.state.control("fail_400")
    sink = served.sink()

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 400)
    assert FAILURE_TEXT[400] in result.detail


async def test_a_timeout_is_deferred(served: Served) -> None:
    served.standin.state.control("slow", delay_s=1.0)
    sink = served.sink(timeout_s=0.1)

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert result.outcome == "deferred"
    assert "timed out" in result.detail
    assert result.http_status is None


async def test_an_unreachable_destination_is_deferred(served: Served) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    sink = served.case.sink(f"http://127.0.0.1:{closed_port}")

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert result.outcome == "deferred"
    assert "ConnectError" in result.detail


async def test_a_wrong_path_fails_with_a_404(served: Served) -> None:
    sink = served.case.sink(f"{served.url}/not-the-api")

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 404)
    assert "No such resource: /not-the-api/" in result.detail


async def test_raw_mime_carries_our_header_or_is_refused_unsent(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(raw_mime=RAW_MIME, subject=None, text=None, html=None)

    result = await sink.send(delivery)
    await sink.aclose()

    if not served.case.supports_raw:
        assert result.outcome == "failed"
        assert "raw MIME" in result.detail
        assert served.standin.state.sent == []
        return
    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    assert sent.raw_mime is not None
    assert sent.raw_mime.endswith(RAW_MIME.decode())
    assert sent.header(MESSAGE_ID_HEADER) == delivery.message_id
    assert sent.subject == "Raw receipt"


async def test_a_header_with_a_line_break_is_refused_unsent(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(headers={"X-Campaign": "spring\r\nBcc: all@example.org"})

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "failed"
    assert "line break" in result.detail
    assert served.standin.state.sent == []


async def test_an_unknown_field_is_refused_by_the_standin(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = __import__(served.case.sink_class.__module__, fromlist=["_"])
    build = getattr(module, served.case.body_builder)
    monkeypatch.setattr(
        module,
        served.case.body_builder,
        lambda *args: {**build(*args), "unexpected_field": "x"},
    )
    sink = served.sink()

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert result.outcome == "failed"
    assert result.http_status in (400, 422)
    assert "unexpected_field" in result.detail
    assert served.standin.state.sent == []


async def test_no_more_than_max_concurrency_requests_are_in_flight(
    served: Served,
) -> None:
    served.standin.state.control("slow", delay_s=0.05)
    sink = served.sink(max_concurrency=2)

    results = await asyncio.gather(*(sink.send(make_delivery()) for _ in range(8)))
    await sink.aclose()

    assert [r.outcome for r in results] == ["accepted"] * 8
    assert len(served.standin.state.sent) == 8
    assert served.standin.state.peak_in_flight == 2


async def test_sequential_sends_reuse_one_connection(served: Served) -> None:
    sink = served.sink()

    for _ in range(3):
        assert (await sink.send(make_delivery())).outcome == "accepted"
    await sink.aclose()

    ports = {sent.client_port for sent in served.standin.state.sent}
    assert len(ports) == 1


async def test_the_control_endpoint_steers_the_standin_over_http(
    served: Served,
) -> None:
    sink = served.sink()
    async with httpx.AsyncClient(base_url=served.url) as control:
        switched = await control.post("/_control", json={"mode": "fail_503"})
        deferred = await sink.send(make_delivery())
        await control.post("/_reset")
        accepted = await sink.send(make_delivery())
        listed = (await control.get("/_sent")).json()
        refused = await control.post("/_control", json={"mode": "explode"})
    await sink.aclose()

    assert switched.json()["mode"] == "fail_503"
    assert (deferred.outcome, accepted.outcome) == ("deferred", "accepted")
    assert listed["count"] == 1
    assert listed["messages"][0]["provider_message_id"] == accepted.provider_message_id
    assert refused.status_code == 400
