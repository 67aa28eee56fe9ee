"""Amazon SES v2 SendEmail (``POST /v2/email/outbound-emails``) as a sink.

Requests are signed with AWS Signature Version 4 by botocore (service
``ses``, the destination's region). Our message id rides as an
``EmailTags`` entry, which SES copies onto every event, and in the
``X-Mailyard-Message-Id`` header (``Content.Simple.Headers``; a raw
message carries it in its own header block).

SES tag names and values may hold only ASCII letters, digits, ``_`` and
``-``, at most 256 characters. Mailyard message ids are hex or UUIDs and
fit; a delivery whose id or metadata does not is ``failed`` before any
request, because SES would refuse the whole message rather than drop the
tag. Tags have no SES counterpart that events carry back, so they are not
sent; metadata entries are sent as further ``EmailTags``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from mailyard.outbound import MESSAGE_ID_METADATA, Delivery, SendResult
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

NAME = "amazon_ses"
SIGNING_SERVICE = "ses"
SEND_PATH = "/v2/email/outbound-emails"
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")
_SIGNED_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


@dataclasses.dataclass(frozen=True, slots=True)
class AmazonSesCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def default_base_url(region: str) -> str:
    """The public SES endpoint of a region."""
    return f"https://email.{region}.amazonaws.com"


class AmazonSesSink(EspHttpSink):
    """Relays deliveries through SES v2 SendEmail in one region."""

    provider = NAME
    options = ("region", "configuration_set")
    credentials_type = AmazonSesCredentials

    def __init__(
        self,
        *,
        base_url: str | None = None,
        credentials: AmazonSesCredentials,
        region: str,
        configuration_set: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.region = region
        self.configuration_set = configuration_set
        self._signer = SigV4Auth(
            Credentials(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
            ),
            SIGNING_SERVICE,
            region,
        )
        super().__init__(
            base_url=base_url or default_base_url(region),
            timeout_s=timeout_s,
            max_concurrency=max_concurrency,
        )

    def build_request(self, delivery: Delivery) -> httpx.Request:
        body = send_email_body(delivery, self.configuration_set)
        request = self._client.build_request(
            "POST",
            SEND_PATH,
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        return self._signed(request)

    def _signed(self, request: httpx.Request) -> httpx.Request:
        # Sign exactly the bytes, host and content type httpx will send.
        unsigned = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers={
                "Content-Type": request.headers["Content-Type"],
                "Host": request.headers["Host"],
            },
        )
        self._signer.add_auth(unsigned)
        for name in _SIGNED_HEADERS:
            if name in unsigned.headers:
                request.headers[name] = unsigned.headers[name]
        return request

    def accepted(self, response: httpx.Response) -> SendResult:
        body = json_body(response)
        message_id = body.get("MessageId") if isinstance(body, dict) else None
        return SendResult(
            "accepted",
            f"Amazon SES accepted the message (HTTP {response.status_code}).",
            http_status=response.status_code,
            provider_message_id=str(message_id) if message_id else None,
        )

    def error_text(self, response: httpx.Response) -> str | None:
        # REST-JSON errors: the type in x-amzn-ErrorType, {"message"} in the body.
        error_type = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
        body = json_body(response)
        body = body if isinstance(body, dict) else {}
        message = body.get("message") or body.get("Message")
        error_type = error_type or str(body.get("__type") or "").split("#")[-1]
        parts = [p for p in (error_type, message) if p]
        return ": ".join(str(p) for p in parts) or None


def send_email_body(
    delivery: Delivery, configuration_set: str | None = None
) -> dict[str, Any]:
    """The SendEmail JSON for one delivery to one recipient."""
    body: dict[str, Any] = {
        "FromEmailAddress": delivery.from_addr,
        "Destination": {"ToAddresses": [delivery.recipient]},
        "Content": _content(delivery),
        "EmailTags": email_tags(delivery),
    }
    if configuration_set:
        body["ConfigurationSetName"] = configuration_set
    return body


def email_tags(delivery: Delivery) -> list[dict[str, str]]:
    """Our message id and the metadata as tags, refused if SES would refuse."""
    tags = []
    for name, value in custom_fields(delivery).items():
        if not (TAG_TEXT.fullmatch(name) and TAG_TEXT.fullmatch(value)):
            what = "message id" if name == MESSAGE_ID_METADATA else "metadata entry"
            detail = (
                f"SES tags allow only A-Z, a-z, 0-9, '_' and '-' (1 to 256 "
                f"characters); the {what} {name}={value!r} does not fit."
            )
            raise UnsendableDelivery(NAME, detail)
        tags.append({"Name": name, "Value": value})
    return tags


def _content(delivery: Delivery) -> dict[str, Any]:
    if delivery.raw_mime is not None:
        raw = raw_with_header(NAME, delivery)
        return {"Raw": {"Data": base64.b64encode(raw).decode("ascii")}}

    body: dict[str, Any] = {}
    if delivery.text:
        body["Text"] = {"Data": delivery.text, "Charset": "UTF-8"}
    if delivery.html:
        body["Html"] = {"Data": delivery.html, "Charset": "UTF-8"}
    if not body:
        detail = "SES needs a text or an HTML body; the delivery has neither."
        raise UnsendableDelivery(NAME, detail)

    headers = outbound_headers(NAME, delivery)
    simple = {
        "Subject": {"Data": delivery.subject or "", "Charset": "UTF-8"},
        "Body": body,
        "Headers": [{"Name": k, "Value": v} for k, v in headers.items()],
    }
    return {"Simple": simple}
