"""SparkPost Transmissions API (``POST /api/v1/transmissions``) as a sink.

SparkPost takes the API key as the bare ``Authorization`` value, with no
``Bearer``. Our message id rides in the transmission ``metadata``
(SparkPost copies it onto every event) and in the ``X-Mailyard-Message-Id``
header; tags become the recipient's ``tags`` (SparkPost allows 10, later
tags are dropped). Raw MIME goes as ``content.email_rfc822``.

The provider message id is the transmission id, which is what SparkPost's
events call ``transmission_id``. ``subaccount`` is a numeric SparkPost
subaccount id, sent as the ``X-MSYS-SUBACCOUNT`` header.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from mailyard.outbound import Delivery, SendResult
from sinks.esp_http import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    EspHttpSink,
    UnsendableDelivery,
    custom_fields,
    json_body,
    outbound_headers,
    raw_with_header,
)

NAME = "sparkpost"
DEFAULT_BASE_URL = "https://api.sparkpost.com"
SEND_PATH = "/api/v1/transmissions"
MAX_TAGS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class SparkPostCredentials:
    api_key: str


class SparkPostSink(EspHttpSink):
    """Relays deliveries as one-recipient SparkPost transmissions."""

    provider = NAME
    credentials_type = SparkPostCredentials

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        credentials: SparkPostCredentials,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        super().__init__(
            base_url=base_url,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            headers={"Authorization": credentials.api_key},
        )

    def build_request(self, delivery: Delivery) -> httpx.Request:
        headers = {}
        if delivery.subaccount:
            headers["X-MSYS-SUBACCOUNT"] = delivery.subaccount
        return self._client.build_request(
            "POST", SEND_PATH, json=transmission_body(delivery), headers=headers
        )

    def accepted(self, response: httpx.Response) -> SendResult:
        body = json_body(response)
        results = body.get("results") if isinstance(body, dict) else None
        results = results if isinstance(results, dict) else {}
        transmission_id = results.get("id")
        return SendResult(
            "accepted",
            f"SparkPost accepted the transmission (HTTP {response.status_code}).",
            http_status=response.status_code,
            provider_message_id=str(transmission_id) if transmission_id else None,
        )

    def error_text(self, response: httpx.Response) -> str | None:
        # Errors come as {"errors": [{"message", "description", "code"}]}.
        body = json_body(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list):
            return None
        lines = [_error_line(e) for e in errors if isinstance(e, dict)]
        return " ".join(line for line in lines if line) or None


def transmission_body(delivery: Delivery) -> dict[str, Any]:
    """The transmission JSON for one delivery to one recipient."""
    recipient: dict[str, Any] = {"address": {"email": delivery.recipient}}
    tags = list(dict.fromkeys(delivery.tags))[:MAX_TAGS]
    if tags:
        recipient["tags"] = tags

    return {
        "recipients": [recipient],
        "content": _content(delivery),
        "metadata": custom_fields(delivery),
    }


def _content(delivery: Delivery) -> dict[str, Any]:
    if delivery.raw_mime is not None:
        raw = raw_with_header(NAME, delivery)
        try:
            return {"email_rfc822": raw.decode("utf-8")}
        except UnicodeDecodeError as exc:
            detail = "SparkPost's email_rfc822 is a JSON string; the raw MIME "
            detail += f"message is not valid UTF-8 ({exc.reason} at {exc.start})."
            raise UnsendableDelivery(NAME, detail) from exc

    content: dict[str, Any] = {
        "from": delivery.from_addr,
        "subject": delivery.subject or "",
        "headers": outbound_headers(NAME, delivery),
    }
    if delivery.text:
        content["text"] = delivery.text
    if delivery.html:
        content["html"] = delivery.html
    return content


def _error_line(error: dict[str, Any]) -> str:
    parts = [error.get("message"), error.get("description")]
    line = ": ".join(str(p) for p in parts if p)
    code = error.get("code")
    return f"{line} (code {code})" if code else line
