"""What every ESP relay sink shares: one HTTP client, limits, classification.

A provider module says how a :class:`~mailyard.outbound.Delivery` becomes
that provider's send request and how to read its answers; this base sends
the request and turns the answer into a :class:`~mailyard.outbound.SendResult`:

* 2xx: ``accepted``, with the provider's message id;
* 429, 5xx, timeouts and transport errors: ``deferred``, with the
  ``Retry-After`` header as ``retry_after_s`` when the provider sent one;
* any other 4xx: ``failed``, with the provider's own error text.

A delivery the provider's API cannot express (raw MIME where there is no
raw endpoint, a message id SES will not take as a tag) is ``failed``
before any request is made, with a sentence saying why.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from mailyard.errors import ConfigError, MailyardError
from mailyard.outbound import (
    MESSAGE_ID_HEADER,
    MESSAGE_ID_METADATA,
    Delivery,
    SendResult,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONCURRENCY = 16
# Provider error bodies can be whole HTML pages behind a proxy; keep a sentence.
_MAX_DETAIL_CHARS = 500


class UnsendableDelivery(MailyardError, ValueError):
    """A delivery the provider's send API cannot express as it stands."""

    def __init__(self, esp: str, detail: str) -> None:
        super().__init__(f"{esp}: {detail}")
        self.esp = esp
        self.detail = detail


class EspHttpSink(abc.ABC):
    """Sends deliveries through one ESP destination's HTTP API.

    One :class:`httpx.AsyncClient` per sink keeps connections to the
    destination alive between sends. At most ``max_concurrency`` requests
    are in flight; the rest wait on a semaphore, not in httpx's pool, so
    waiting for a slot never counts against the request timeout.
    """

    provider: ClassVar[str]
    # Destination config keys, besides credentials, the factory passes on.
    options: ClassVar[tuple[str, ...]] = ()
    credentials_type: ClassVar[type[Any]]

    def __init__(
        self,
        *,
        base_url: str,
        timeout_s: float,
        max_concurrency: int,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> None:
        _check_limits(self.provider, timeout_s, max_concurrency)

        limits = httpx.Limits(
            max_connections=max_concurrency,
            max_keepalive_connections=max_concurrency,
        )
        self.base_url = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=limits,
            headers=headers,
            auth=auth,
        )
        self._slots = asyncio.Semaphore(max_concurrency)

    @abc.abstractmethod
    def build_request(self, delivery: Delivery) -> httpx.Request:
        """The provider's send request; raises :class:`UnsendableDelivery`."""

    @abc.abstractmethod
    def accepted(self, response: httpx.Response) -> SendResult:
        """The result for a 2xx answer, carrying the provider's message id."""

    @abc.abstractmethod
    def error_text(self, response: httpx.Response) -> str | None:
        """The provider's own words from an error answer, if it gave any."""

    async def send(self, delivery: Delivery) -> SendResult:
        """Send one delivery; provider answers are results, never exceptions."""
        try:
            request = self.build_request(delivery)
        except UnsendableDelivery as exc:
            return self._logged(delivery, SendResult("failed", exc.detail))

        async with self._slots:
            try:
                response = await self._client.send(request)
            except httpx.TimeoutException as exc:
                return self._logged(delivery, self._unreachable(exc, "timed out"))
            except httpx.TransportError as exc:
                return self._logged(delivery, self._unreachable(exc, "failed"))

        return self._logged(delivery, self._classify(response))

    async def aclose(self) -> None:
        """Close the kept-alive connections."""
        await self._client.aclose()

    def _classify(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return self.accepted(response)

        detail = self.error_text(response) or _fallback_text(response)
        detail = detail[:_MAX_DETAIL_CHARS]
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return SendResult(
                "deferred", detail, http_status=status, retry_after_s=retry_after
            )
        return SendResult("failed", detail, http_status=status)

    def _unreachable(self, exc: httpx.HTTPError, what: str) -> SendResult:
        kind = type(exc).__name__
        detail = f"The request to {self.provider} at {self.base_url} {what}: {kind}"
        if str(exc):
            detail = f"{detail} ({exc})"
        return SendResult("deferred", f"{detail}.")

    def _logged(self, delivery: Delivery, result: SendResult) -> SendResult:
        extra = {
            "esp": self.provider,
            "message_id": delivery.message_id,
            "outcome": result.outcome,
            "http_status": result.http_status,
        }
        level = logging.DEBUG if result.outcome == "accepted" else logging.INFO
        log.log(level, "esp=%s outcome=%s", self.provider, result.outcome, extra=extra)
        return result


def _check_limits(provider: str, timeout_s: float, max_concurrency: int) -> None:
    if timeout_s <= 0:
        raise ConfigError(f"{provider}: timeout_s must be positive, not {timeout_s}.")
    if max_concurrency < 1:
        raise ConfigError(
            f"{provider}: max_concurrency must be at least 1, not {max_concurrency}."
        )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 section 10.2.3).

    The header is either a number of seconds or an HTTP date; anything
    else, including a negative number, is ignored.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def json_body(response: httpx.Response) -> Any:
    """The response's JSON value, or ``None`` when the body is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _fallback_text(response: httpx.Response) -> str:
    text = response.text.strip()
    return text or f"HTTP {response.status_code} with an empty body."


def outbound_headers(esp: str, delivery: Delivery) -> dict[str, str]:
    """The delivery's headers plus ours; ours replaces any copy in any case."""
    ours = MESSAGE_ID_HEADER.lower()
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != ours}
    headers[MESSAGE_ID_HEADER] = delivery.message_id

    for name, value in headers.items():
        _check_header_text(esp, name, value)
    return headers


def custom_fields(delivery: Delivery) -> dict[str, str]:
    """The delivery's metadata plus our message id under its fixed key."""
    return {**delivery.metadata, MESSAGE_ID_METADATA: delivery.message_id}


def raw_with_header(esp: str, delivery: Delivery) -> bytes:
    """The raw MIME message with our header first, as the contract promises.

    A message that already carries our header keeps it if the value
    matches; a different value means two messages were mixed up.
    """
    raw = delivery.raw_mime or b""
    _check_header_text(esp, MESSAGE_ID_HEADER, delivery.message_id)

    existing = _raw_header_value(raw, MESSAGE_ID_HEADER)
    if existing == delivery.message_id:
        return raw
    if existing is not None:
        detail = (
            f"The raw MIME message carries {MESSAGE_ID_HEADER}: {existing}, "
            f"not the delivery's message id {delivery.message_id}."
        )
        raise UnsendableDelivery(esp, detail)

    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    return f"{MESSAGE_ID_HEADER}: {delivery.message_id}".encode() + newline + raw


def _raw_header_value(raw: bytes, name: str) -> str | None:
    head = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    prefix = f"{name.lower()}:".encode()
    for line in head.split(b"\n"):
        if line.lower().startswith(prefix):
            return line[len(prefix) :].strip().decode("ascii", "replace")
    return None


def _check_header_text(esp: str, name: str, value: str) -> None:
    # A CR or LF would end the header early and let a value inject headers.
    if any(ch in "\r\n" for ch in name + value):
        detail = f"Header {name!r} has a line break in its name or value {value!r}."
        raise UnsendableDelivery(esp, detail)
