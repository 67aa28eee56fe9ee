"""Postmark Email API (``POST /email``) as an outbound sink.

The server token goes in ``X-Postmark-Server-Token``. Our message id rides
in ``Metadata`` (Postmark copies metadata onto every event; its keys may
be 20 characters, and ``mailyard_message_id`` is 19) and in the
``X-Mailyard-Message-Id`` header. Postmark has one ``Tag`` per message, so
only the first tag is sent. The destination's ``message_stream`` option
picks the ``MessageStream`` (Postmark's default is ``outbound``); our own
stream names are not Postmark stream ids.

Postmark refuses a request with HTTP 422 and ``{"ErrorCode", "Message"}``;
that text is the result's ``detail``. The Email API has no raw MIME input,
so a raw delivery is ``failed`` without a request. Postmark has no
subaccounts (a server token already names one server); ``subaccount`` is
not sent.
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

NAME = "postmark"
DEFAULT_BASE_URL = "https://api.postmarkapp.com"
SEND_PATH = "/email"
DEFAULT_STREAM = "outbound"


@dataclasses.dataclass(frozen=True, slots=True)
class PostmarkCredentials:
    server_token: str


class PostmarkSink(EspHttpSink):
    """Relays deliveries through one Postmark server."""

    provider = NAME
    options = ("message_stream",)
    credentials_type = PostmarkCredentials

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        credentials: PostmarkCredentials,
        message_stream: str = DEFAULT_STREAM,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.message_stream = message_stream
        super().__init__(
            base_url=base_url,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            headers={
                "X-Postmark-Server-Token": credentials.server_token,
                "Accept": "application/json",
            },
        )

    def build_request(self, delivery: Delivery) -> httpx.Request:
        if delivery.raw_mime is not None:
            detail = (
                "Postmark's Email API takes no raw MIME; send raw messages "
                "through an SMTP or raw-capable destination."
            )
            raise UnsendableDelivery(NAME, detail)

        body = email_body(delivery, self.message_stream)
        return self._client.build_request("POST", SEND_PATH, json=body)

    def accepted(self, response: httpx.Response) -> SendResult:
        body = json_body(response)
        body = body if isinstance(body, dict) else {}
        message_id = body.get("MessageID")
        return SendResult(
            "accepted",
            str(body.get("Message") or "Postmark accepted the message."),
            http_status=response.status_code,
            provider_message_id=str(message_id) if message_id else None,
        )

    def error_text(self, response: httpx.Response) -> str | None:
        body = json_body(response)
        if not isinstance(body, dict) or not body.get("Message"):
            return None
        return f"{body['Message']} (ErrorCode {body.get('ErrorCode')})"


def email_body(delivery: Delivery, stream: str) -> dict[str, Any]:
    """The Email API JSON for one delivery to one recipient."""
    if not (delivery.text or delivery.html):
        detail = "Postmark needs a text or an HTML body; the delivery has neither."
        raise UnsendableDelivery(NAME, detail)

    headers = outbound_headers(NAME, delivery)
    body: dict[str, Any] = {
        "From": delivery.from_addr,
        "To": delivery.recipient,
        "Subject": delivery.subject or "",
        "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
        "Metadata": custom_fields(delivery),
        "MessageStream": stream,
    }
    if delivery.text:
        body["TextBody"] = delivery.text
    if delivery.html:
        body["HtmlBody"] = delivery.html
    if delivery.tags:
        body["Tag"] = delivery.tags[0]
    return body
