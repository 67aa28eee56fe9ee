"""SendGrid specifics: the Mail Send body, categories, subusers, refusals."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from tests.sink_cases import CASES_BY_NAME, Served, make_delivery, serve
from tests.standins import sendgrid as standin


@pytest.fixture(scope="module")
def running() -> Iterator[Served]:
    yield from serve(CASES_BY_NAME["sendgrid"])


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


async def test_the_body_follows_the_mail_send_format(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(headers={"List-Unsubscribe": "<mailto:u@example.com>"})

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    [personalization] = sent.body["personalizations"]
    assert personalization["to"] == [{"email": "reader@example.org"}]
    assert personalization["custom_args"] == {
        "order": "A-1001",
        MESSAGE_ID_METADATA: delivery.message_id,
    }
    assert sent.body["from"] == {"email": "sender@example.com"}
    assert [part["type"] for part in sent.body["content"]] == [
        "text/plain",
        "text/html",
    ]
    assert sent.body["headers"] == {
        "List-Unsubscribe": "<mailto:u@example.com>",
        MESSAGE_ID_HEADER: delivery.message_id,
    }
    assert sent.request_headers["authorization"] == f"Bearer {standin.API_KEY}"


async def test_tags_become_at_most_ten_distinct_categories(served: Served) -> None:
    tags = ["a", "a"] + [f"t{n}" for n in range(12)]
    sink = served.sink()

    await sink.send(make_delivery(tags=tags))
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert sent.tags == ["a"] + [f"t{n}" for n in range(9)]


async def test_a_subaccount_is_sent_as_on_behalf_of(served: Served) -> None:
    sink = served.sink()

    await sink.send(make_delivery(subaccount="shop-eu"))
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert sent.request_headers["on-behalf-of"] == "shop-eu"


async def test_a_reserved_header_fails_with_sendgrids_words(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(headers={"Subject": "sneaky"}))
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 400)
    expected = "The header Subject is reserved and cannot be set. (field: headers)"
    assert result.detail == expected


async def test_a_delivery_without_a_body_is_refused_unsent(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(text=None, html=None))
    await sink.aclose()

    assert result.outcome == "failed"
    assert "neither" in result.detail
    assert served.standin.state.sent == []


async def test_the_standin_wants_plain_text_before_html(served: Served) -> None:
    body = {
        "personalizations": [{"to": [{"email": "reader@example.org"}]}],
        "from": {"email": "sender@example.com"},
        "subject": "Hi",
        "content": [
            {"type": "text/html", "value": "<p>Hi</p>"},
            {"type": "text/plain", "value": "Hi"},
        ],
    }
    headers = {"Authorization": f"Bearer {standin.API_KEY}"}

    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        refused = await client.post("/v3/mail/send", json=body)
        wrong_method = await client.get("/v3/mail/send")

    assert refused.status_code == 400
    assert refused.json()["errors"][0]["message"].startswith("If present, text/plain")
    assert wrong_method.status_code == 405
    assert "errors" in wrong_method.json()


async def test_the_standin_wants_json(served: Served) -> None:
    headers = {"Authorization": f"Bearer {standin.API_KEY}"}

    async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
        refused = await client.post("/v3/mail/send", data={"subject": "Hi"})

    assert refused.status_code == 415
    assert served.standin.state.sent == []
