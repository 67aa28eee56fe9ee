"""Amazon SES specifics: SigV4 signing, EmailTags, raw content, identities."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest

from mailyard.outbound import MESSAGE_ID_HEADER, MESSAGE_ID_METADATA
from sinks.amazon_ses import AmazonSesCredentials, AmazonSesSink
from tests.sink_cases import CASES_BY_NAME, RAW_MIME, Served, make_delivery, serve
from tests.standins import amazon_ses as standin


@pytest.fixture(scope="module")
def running() -> Iterator[Served]:
    yield from serve(CASES_BY_NAME["amazon_ses"])


@pytest.fixture
def served(running: Served) -> Served:
    running.standin.state.reset()
    return running


def ses_sink(served: Served, *, key_id: str, region: str) -> AmazonSesSink:
    credentials = AmazonSesCredentials(key_id, standin.SECRET_ACCESS_KEY)
    return AmazonSesSink(base_url=served.url, credentials=credentials, region=region)


async def test_the_body_follows_the_send_email_format(served: Served) -> None:
    sink = served.sink(configuration_set="transactional")
    delivery = make_delivery()

    result = await sink.send(delivery)
    await sink.aclose()

    assert result.outcome == "accepted", result.detail
    [sent] = served.standin.state.sent
    assert sent.body["Destination"] == {"ToAddresses": ["reader@example.org"]}
    assert sent.body["ConfigurationSetName"] == "transactional"
    assert sent.body["EmailTags"] == [
        {"Name": "order", "Value": "A-1001"},
        {"Name": MESSAGE_ID_METADATA, "Value": delivery.message_id},
    ]
    simple = sent.body["Content"]["Simple"]
    assert simple["Body"]["Text"]["Data"] == delivery.text
    assert {"Name": MESSAGE_ID_HEADER, "Value": delivery.message_id} in (
        simple["Headers"]
    )


async def test_the_request_is_signed_for_ses_in_the_configured_region(
    served: Served,
) -> None:
    sink = served.sink()

    await sink.send(make_delivery())
    await sink.aclose()

    [sent] = served.standin.state.sent
    authorization = sent.request_headers["authorization"]
    scope = f"{standin.ACCESS_KEY_ID}/"
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={scope}")
    assert f"/{standin.REGION}/ses/aws4_request" in authorization


async def test_an_unknown_access_key_fails_as_unrecognized(served: Served) -> None:
    sink = ses_sink(served, key_id="AKIAUNKNOWN", region=standin.REGION)

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 403)
    assert result.detail == (
        "UnrecognizedClientException: The security token included in the "
        "request is invalid."
    )


async def test_a_signature_for_another_region_is_refused(served: Served) -> None:
    sink = ses_sink(served, key_id=standin.ACCESS_KEY_ID, region="us-east-1")

    result = await sink.send(make_delivery())
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 403)
    assert result.detail.startswith("SignatureDoesNotMatch: Credential should be")


async def test_a_body_changed_after_signing_is_refused(served: Served) -> None:
    sink = served.sink()
    signed = sink.build_request(make_delivery())
    await sink.aclose()
    headers = dict(signed.headers)
    del headers["content-length"]

    async with httpx.AsyncClient() as client:
        tampered = await client.post(
            str(signed.url), headers=headers, content=signed.content + b" "
        )

    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-ErrorType"] == "SignatureDoesNotMatch"
    assert served.standin.state.sent == []


@pytest.mark.parametrize("message_id", ["<a@b>", "id.with.dots", "x" * 257])
async def test_a_message_id_ses_cannot_tag_is_refused_unsent(
    served: Served, message_id: str
) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(message_id=message_id))
    await sink.aclose()

    assert result.outcome == "failed"
    assert "SES tags allow only" in result.detail
    assert "message id" in result.detail
    assert served.standin.state.sent == []


async def test_a_metadata_value_ses_cannot_tag_is_refused_unsent(
    served: Served,
) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(metadata={"order": "A 1001"}))
    await sink.aclose()

    assert result.outcome == "failed"
    assert "metadata entry order='A 1001'" in result.detail


async def test_an_unverified_sender_fails_as_message_rejected(served: Served) -> None:
    sink = served.sink()

    result = await sink.send(make_delivery(from_addr="someone@unverified.test"))
    await sink.aclose()

    assert (result.outcome, result.http_status) == ("failed", 400)
    assert result.detail.startswith("MessageRejected: Email address is not verified.")


async def test_raw_mime_is_base64_in_raw_data(served: Served) -> None:
    sink = served.sink()
    delivery = make_delivery(raw_mime=RAW_MIME)

    await sink.send(delivery)
    await sink.aclose()

    [sent] = served.standin.state.sent
    data = base64.b64decode(sent.body["Content"]["Raw"]["Data"])
    assert data == f"{MESSAGE_ID_HEADER}: {delivery.message_id}\r\n".encode() + RAW_MIME


def test_the_default_endpoint_is_the_regions_public_one() -> None:
    credentials = AmazonSesCredentials("AKIAEXAMPLE", "secret")

    sink = AmazonSesSink(credentials=credentials, region="eu-central-1")

    assert sink.base_url == "https://email.eu-central-1.amazonaws.com"
