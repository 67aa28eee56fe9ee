"""Shared credentials: basic auth, bearer tokens, a custom header, a payload key.

Postmark, Mailjet, SparkPost, Brevo and SocketLabs sign nothing; they
send a credential configured at the ESP, which proves the sender knows
it but binds nothing about the body.

- Basic auth (``user:password`` in the webhook URL) for all five.
- Bearer tokens for Brevo ("Secure webhook calls").
- A custom header for SparkPost (``{"name": ..., "values": [...]}``).
- ``SecretKey`` inside the JSON payload for SocketLabs. The format is
  *unverified*: SocketLabs' public docs say a secret key travels in each
  payload, but we found no sample to confirm the field name or its place.

Any one configured credential matching passes. When basic auth is
configured, refusals carry a ``Basic`` challenge: some senders (Amazon
SNS among them) send credentials only after a 401 that asks for them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.bodies import load_json
from connectors.webhook_auth.checks import first_match, utf8
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest
from mailyard.errors import WebhookError

CHALLENGE = 'Basic realm="mailyard webhooks"'


@dataclass(frozen=True, slots=True)
class Offer:
    """What one mechanism found: whether the request offered that kind of
    credential, and which configured entry it matched, if any."""

    present: bool
    index: int | None = None


Mechanism = Callable[[WebhookRequest, Any], Offer]


def basic(request: WebhookRequest, entries: Sequence[str]) -> Offer:
    token = _authorization(request, "basic")
    if token is None:
        return Offer(present=False)
    try:
        offered = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return Offer(present=True)
    return Offer(True, first_match([utf8(e) for e in entries], [offered]))


def bearer(request: WebhookRequest, entries: Sequence[str]) -> Offer:
    token = _authorization(request, "bearer")
    if token is None:
        return Offer(present=False)
    return Offer(True, first_match([utf8(e) for e in entries], [utf8(token)]))


def header(request: WebhookRequest, setting: Mapping[str, Any]) -> Offer:
    value = request.header(setting["name"])
    if value is None:
        return Offer(present=False)
    return Offer(True, first_match([utf8(v) for v in setting["values"]], [utf8(value)]))


def payload_secret(request: WebhookRequest, entries: Sequence[str]) -> Offer:
    offered = _payload_secrets(request)
    if not offered:
        return Offer(present=False)
    # A batch passes only if every event carries the same configured key.
    if len(set(offered)) != 1:
        return Offer(present=True)
    return Offer(True, first_match([utf8(e) for e in entries], [utf8(offered[0])]))


MECHANISMS: dict[str, Mechanism] = {
    "basic_auth": basic,
    "bearer_tokens": bearer,
    "header": header,
    "secret_keys": payload_secret,
}


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    offers = {
        name: check(request, config[name])
        for name, check in MECHANISMS.items()
        if name in config
    }
    for name, offer in offers.items():
        if offer.index is not None:
            return Verdict(identity=f"{name}[{offer.index}]")

    configured = " or ".join(offers)
    challenge = CHALLENGE if "basic_auth" in offers else None
    if not any(offer.present for offer in offers.values()):
        detail = (
            f"The request carries no credential; the config expects {configured}. "
            "Put them in the webhook URL or headers at the ESP."
        )
        raise WebhookAuthError(
            request.esp, "missing_credentials", detail, challenge=challenge
        )
    detail = (
        f"The request's credential matches none of the configured {configured}; "
        "check the entries against what is set at the ESP."
    )
    raise WebhookAuthError(request.esp, "bad_signature", detail, challenge=challenge)


def _authorization(request: WebhookRequest, scheme: str) -> str | None:
    value = request.header("authorization")
    if value is None:
        return None
    given, _, token = value.strip().partition(" ")
    if given.lower() != scheme:
        return None
    return token.strip()


def _payload_secrets(request: WebhookRequest) -> list[str]:
    try:
        payload = load_json(request.esp, request.body)
    except WebhookError:
        return []
    events = payload if isinstance(payload, list) else [payload]
    keys = [event.get("SecretKey") for event in events if isinstance(event, dict)]
    found = [key for key in keys if isinstance(key, str) and key]
    # Every event must carry one, or the batch proves nothing about the rest.
    if not found or len(found) != len(events):
        return []
    return found
