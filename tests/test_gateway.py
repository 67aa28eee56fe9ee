"""The gateway's answers to bad requests, and 503 when the broker is away.

None of these requests reaches Kafka: each is refused before the produce,
or (for the 503) is produced to a port where no broker listens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.gateway import check_body, create_gateway
from mailyard.settings import Settings
from tests.e2e import free_port
from tests.tenant_fixtures import open_directory


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        bootstrap=f"127.0.0.1:{free_port()}", max_body_bytes=1000, produce_timeout_s=1.0
    )
    # Unsigned webhooks at /webhooks/{esp}: these tests are about the body.
    app = create_gateway(settings, tenants=open_directory())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        yield c


async def _post(
    client: httpx.AsyncClient, path: str, body: bytes, ctype: str = "application/json"
) -> httpx.Response:
    return await client.post(path, content=body, headers={"content-type": ctype})


async def test_unknown_esp_is_404_and_names_the_known_ones(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/nosuchesp", b"[]")
    assert reply.status_code == 404
    assert "sendgrid" in reply.json()["known"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/sendgrid", b"[" + b" " * 2000 + b"]")
    assert reply.status_code == 413 and "1000-byte limit" in reply.json()["error"]


async def test_invalid_json_is_400_with_the_parser_position(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/sendgrid", b'[{"event": "open",}]')
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"] and "column" in reply.json()["error"]


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/mailgun", b"<xml/>", "application/xml")
    assert reply.status_code == 415


async def test_bad_subaccount_name_is_400(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/sendgrid/bad%20name", b"[]")
    assert reply.status_code == 400


async def test_broker_unavailable_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    reply = await _post(client, "/webhooks/sendgrid", b"[]")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"


async def test_broker_unavailable_is_429_for_brevo_which_drops_5xx_answers(
    client: httpx.AsyncClient,
) -> None:
    reply = await _post(client, "/webhooks/brevo", b'{"event": "delivered"}')
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "5"


async def test_json_nested_too_deeply_is_400_not_a_crash() -> None:
    settings = Settings(bootstrap=f"127.0.0.1:{free_port()}", produce_timeout_s=1.0)
    app = create_gateway(settings, tenants=open_directory())
    deep = b"[" * 5000 + b"]" * 5000

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        reply = await _post(client, "/webhooks/sendgrid", deep)

    assert reply.status_code == 400
    assert "nests too deeply" in reply.json()["error"]


async def test_head_probe_answers_for_known_esps(client: httpx.AsyncClient) -> None:
    assert (await client.head("/webhooks/mandrill-nope")).status_code == 404
    assert (await client.head("/webhooks/sendgrid")).status_code == 200


@pytest.mark.parametrize(
    ("ctype", "body", "fragment"),
    [
        ("application/x-www-form-urlencoded", b"a=1&&=", "form encoding"),
        ("multipart/form-data", b"--x\r\n", "boundary"),
        ("text/plain", b"not json", "JSON"),
        ("application/json", b"", "empty"),
    ],
)
def test_check_body_names_what_is_wrong(ctype: str, body: bytes, fragment: str) -> None:
    assert fragment in (check_body(ctype, body) or "")
