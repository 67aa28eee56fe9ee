"""The HTTP ingest gateway: ESP webhooks in, exact bytes onto Kafka.

``POST /webhooks/{esp}`` and ``POST /webhooks/{esp}/{subaccount}`` accept a
webhook as the ESP sends it, check its size and syntax, and produce the
untouched body in a ``RawWebhook`` envelope to ``mailyard.webhooks.raw``.
The reply is 2xx only after the broker confirmed the write (idempotent
producer, ``acks=all``), so an acknowledged webhook is never lost; when the
broker cannot confirm in time the reply is 503 and the ESP retries (429
for Brevo, which drops a webhook answered with any 5xx).
Parsing into events happens in the stream worker, where a body that turns
out to be unusable is parked in the dead-letter topic, not dropped.

Before a body is accepted its ESP's signature or credentials are checked
(:mod:`connectors.webhook_auth`) against the entry point's configuration:
the subaccount's for ``/webhooks/{esp}/{subaccount}``, the installation's
for ``/webhooks/{esp}``, both read from ``mailyard.tenants``. Refusals are
counted by ESP and reason (``GET /v1/gateway/stats``) and logged without
the credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
from confluent_kafka import KafkaError, KafkaException, Producer
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.gateway_docs import (
    NO_KEY,
    PROBE_ROUTE,
    EspName,
    GatewayStats,
    Readiness,
    webhook_route,
)
from connectors.registry import esp_names
from connectors.submit_api import submission_router
from connectors.webhook_auth.tokens import TokenCache
from connectors.webhook_auth import (
    CertificateStore,
    WebhookAuthError,
    WebhookRequest,
    verify_webhook,
)
from mailyard.access import (
    document_refusals,
    install_error_handler,
    require_admin,
)
from mailyard.broadcast import Broadcast
from mailyard.codec import codec
from mailyard.settings import Settings
from mailyard.tenancy import TenantDirectory, bootstrap_admin_key
from mailyard.topics import RAW_WEBHOOKS, TENANTS

log = logging.getLogger(__name__)

_SUBACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_JSON_TYPES = ("application/json", "text/plain")  # SNS posts JSON as text/plain
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
_KEPT_HEADERS = 64
# The status that makes an ESP retry later; Brevo retries only 429.
_RETRY_STATUS: dict[str, int] = {"brevo": 429}


class RawProducer:
    """An idempotent producer whose ``send`` resolves when the broker confirmed."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "message.timeout.ms": int(timeout_s * 1000),
                "compression.type": "lz4",
            }
        )
        self._running = True
        self._poller = threading.Thread(target=self._poll, daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        if not self._running:
            # Nobody polls a closed producer: its delivery report never comes.
            raise KafkaException("The gateway's producer is closed.")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            loop.call_soon_threadsafe(_settle, done, err)

        self._producer.produce(topic, value, key, on_delivery=on_delivery)
        await done

    def ready(self, timeout: float = 2.0) -> bool:
        try:
            self._producer.list_topics(RAW_WEBHOOKS.name, timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        self._producer.flush(5.0)
        self._running = False


def _settle(fut: asyncio.Future[None], err: KafkaError | None) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(KafkaException(err))


def problem(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": detail, **extra}, status_code=status)


def check_body(content_type: str, body: bytes) -> str | None:
    """Why the body is not well-formed for its content type, or None if it is."""
    media = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return "the request body is empty."
    if media in _JSON_TYPES:
        try:
            json.loads(body)
        except RecursionError:
            return "the JSON nests too deeply."
        except (UnicodeDecodeError, ValueError) as exc:
            return f"the body is not valid JSON ({exc})."
    elif media == _FORM:
        try:
            parse_qsl(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            return f"the body is not valid form encoding ({exc})."
    elif media == _MULTIPART:
        if "boundary=" not in content_type:
            return "multipart/form-data needs a boundary parameter."
    else:
        return None  # unsupported types are refused earlier, with 415
    return None


Confirm = Callable[[str], Awaitable[None]]


def create_gateway(
    settings: Settings,
    producer: RawProducer | None = None,
    *,
    tenants: TenantDirectory | None = None,
    certificates: CertificateStore | None = None,
    confirm: Confirm | None = None,
) -> FastAPI:
    """The gateway app. Without ``tenants`` it reads ``mailyard.tenants`` itself."""
    state: dict[str, RawProducer] = {}
    reader: Broadcast | None = None
    if tenants is None:
        tenants = TenantDirectory(
            bootstrap_admin_key(settings.admin_key, settings.data_dir)
        )
        reader = Broadcast(
            settings.bootstrap, TENANTS.name, TENANTS.partitions, tenants.on_record
        )
    directory = tenants
    certs = certificates or CertificateStore()
    tokens = TokenCache()  # Mailgun tokens this gateway has seen
    confirm_subscription = confirm or _confirm_subscription
    refusals: Counter[tuple[str, str]] = Counter()

    @contextlib.asynccontextmanager
    async def lifespan(_api: FastAPI) -> AsyncIterator[None]:
        if reader is not None:
            reader.start()
        yield
        if reader is not None:
            await reader.stop()
        # A producer passed in is its caller's to close; one made here is
        # dropped, so a restarted app makes a new one.
        made = state.pop("p", None)
        if made is not None and made is not producer:
            made.close()

    api = FastAPI(title="Mailyard ingest gateway", version="0.1.0", lifespan=lifespan)
    api.state.tenants = directory  # SMTP submission authenticates with it too
    install_error_handler(api)
    document_refusals(api)
    envelope = codec("raw_webhook")
    known = set(esp_names())

    def get_producer() -> RawProducer:
        if "p" not in state:
            state["p"] = producer or RawProducer(
                settings.bootstrap, settings.produce_timeout_s
            )
        return state["p"]

    api.include_router(submission_router(settings, get_producer, directory))

    @api.get("/healthz", summary="Liveness: the process answers", openapi_extra=NO_KEY)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz",
        summary="Readiness: the broker answers and tenants were read",
        responses={
            200: {"model": Readiness, "description": "Ready."},
            503: {"model": Readiness, "description": "Not ready."},
        },
        openapi_extra=NO_KEY,
    )
    async def readyz() -> JSONResponse:
        broker = await asyncio.to_thread(get_producer().ready)
        tenants_read = reader is None or reader.ready.is_set()
        ok = broker and tenants_read
        body = {"ready": ok, "broker": broker, "tenants": tenants_read}
        return JSONResponse(body, status_code=200 if ok else 503)

    @api.get(
        "/v1/gateway/stats",
        summary="Webhooks refused, by ESP and reason",
        response_model=GatewayStats,
        dependencies=[Depends(require_admin(directory))],
    )
    async def stats() -> dict[str, Any]:
        rows = [
            {"esp": esp, "reason": reason, "count": n}
            for (esp, reason), n in sorted(refusals.items())
        ]
        return {"webhook_auth_refused": rows}

    # One route per method, so each operation has its own operationId.
    @api.get("/webhooks/{esp}", **PROBE_ROUTE)
    @api.head("/webhooks/{esp}", **PROBE_ROUTE)
    @api.get("/webhooks/{esp}/{subaccount}", **PROBE_ROUTE)
    @api.head("/webhooks/{esp}/{subaccount}", **PROBE_ROUTE)
    def probe(esp: EspName, subaccount: str | None = None) -> Response:
        # Some ESPs check the URL with HEAD or GET before sending events.
        return Response(status_code=200 if esp in known else 404)

    @api.post("/webhooks/{esp}", **webhook_route("the installation"))
    @api.post("/webhooks/{esp}/{subaccount}", **webhook_route("a subaccount"))
    async def receive(
        esp: EspName, request: Request, subaccount: str | None = None
    ) -> Response:
        if esp not in known:
            return problem(404, f"Unknown ESP {esp!r}.", known=sorted(known))
        if subaccount is not None and not _SUBACCOUNT.match(subaccount):
            return problem(400, "A subaccount name is 1-64 letters, digits, . _ or -.")
        if subaccount is not None and subaccount not in directory.subaccounts:
            return problem(404, f"There is no subaccount {subaccount!r}.")

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > settings.max_body_bytes:
                return _too_large(settings.max_body_bytes)
        body = await _read_limited(request, settings.max_body_bytes)
        if body is None:
            return _too_large(settings.max_body_bytes)

        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in (*_JSON_TYPES, _FORM, _MULTIPART):
            return problem(
                415,
                f"Content type {media or 'missing'!r} is not one an ESP sends; "
                "expected JSON, form-encoded, multipart or SNS text/plain.",
            )
        why = check_body(content_type, body)
        if why is not None:
            return problem(400, f"Malformed {esp} webhook: {why}")

        headers = {
            k.lower(): v for k, v in list(request.headers.items())[:_KEPT_HEADERS]
        }
        signed = WebhookRequest(esp, str(request.url), headers, body, content_type)
        config = directory.webhook_auth(esp, subaccount)
        try:
            verdict = await asyncio.to_thread(
                verify_webhook, signed, config, certificates=certs, tokens=tokens
            )
        except WebhookAuthError as exc:
            refusals[(esp, exc.reason)] += 1
            log.warning(
                "refused %s webhook for %s: %s",
                esp,
                subaccount or "-",
                exc.detail,
                extra={"esp": esp, "reason": exc.reason},
            )
            refused = problem(exc.status, exc.detail, reason=exc.reason)
            if exc.challenge is not None:
                # SNS sends basic-auth credentials only after this challenge.
                refused.headers["WWW-Authenticate"] = exc.challenge
            return refused

        request_id = uuid.uuid4().hex
        record = {
            "request_id": request_id,
            "esp": esp,
            "subaccount": subaccount,
            "received_at": datetime.now(timezone.utc),
            "content_type": content_type,
            "headers": headers,
            "body": body,
        }
        try:
            await get_producer().send(
                RAW_WEBHOOKS.name, request_id.encode(), envelope.encode(record)
            )
        except (KafkaException, BufferError) as exc:
            log.error("broker did not confirm webhook %s: %s", request_id, exc)
            return JSONResponse(
                {"error": "The event store is unavailable; retry later."},
                status_code=_RETRY_STATUS.get(esp, 503),
                headers={"Retry-After": "5"},
            )
        if verdict.confirm_url is not None:
            await confirm_subscription(verdict.confirm_url)
        reply: dict[str, Any] = {"accepted": True, "request_id": request_id}
        if config and "validation_key" in config:
            reply["validation_key"] = config["validation_key"]
        return JSONResponse(reply)

    return api


async def _confirm_subscription(url: str) -> None:
    """Confirm an SNS subscription: a GET of its SubscribeURL (an allowed topic's)."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            reply = await client.get(url)
        log.info("confirmed SNS subscription: HTTP %s", reply.status_code)
    except httpx.HTTPError as exc:
        log.error("could not confirm SNS subscription: %s", exc)


def _too_large(limit: int) -> JSONResponse:
    return problem(413, f"The body is larger than the {limit}-byte limit.")


async def _read_limited(request: Request, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
