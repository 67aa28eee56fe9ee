"""SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256.

SendGrid signs the ``X-Twilio-Email-Event-Webhook-Timestamp`` header value
followed directly by the raw body bytes (including the CRLF after each
event), and sends the DER-encoded signature, base64, in
``X-Twilio-Email-Event-Webhook-Signature``. The verification key SendGrid
shows is a base64 DER SubjectPublicKeyInfo; PEM is accepted too.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.webhook_auth.checks import (
    check_unix_stamp,
    decode_base64,
    require_header,
)
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
_HINT = (
    "turn on 'Signed Event Webhook Requests' in SendGrid's Mail Settings, "
    "or remove public_keys from the config."
)


@functools.lru_cache(maxsize=256)
def normalize_public_key(text: str) -> str | None:
    """A P-256 public key (base64 DER or PEM) as base64 DER, or None."""
    key = _parse_public_key(text.strip())
    if key is None:
        return None
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


@functools.lru_cache(maxsize=256)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    """The key behind a normalized config entry, parsed once per process."""
    return _parse_public_key(text)


def _parse_public_key(text: str) -> ec.EllipticCurvePublicKey | None:
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            der = base64.b64decode("".join(text.split()), validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    return key if isinstance(key.curve, ec.SECP256R1) else None


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    esp = request.esp
    signature_b64 = require_header(request, SIGNATURE_HEADER, _HINT)
    stamp = require_header(request, TIMESTAMP_HEADER, _HINT)

    check_unix_stamp(esp, stamp, context, "signature timestamp")
    signature = decode_base64(esp, signature_b64, "signature header")

    signed = stamp.encode("ascii") + request.body
    for index, entry in enumerate(config["public_keys"]):
        key = load_public_key(entry)
        if key is None:
            continue
        try:
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return Verdict(identity=f"public_keys[{index}]")

    count = len(config["public_keys"])
    detail = (
        f"The signature does not verify with any of the {count} configured "
        "public_keys over the timestamp and the exact body; check that the key "
        "is the one SendGrid shows and that nothing re-encoded the body."
    )
    raise WebhookAuthError(esp, "bad_signature", detail)
