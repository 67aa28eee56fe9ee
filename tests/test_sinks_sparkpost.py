"""SparkPost specifics: bare-key auth, recipient tags, email_rfc822."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from tests.sink_cases import CASES_BY_NAME, RAW_MIME, Served, make_delivery, serve
from tests.standins import sparkpost as standin


@pytest.fixture(scope="module")
def running() -> Iterator[Served]:
    yield from serve(CASES_BY_NAME["sparkpost"])


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


async def test_the_body_follows_the_transmissions_format(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(tags=["receipts", "eu"])

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    assert sent.request_headers["authorization"] == standin.API_KEY
    assert sent.body["recipients"] == [
        {"address": {"email": "reader@example.org"}, "tags": ["receipts", "eu"]}
    ]
    assert sent.body["metadata"] == {
        "order": "A-1001",
        MESSAGE_ID_METADATA: delivery.message_id,
    }
    content = sent.body["content"]
    assert content["from"] == "sender@example.com"
    assert content["headers"] == {MESSAGE_ID_HEADER: delivery.message_id}


async def test_raw_mime_goes_as_email_rfc822(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(raw_mime=RAW_MIME)

    await sink.send(delivery)
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert set(sent.body["content"]) == {"email_rfc822"}
    assert sent.body["content"]["email_rfc822"].startswith(
        f"{MESSAGE_ID_HEADER}: {delivery.message_id}\r\nFrom: sender@example.com"
    )


async def test_raw_mime_that_is_not_utf8_is_refused_unsent(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(raw_mime=RAW_MIME + b"\xff\xfe"))
    await sink.aclose()

    assert result.outcome == "failed"
    assert "not valid UTF-8" in result.detail
    assert served.standin.state.sent == []


async def test_a_subaccount_is_sent_as_x_msys_subaccount(served: Served) -> None:
    sink = served.sink()

    await sink.send(make_delivery(subaccount="123"))
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert sent.request_headers["x-msys-subaccount"] == "123"


async def test_a_missing_from_fails_with_sparkposts_words(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(from_addr=""))
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 422)
    assert result.detail == (
        "required field is missing: content.from is a required field (code 1400)"
    )


async def test_the_standin_refuses_a_bearer_prefix(served: Served) -> None:
    headers = {"Authorization": f"Bearer {standin.API_KEY}"}

    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        refused = await client.post("/api/v1/transmissions", json={})

    assert refused.status_code == 401
    assert refused.json() == {"errors": [{"message": standin.AUTH_ERROR}]}


async def test_the_standin_refuses_json_it_cannot_parse(served: Served) -> None:
    headers = {"Authorization": standin.API_KEY, "Content-Type": "application/json"}

    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        refused = await client.post("/api/v1/transmissions", content=b"{nope")

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "1300"
