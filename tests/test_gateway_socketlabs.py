"""SocketLabs validates an endpoint by finding its validation key in the reply.

The gateway runs in process against the session's broker; the subaccount's
SocketLabs settings hold a secret key (checked in every post) and the
validation key (echoed in every accepted post's reply).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from connectors.gateway import RawProducer, create_gateway
from mailyard.settings import Settings
from mailyard.tenancy import Subaccount, TenantDirectory, subaccount_record

SECRET = "sl-secret-7f3a"
VALIDATION = "sl-validation-91c2"


def _directory(config: dict[str, object]) -> TenantDirectory:
    directory = TenantDirectory()
    key, value = subaccount_record(
        Subaccount("labs", webhook_auth={"socketlabs": config})
    )
    directory.apply(key.decode(), value)
    return directory


@pytest.fixture
async def gateway(kafka_bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    producer = RawProducer(kafka_bootstrap, timeout_s=10.0)
    directory = _directory({"secret_keys": [SECRET], "validation_key": VALIDATION})
    app = create_gateway(
        Settings(bootstrap=kafka_bootstrap), producer, tenants=directory
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client
    producer.close()


def _validation_post(secret: str) -> bytes:
    return json.dumps(
        {
            "Type": "Validation",
            "SecretKey": secret,
            "ServerId": 4242,
            "DateTime": "2026-12-04T10:00:00Z",
        }
    ).encode()


async def test_a_validation_post_with_the_secret_key_gets_the_validation_key_back(
    gateway: httpx.AsyncClient,
) -> None:
    reply = await gateway.post(
        "/webhooks/socketlabs/labs",
        content=_validation_post(SECRET),
        headers={"content-type": "application/json"},
    )

    assert reply.status_code == 200, reply.text
    assert VALIDATION in reply.text


async def test_a_post_with_a_wrong_secret_key_is_401_and_does_not_reveal_the_key(
    gateway: httpx.AsyncClient,
) -> None:
    reply = await gateway.post(
        "/webhooks/socketlabs/labs",
        content=_validation_post("not-the-secret"),
        headers={"content-type": "application/json"},
    )

    assert reply.status_code == 401
    assert VALIDATION not in reply.text
    assert SECRET not in reply.text
