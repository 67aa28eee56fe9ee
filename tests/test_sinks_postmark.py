"""Postmark specifics: message streams, one tag, metadata limits, tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from tests.sink_cases import CASES_BY_NAME, Served, make_delivery, serve
from tests.standins import postmark as standin


@pytest.fixture(scope="module")
def running() -> Iterator[Served]:
    yield from serve(CASES_BY_NAME["postmark"])


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


async def test_the_body_follows_the_email_api_format(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(tags=["receipts", "eu"])

    result = await sink.send(delivery)
    await sink.aclose()

    assert (result.outcome, result.detail) == ("accepted", "OK")
    [sent] = served.standin.state.sent
    assert sent.body["To"] == "reader@example.org"
    assert sent.body["Tag"] == "receipts"
    assert sent.body["MessageStream"] == "outbound"
    assert sent.body["Metadata"] == {
        "order": "A-1001",
        MESSAGE_ID_METADATA: delivery.message_id,
    }
    assert sent.body["Headers"] == [
        {"Name": MESSAGE_ID_HEADER, "Value": delivery.message_id}
    ]
    assert sent.request_headers["x-postmark-server-token"] == standin.SERVER_TOKEN


async def test_the_destination_picks_the_message_stream_not_our_stream_name(
    served: Served,
) -> None:
    # Mailyard's streams (transactional, marketing...) are not Postmark's
    # message stream ids, which belong to the server the destination names.
    sink = served.sink(message_stream="broadcast")

    await sink.send(make_delivery(stream="transactional"))
    await sink.send(make_delivery())
    await sink.aclose()

    streams = [sent.body["MessageStream"] for sent in served.standin.state.sent]
    assert streams == ["broadcast", "broadcast"]


async def test_an_unknown_stream_fails_with_postmarks_words(served: Served) -> None:
    sink = served.sink(message_stream="newsletters")

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 422)
    assert result.detail == (
        "The message stream for the provided 'ID' (newsletters) was not found. "
        "(ErrorCode 1235)"
    )


async def test_metadata_over_postmarks_limits_fails_with_its_words(
    served: Served,
) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(metadata={"order": "x" * 81}))
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 422)
    assert "Metadata field 'order' is too long" in result.detail
    assert served.standin.state.sent == []


async def test_the_standin_refuses_a_missing_token(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        refused = await client.post("/email", json={})

    assert refused.status_code == 401
    assert refused.json() == {"ErrorCode": 10, "Message": standin.NO_TOKEN}


async def test_the_standin_refuses_a_number_where_text_belongs(
    served: Served,
) -> None:
    headers = {"X-Postmark-Server-Token": standin.SERVER_TOKEN}
    body = {"From": "sender@example.com", "To": 42, "TextBody": "Hi"}

    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        refused = await client.post("/email", json=body)

    assert refused.status_code == 422
    assert refused.json()["ErrorCode"] == 300
    assert "To" in refused.json()["Message"]
