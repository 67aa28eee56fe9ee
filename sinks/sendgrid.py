"""SendGrid v3 Mail Send (``POST /v3/mail/send``) as an outbound sink.

One personalization per delivery: our message id rides in its
``custom_args`` (SendGrid copies custom args onto every event) and in the
``X-Mailyard-Message-Id`` header. Tags become ``categories``; SendGrid
takes at most 10, so later tags are dropped. SendGrid answers 202 with an
empty body and the message id in the ``X-Message-Id`` header.

The v3 API has no raw MIME input, so a raw delivery is ``failed`` without
a request. ``subaccount`` names a subuser, sent as the ``on-behalf-of``
header the parent account's key is allowed to use.
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
)

NAME = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"
SEND_PATH = "/v3/mail/send"
MAX_CATEGORIES = 10


@dataclasses.dataclass(frozen=True, slots=True)
class SendGridCredentials:
    api_key: str


class SendGridSink(EspHttpSink):
    """Relays deliveries through SendGrid's v3 Mail Send endpoint."""

    provider = NAME
    credentials_type = SendGridCredentials

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        credentials: SendGridCredentials,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        auth = {"Authorization": f"Bearer {credentials.api_key}"}
        super().__init__(
            base_url=base_url,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            headers=auth,
        )

    def build_request(self, delivery: Delivery) -> httpx.Request:
        if delivery.raw_mime is not None:
            detail = (
                "SendGrid's v3 Mail Send API takes no raw MIME; send raw "
                "messages through an SMTP or raw-capable destination."
            )
            raise UnsendableDelivery(NAME, detail)

        headers = {}
        if delivery.subaccount:
            headers["on-behalf-of"] = delivery.subaccount
        body = mail_send_body(delivery)
        return self._client.build_request("POST", SEND_PATH, json=body, headers=headers)

    def accepted(self, response: httpx.Response) -> SendResult:
        return SendResult(
            "accepted",
            f"SendGrid accepted the message (HTTP {response.status_code}).",
            http_status=response.status_code,
            provider_message_id=response.headers.get("X-Message-Id"),
        )

    def error_text(self, response: httpx.Response) -> str | None:
        # Errors come as {"errors": [{"message", "field", "help"}]}.
        body = json_body(response)
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list):
            return None
        messages = [_error_line(e) for e in errors if isinstance(e, dict)]
        return " ".join(m for m in messages if m) or None


def mail_send_body(delivery: Delivery) -> dict[str, Any]:
    """The Mail Send JSON for one delivery to one recipient."""
    personalization = {
        "to": [{"email": delivery.recipient}],
        "custom_args": custom_fields(delivery),
    }
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": {"email": delivery.from_addr},
        "subject": delivery.subject or "",
        "content": _content(delivery),
        "headers": outbound_headers(NAME, delivery),
    }

    categories = list(dict.fromkeys(delivery.tags))[:MAX_CATEGORIES]
    if categories:
        body["categories"] = categories
    return body


def _content(delivery: Delivery) -> list[dict[str, str]]:
    # SendGrid requires text/plain, when present, to come before text/html.
    parts = [("text/plain", delivery.text), ("text/html", delivery.html)]
    content = [{"type": kind, "value": value} for kind, value in parts if value]
    if not content:
        detail = "SendGrid needs a text or an HTML body; the delivery has neither."
        raise UnsendableDelivery(NAME, detail)
    return content


def _error_line(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "")
    field = error.get("field")
    return f"{message} (field: {field})" if field else message
