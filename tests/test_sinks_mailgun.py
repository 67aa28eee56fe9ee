"""Mailgun specifics: form fields, the MIME endpoint, domains, message ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from tests.sink_cases import CASES_BY_NAME, RAW_MIME, Served, make_delivery, serve


@pytest.fixture(scope="module")
def running() -> Iterator[Served]:
    yield from serve(CASES_BY_NAME["mailgun"])


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


async def test_fields_use_mailguns_prefixes(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(tags=["a", "b", "c", "d"])

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    fields = {key for key, _ in sent.body}
    assert {"from", "to", "subject", "text", "html"} <= fields
    assert [v for k, v in sent.body if k == "o:tag"] == ["a", "b", "c"]
    assert ["v:order", "A-1001"] in sent.body
    assert [f"v:{MESSAGE_ID_METADATA}", delivery.message_id] in sent.body
    assert [f"h:{MESSAGE_ID_HEADER}", delivery.message_id] in sent.body


async def test_the_message_id_loses_its_angle_brackets(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert result.provider_message_id is not None
    assert not result.provider_message_id.startswith("<")
    assert result.provider_message_id.endswith("@mg.standin.test")
    assert result.detail == "Queued. Thank you."


async def test_raw_mime_goes_to_the_mime_endpoint_with_routing_fields(
    served: Served,
) -> None:
    sink = served.sink()
    delivery = make_delivery(raw_mime=RAW_MIME, tags=["raw"])

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    assert sent.raw_mime == f"{MESSAGE_ID_HEADER}: {delivery.message_id}\r\n" + (
        RAW_MIME.decode()
    )
    assert sent.recipients == [delivery.recipient]
    assert sent.tags == ["raw"]
    assert sent.metadata[MESSAGE_ID_METADATA] == delivery.message_id


async def test_raw_mime_with_another_message_id_is_refused_unsent(
    served: Served,
) -> None:
    raw = f"{MESSAGE_ID_HEADER}: someone-else\r\n".encode() + RAW_MIME
    sink = served.sink()

    result = await sink.send(make_delivery(raw_mime=raw))
    await sink.aclose()

    assert result.outcome == "failed"
    assert "someone-else" in result.detail
    assert served.standin.state.sent == []


async def test_raw_mime_already_carrying_our_id_is_sent_unchanged(
    served: Served,
) -> None:
    delivery = make_delivery()
    delivery.raw_mime = f"{MESSAGE_ID_HEADER}: {delivery.message_id}\r\n".encode()
    delivery.raw_mime += RAW_MIME
    sink = served.sink()

    await sink.send(delivery)
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert sent.raw_mime == delivery.raw_mime.decode()


async def test_an_unknown_domain_fails_with_mailguns_words(served: Served) -> None:
    sink = served.sink(domain="other.test")

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 404)
    assert result.detail == "Domain not found: other.test"


async def test_a_subaccount_is_sent_on_behalf_of(served: Served) -> None:
    sink = served.sink()

    await sink.send(make_delivery(subaccount="sub-42"))
    await sink.aclose()

    [sent] = served.standin.state.sent
    assert sent.request_headers["x-mailgun-on-behalf-of"] == "sub-42"


async def test_an_empty_subject_is_still_sent(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(subject=None))
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    assert served.standin.state.sent[0].subject == ""
