"""The gateway's OpenAPI description: how each ESP authenticates, bodies, answers.

Kept apart from :mod:`connectors.gateway` so the request handling reads on
its own; ``create_gateway`` passes these to its route decorators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from connectors.registry import esp_names
from mailyard.access import refusal

_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"

# How each ESP proves a webhook is its own (connectors.webhook_auth); the
# webhook entry points take no Mailyard API key.
_ESP_AUTH = {
    "sendgrid": "ECDSA P-256 signature in `X-Twilio-Email-Event-Webhook-Signature` "
    "over `X-Twilio-Email-Event-Webhook-Timestamp` and the body; `public_keys`.",
    "mailgun": "HMAC-SHA256 of the body's `timestamp` and `token`; `signing_keys`.",
    "sparkpost": "basic auth in the URL, or a custom header; `basic_auth`, `header`.",
    "amazon_ses": "Amazon SNS signature (v1, v2) by a certificate on an AWS host, "
    "`TopicArn` in `topic_arns`; optional `basic_auth`, asked for with a 401 "
    "`WWW-Authenticate: Basic` challenge.",
    "postmark": "basic auth in the URL; `basic_auth`.",
    "mailjet": "basic auth in the URL; `basic_auth`.",
    "brevo": "basic auth, or `Authorization: Bearer`; `basic_auth`, `bearer_tokens`.",
    "mandrill": "HMAC-SHA1 in `X-Mandrill-Signature` over the URL and the form "
    "fields; `webhook_keys` (and `url` behind a proxy).",
    "resend": "Svix HMAC-SHA256 in `svix-signature` over `svix-id`, "
    "`svix-timestamp` and the body (or `webhook-*` headers); `secrets`.",
    "socketlabs": "basic auth, or `SecretKey` in every event; `basic_auth`, "
    "`secret_keys` (`validation_key` is echoed in the reply).",
}
_WEBHOOK_DESCRIPTION = (
    "The body is stored exactly as sent; the reply is 200 only once the broker "
    "confirmed it on `mailyard.webhooks.raw`. No API key: the ESP's own signature "
    "or credential is checked against this entry point's webhook auth config (the "
    "installation's, `PUT /v1/webhook-auth/{esp}`, or the subaccount's, `PATCH "
    '/v1/subaccounts/{name}`). `{"none": true}` turns the check off for a local '
    "demo; signed timestamps may be `max_age_s` (default 300) seconds off.\n\n"
    "Per ESP, what is checked and the config fields that hold the keys:\n\n"
    + "\n".join(f"- `{esp}`: {how}" for esp, how in _ESP_AUTH.items())
)
_FREE_FORM = {"type": "object", "additionalProperties": True}
_WEBHOOK_BODY = {
    "required": True,
    "description": "The ESP's body, at most `MAILYARD_MAX_BODY_BYTES`.",
    "content": {
        "application/json": {"schema": {}},
        "text/plain": {"schema": {"type": "string", "description": "SNS: JSON."}},
        _FORM: {"schema": _FREE_FORM},
        _MULTIPART: {"schema": _FREE_FORM},
    },
}
_WEBHOOK_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: refusal(
        "The body is empty or not its content type's syntax, the "
        "subaccount name is not 1-64 letters, digits, '.', '_' or '-', or "
        "the body lacks what the ESP's signature check reads."
    ),
    401: {
        **refusal(
            "The ESP's signature or credential is missing, wrong or stale, "
            "or this entry point has no webhook auth config (`reason` says "
            "which)."
        ),
        # SNS sends basic-auth credentials only after this challenge.
        "headers": {
            "WWW-Authenticate": {
                "description": "A `Basic` challenge when the config has `basic_auth`.",
                "schema": {"type": "string"},
            }
        },
    },
    403: refusal(
        "An SNS message of a topic not in `topic_arns`, or a certificate "
        "URL off AWS's hosts."
    ),
    404: refusal("No such ESP (`known` lists them), or no such subaccount."),
    413: refusal("The body is over `MAILYARD_MAX_BODY_BYTES`."),
    415: refusal("A content type no ESP sends."),
    429: refusal(
        "Brevo only: the broker did not confirm the write in time (Brevo "
        "drops a webhook answered 5xx).",
        retry_after=True,
    ),
    503: refusal(
        "The broker did not confirm the write in time (with Retry-After), "
        "or an SNS signing certificate could not be fetched.",
        retry_after=True,
    ),
}
NO_KEY: dict[str, Any] = {"security": []}
# Documented as an enum; any other name is answered 404 with the known ones.
EspName = Annotated[str, Path(json_schema_extra={"enum": esp_names()})]


class Accepted(BaseModel):
    accepted: Literal[True]
    request_id: str = Field(description="The webhook's key on mailyard.webhooks.raw.")
    validation_key: str | None = Field(
        None, description="SocketLabs: the configured validation key, when set."
    )


class Readiness(BaseModel):
    ready: bool
    broker: bool = Field(description="The broker answered a metadata request.")
    tenants: bool = Field(description="`mailyard.tenants` was read to its end.")


class RefusalCount(BaseModel):
    esp: str
    reason: str
    count: int


class GatewayStats(BaseModel):
    webhook_auth_refused: list[RefusalCount]


def webhook_route(entry_point: str) -> dict[str, Any]:
    return {
        "summary": f"Receive an ESP's webhook for {entry_point}",
        "description": _WEBHOOK_DESCRIPTION,
        "responses": {
            200: {"model": Accepted, "description": "Stored on Kafka."},
            **_WEBHOOK_REFUSALS,
        },
        "openapi_extra": {**NO_KEY, "requestBody": _WEBHOOK_BODY},
    }


PROBE_ROUTE: dict[str, Any] = {
    "summary": "Answer an ESP's check of a webhook URL",
    "response_class": Response,
    "responses": {
        200: {"description": "A known ESP; no body."},
        404: {"description": "No such ESP; no body."},
    },
    "openapi_extra": NO_KEY,
}
