"""Mailgun Messages API (``POST /v3/{domain}/messages``) as an outbound sink.

Fields are form fields: ``h:<Name>`` adds a header, ``v:<key>`` a user
variable (Mailgun copies user variables onto every event), ``o:tag`` a
tag, repeated. Mailgun takes at most 3 tags per message, so later tags are
dropped. Raw MIME goes to ``/messages.mime`` as a multipart ``message``
file with the recipient in ``to``.

Mailgun's answer carries the Message-ID in angle brackets; its events
carry it bare, so the brackets are stripped to make the two match.
``subaccount`` is a Mailgun subaccount id, sent as the
``X-Mailgun-On-Behalf-Of`` header the primary account's key may use.
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

NAME = "mailgun"
DEFAULT_BASE_URL = "https://api.mailgun.net"
MAX_TAGS = 3

Form = dict[str, str | list[str]]


@dataclasses.dataclass(frozen=True, slots=True)
class MailgunCredentials:
    api_key: str


class MailgunSink(EspHttpSink):
    """Relays deliveries through one Mailgun sending domain."""

    provider = NAME
    options = ("domain",)
    credentials_type = MailgunCredentials

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        credentials: MailgunCredentials,
        domain: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.domain = domain
        super().__init__(
            base_url=base_url,
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
            auth=httpx.BasicAuth("api", credentials.api_key),
        )

    def build_request(self, delivery: Delivery) -> httpx.Request:
        headers = {}
        if delivery.subaccount:
            headers["X-Mailgun-On-Behalf-Of"] = delivery.subaccount

        if delivery.raw_mime is not None:
            raw = raw_with_header(NAME, delivery)
            files = {"message": ("message.mime", raw, "message/rfc822")}
            return self._client.build_request(
                "POST",
                f"/v3/{self.domain}/messages.mime",
                data=_routing_fields(delivery),
                files=files,
                headers=headers,
            )

        return self._client.build_request(
            "POST",
            f"/v3/{self.domain}/messages",
            data=message_form(delivery),
            headers=headers,
        )

    def accepted(self, response: httpx.Response) -> SendResult:
        body = json_body(response)
        body = body if isinstance(body, dict) else {}
        message_id = str(body.get("id") or "").strip("<>") or None
        return SendResult(
            "accepted",
            str(body.get("message") or "Mailgun accepted the message."),
            http_status=response.status_code,
            provider_message_id=message_id,
        )

    def error_text(self, response: httpx.Response) -> str | None:
        # JSON {"message": ...} for most errors, plain "Forbidden" for auth.
        body = json_body(response)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
        return None


def message_form(delivery: Delivery) -> Form:
    """The form fields of a Messages API call for one recipient."""
    if not (delivery.text or delivery.html):
        detail = "Mailgun needs a text or an HTML body; the delivery has neither."
        raise UnsendableDelivery(NAME, detail)

    form: Form = {
        "from": delivery.from_addr,
        "subject": delivery.subject or "",
        **_routing_fields(delivery),
    }
    if delivery.text:
        form["text"] = delivery.text
    if delivery.html:
        form["html"] = delivery.html
    for name, value in outbound_headers(NAME, delivery).items():
        form[f"h:{name}"] = value
    return form


def _routing_fields(delivery: Delivery) -> dict[str, Any]:
    # Shared by both endpoints: recipient, tags and user variables.
    fields: dict[str, Any] = {"to": delivery.recipient}
    tags = list(dict.fromkeys(delivery.tags))[:MAX_TAGS]
    if tags:
        fields["o:tag"] = tags
    for key, value in custom_fields(delivery).items():
        fields[f"v:{key}"] = value
    return fields
