"""The OpenAPI documents of the gateway and the worker API, held to the apps.

Every operation says who may call it: an API key with a named scope, or
explicitly nobody's key (the webhooks, which ESPs sign, and the probes),
and every operation that asks for a key answers 401 without one. Then
schemathesis sends each operation valid and invalid requests with an
admin key: no answer may be a 5xx, and each must be one the document
lists, with its content type, headers and body shape. The copies in
``docs/openapi/`` (``mailyard openapi``) must match what the apps serve.

Both apps run in process against the session's broker. The worker's Faust
app does not run: its API is served with what Faust would start first, the
readers of ``mailyard.tenants`` and of the relay's topics, so every
endpoint answers as in a worker except ``/readyz``, which says "not ready"
(503), as it should. The run writes little to the shared topics: generated
rule sets and configs are almost never valid, webhook bodies are filed
under this module's own subaccount, and subaccounts, keys and suppressions
get random names.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.gateway import RawProducer, create_gateway
from connectors.registry import esp_names
from connectors.webhook_auth import CertificateStore, validate_config
from mailyard.cli import main
from mailyard.settings import Settings
from mailyard.tenancy import installation_record
from mailyard.tenant_ops import publish_sync
from streams.api import create_api
from streams.app import Worker
from tests.tenant_fixtures import admin_key, bearer, open_directory, subaccount_unsigned

pytestmark = pytest.mark.kafka

DOCS = Path(__file__).resolve().parent.parent / "docs" / "openapi"
ADMIN = admin_key()
SUBACCOUNT = "openapi-probe"
# Path parameters that get past "no such subaccount" to an operation's checks.
KNOWN_PATH_VALUES = {"esp": "sendgrid", "subaccount": SUBACCOUNT, "name": SUBACCOUNT}
KEYLESS_PATHS = {
    "/healthz",
    "/readyz",
    "/webhooks/{esp}",
    "/webhooks/{esp}/{subaccount}",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
REQUEST_TIMEOUT_S = 30.0
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# Operations with a known 5xx, until it is fixed: the reason names the bug.
# Operations known to answer 5xx to some input, each with the reason; each is
# an xfail until fixed. None is known now.
KNOWN_SERVER_ERRORS: dict[str, str] = {}


def committed(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / f"{name}.openapi.json").read_text())
    return document


def labels(name: str) -> list[Any]:
    """The committed document's operations, each a test (known 5xx: xfail)."""
    found = [
        f"{method.upper()} {path}"
        for path, item in committed(name)["paths"].items()
        for method in item
    ]
    return [
        pytest.param(label, marks=pytest.mark.xfail(reason=KNOWN_SERVER_ERRORS[label]))
        if label in KNOWN_SERVER_ERRORS
        else label
        for label in found
    ]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


# --- the apps ---------------------------------------------------------------


def _installation_webhook_auth() -> dict[str, dict[str, Any]]:
    """Real credentials for every ESP, so refusals go through each verifier."""
    sendgrid_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = sendgrid_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    basic = {"basic_auth": ["esp:openapi-password"]}
    configs: dict[str, dict[str, Any]] = {
        "sendgrid": {"public_keys": [base64.b64encode(der).decode()]},
        "mailgun": {"signing_keys": ["openapi-signing-key"]},
        "sparkpost": {"header": {"name": "x-openapi-token", "values": ["token"]}},
        "amazon_ses": {
            "topic_arns": ["arn:aws:sns:us-east-1:123456789012:openapi"],
            **basic,
        },
        "postmark": basic,
        "mailjet": basic,
        "brevo": {"bearer_tokens": ["openapi-token"]},
        "mandrill": {"webhook_keys": ["openapi-webhook-key"]},
        "resend": {"secrets": ["whsec_" + base64.b64encode(b"openapi-svix").decode()]},
        "socketlabs": {"secret_keys": ["openapi-secret"], "validation_key": "v"},
    }
    assert set(configs) == set(esp_names())
    return {esp: validate_config(esp, config) for esp, config in configs.items()}


def _no_fetch(url: str) -> bytes:
    raise OSError(f"The test gateway fetches no SNS certificate ({url}).")


async def _no_confirmation(url: str) -> None:
    raise AssertionError(f"The gateway tried to confirm an SNS subscription: {url}")


@pytest.fixture(scope="module")
def gateway(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    settings = Settings(
        bootstrap=kafka_bootstrap,
        data_dir=tmp_path_factory.mktemp("openapi-gateway"),
        max_body_bytes=64 * 1024,
        max_message_bytes=64 * 1024,
        # A broker that has just started may take a while to load its
        # transaction coordinator, which an idempotent producer's first
        # write waits for.
        produce_timeout_s=REQUEST_TIMEOUT_S - 5,
    )
    producer = RawProducer(kafka_bootstrap, settings.produce_timeout_s)
    # /webhooks/{esp} checks real credentials; the subaccount's entry points
    # take unsigned bodies, so generated ones reach the broker, filed under it.
    directory = open_directory(ADMIN, subaccounts=(SUBACCOUNT,))
    key, value = installation_record({"webhook_auth": _installation_webhook_auth()})
    directory.apply(key.decode(), value)
    yield create_gateway(
        settings,
        producer,
        tenants=directory,
        certificates=CertificateStore(_no_fetch),
        confirm=_no_confirmation,
    )
    producer.close()


@pytest.fixture(scope="module")
def worker_api(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    settings = Settings(
        bootstrap=kafka_bootstrap,
        data_dir=tmp_path_factory.mktemp("openapi-worker"),
        admin_key=ADMIN,
        # The relay's API without the dispatch stage, whose retry forwarder
        # would join the consumer group of other tests' workers.
        worker_stages=("route", "status"),
    )
    publish_sync(kafka_bootstrap, [subaccount_unsigned(SUBACCOUNT)])
    worker = Worker(settings, app_id="mailyard-openapi-test", web_enabled=False)
    relay = worker.relay
    assert relay is not None

    @contextlib.asynccontextmanager
    async def faust_startup(_app: Any) -> AsyncIterator[None]:
        # What the Faust app starts before the API serves, on the event loop
        # that serves the requests; the agents are not needed.
        await worker._start_tenants()
        await relay._start()
        await asyncio.wait_for(relay.ready(), timeout=60)
        yield
        for reader in [worker._tenant_reader, *relay._readers]:
            await reader.stop()

    api = create_api(worker)
    api.router.lifespan_context = faust_startup
    yield api
    worker.producer.close()


@pytest.fixture(params=["gateway", "worker"])
def app(request: pytest.FixtureRequest) -> tuple[str, FastAPI]:
    fixture = "gateway" if request.param == "gateway" else "worker_api"
    found: FastAPI = request.getfixturevalue(fixture)
    return request.param, found


# --- the documents ----------------------------------------------------------


def test_committed_documents_are_the_ones_the_apps_serve(
    app: tuple[str, FastAPI],
) -> None:
    name, api = app
    served = json.loads(json.dumps(api.openapi()))
    assert served == committed(name), "docs/openapi/ is stale: run `mailyard openapi`"


def test_mailyard_openapi_writes_both_documents(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILYARD_KAFKA_BOOTSTRAP", kafka_bootstrap)
    assert main(["openapi", "--out", str(tmp_path)]) == 0
    for name in ("gateway", "worker"):
        written = (tmp_path / f"{name}.openapi.json").read_text()
        assert written == (DOCS / f"{name}.openapi.json").read_text()


def test_every_operation_has_a_summary_and_declares_its_security(
    app: tuple[str, FastAPI],
) -> None:
    for label, operation in operations(app[1].openapi()):
        assert operation.get("summary"), label
        assert "security" in operation, f"{label} declares no security"
        for requirement in operation["security"]:
            (scope,) = requirement["ApiKey"]
            assert operation["description"].startswith(f"Scope: {scope}."), label
            assert {"401", "403", "429"} <= set(operation["responses"]), label
        if not operation["security"]:
            assert label.split(" ", 1)[1] in KEYLESS_PATHS, label


async def test_every_operation_that_takes_a_key_answers_401_without_one(
    app: tuple[str, FastAPI],
) -> None:
    protected = [
        label
        for label, operation in operations(app[1].openapi())
        if operation["security"]
    ]
    transport = httpx.ASGITransport(app=app[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for label in protected:
            method, path = label.split(" ", 1)
            for name, value in KNOWN_PATH_VALUES.items():
                path = path.replace(f"{{{name}}}", value)
            for headers in ({}, {"Authorization": "Bearer not-a-key"}):
                reply = await client.request(method, path, headers=headers)
                assert reply.status_code == 401, (label, headers, reply.text)
                assert reply.json()["error"]
                assert reply.headers["www-authenticate"].startswith("Bearer")


def test_webhooks_name_every_esps_check_and_the_body_types_they_send(
    gateway: FastAPI,
) -> None:
    document = gateway.openapi()
    for path in ("/webhooks/{esp}", "/webhooks/{esp}/{subaccount}"):
        receive = document["paths"][path]["post"]
        assert receive["security"] == []
        for esp in esp_names():
            assert f"- `{esp}`: " in receive["description"], (path, esp)
        assert set(receive["requestBody"]["content"]) == {
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        }


# --- schemathesis -----------------------------------------------------------


@pytest.fixture(scope="module")
def gateway_schema(gateway: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", gateway)


@pytest.fixture(scope="module")
def worker_schema(worker_api: FastAPI) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", worker_api)


def answers_as_documented(schema: Any, label: str, *, ready: bool = True) -> None:
    """Fuzz one operation with valid and invalid requests carrying an admin key.

    ``schemathesis.pytest.from_fixture`` would do this, but schemathesis
    4.32.5 reads ``Function._nodeid``, which pytest 9.2 no longer has; an
    operation's strategies are its public API for tests of one's own.
    """
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is documented but not served"
    known = {
        name: value
        for name, value in KNOWN_PATH_VALUES.items()
        if f"{{{name}}}" in operation.path
    }
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known),
    )
    checks = CHECKS if ready else [c for c in CHECKS if c is not not_a_server_error]
    # A known failure is not worth the minutes hypothesis spends shrinking it.
    known_failure = label in KNOWN_SERVER_ERRORS
    phases = [phase for phase in Phase if not (known_failure and phase is Phase.shrink)]

    @settings(FUZZ, phases=phases)
    @given(case=cases)
    def answers(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(
            headers=bearer(ADMIN), checks=checks, timeout=REQUEST_TIMEOUT_S
        )

    answers()


@pytest.mark.parametrize("label", labels("gateway"))
def test_gateway_answers_as_documented(gateway_schema: Any, label: str) -> None:
    answers_as_documented(gateway_schema, label)


# The worker's Kafka readers use the random module in the server's thread
# while hypothesis draws cases, which it takes for a strategy using random.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("label", labels("worker"))
def test_worker_api_answers_as_documented(worker_schema: Any, label: str) -> None:
    # Without the Faust app running, the worker is rightly not ready: 503.
    answers_as_documented(worker_schema, label, ready=label != "GET /readyz")
