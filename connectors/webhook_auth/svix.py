"""Resend, through Svix: HMAC-SHA256, base64, over ``id.timestamp.body``.

Headers ``svix-id``, ``svix-timestamp`` (Unix seconds) and
``svix-signature``, a space-separated list of ``v1,<base64>`` entries
(several while Svix rotates its key). The key is the base64 after
``whsec_`` in the signing secret. White-labelled senders use a
``webhook-`` prefix instead of ``svix-``; both are read. ``svix-id`` is
stable across retries while the timestamp is fresh on each attempt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from connectors.webhook_auth.checks import (
    check_unix_stamp,
    first_match,
    require_header,
    utf8,
)
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest

_HINT = "Resend signs every webhook post through Svix; is this post from Resend?"


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_<base64>`` signing secret."""
    return base64.b64decode(secret.partition("_")[2])


def signed_content(message_id: str, timestamp: str, body: bytes) -> bytes:
    return utf8(f"{message_id}.{timestamp}.") + body


def sign(key: bytes, content: bytes) -> bytes:
    """The base64 signature of ``content``, as it appears after ``v1,``."""
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    esp = request.esp
    prefix = _header_prefix(request)
    message_id = require_header(request, prefix + "id", _HINT)
    stamp = require_header(request, prefix + "timestamp", _HINT)
    header = require_header(request, prefix + "signature", _HINT)

    check_unix_stamp(esp, stamp, context, "svix-timestamp")

    entries = (entry.partition(",") for entry in header.split())
    offered = [utf8(sig) for version, _, sig in entries if version == "v1"]
    content = signed_content(message_id, stamp, request.body)
    expected = [sign(secret_key(secret), content) for secret in config["secrets"]]
    index = first_match(expected, offered)
    if index is not None:
        return Verdict(identity=f"secrets[{index}]")

    detail = (
        f"No v1 signature in the header matches any of the {len(expected)} "
        "configured secrets; copy the signing secret from the webhook's page in Resend."
    )
    raise WebhookAuthError(esp, "bad_signature", detail)


def _header_prefix(request: WebhookRequest) -> str:
    if request.header("svix-signature") is None and request.header("webhook-signature"):
        return "webhook-"
    return "svix-"
