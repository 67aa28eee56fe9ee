"""Amazon SES events through SNS: RSA signatures over a canonical string.

SNS signs, with the key of the certificate at ``SigningCertURL``, a
string of ``key\\nvalue\\n`` lines in a fixed key order that depends on
the message ``Type`` (values as JSON-decoded, so an escaped ``\\n`` is a
real newline). ``SignatureVersion`` 1 is RSA PKCS#1 v1.5 with SHA-1, 2
the same with SHA-256. A valid signature proves only that *some* SNS
topic sent the message, so ``TopicArn`` must be in ``topic_arns``.

Checks run cheapest first, so a forged message never costs a fetch:
optional basic auth, topic, timestamp, URLs, then the certificate. SNS
keeps the publish ``Timestamp`` when it retries, for at most an hour
under a custom delivery policy: raise ``max_age_s`` to match one.
Raw message delivery must be off, since it strips the signed envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from connectors.bodies import load_json
from connectors.webhook_auth import credentials
from connectors.webhook_auth.certificates import CertificateError
from connectors.webhook_auth.checks import check_fresh, decode_base64, shown
from connectors.webhook_auth.errors import Reason, WebhookAuthError
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest
from mailyard.errors import WebhookError

_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_KEYS: dict[str, tuple[str, ...]] = {
    "Notification": (
        "Message",
        "MessageId",
        "Subject",
        "Timestamp",
        "TopicArn",
        "Type",
    ),
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
}
OPTIONAL_KEYS = frozenset({"Subject"})
# A tuple, so that testing an unhashable "Type" value cannot raise.
_TYPES = tuple(SIGNED_KEYS)
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical string SNS signs.

    Raises ValueError for a missing signed key, TypeError for a non-string one.
    """
    kind = message.get("Type")
    keys = SIGNED_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise ValueError(f"Type {shown(str(kind))} is not one SNS sends")
    lines = []
    for key in keys:
        value = message.get(key)
        if value is None and key in OPTIONAL_KEYS:
            continue
        if value is None:
            raise ValueError(f"the signed field {key!r} is missing")
        if not isinstance(value, str):
            raise TypeError(f"the signed field {key!r} is not a string")
        lines.append(f"{key}\n{value}\n")
    return "".join(lines).encode("utf-8", "surrogatepass")


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    """Accept a signed SNS message from an allowed topic, with the confirm URL
    of a SubscriptionConfirmation."""
    if "basic_auth" in config:
        credentials.verify(request, {"basic_auth": config["basic_auth"]}, context)
    message = _envelope(request)
    index = _allowed_topic(request, message, config["topic_arns"])
    check_fresh(request.esp, _published_at(request, message), context, "SNS Timestamp")

    try:
        signed = string_to_sign(message)
    except (ValueError, TypeError) as exc:
        detail = f"The SNS message cannot be verified: {exc}."
        raise _refuse(request, "malformed", detail) from None
    confirm_url = _confirm_url(request, message, context)
    certificate = _certificate(request, message, context)

    _check_signature(request, message, certificate, signed)
    return Verdict(confirm_url=confirm_url, identity=f"topic_arns[{index}]")


def _envelope(request: WebhookRequest) -> dict[str, Any]:
    try:
        message = load_json(request.esp, request.body)
    except WebhookError as exc:
        raise _refuse(request, "malformed", f"The {exc.detail}") from None
    if not isinstance(message, dict) or message.get("Type") not in _TYPES:
        detail = (
            "The body is not an SNS message with a Notification or (Un)Subscription"
            "Confirmation Type; turn off raw message delivery on the subscription."
        )
        raise _refuse(request, "malformed", detail)
    if not message.get("Signature") or not message.get("SigningCertURL"):
        detail = "The SNS message has no Signature or SigningCertURL."
        raise _refuse(request, "missing_credentials", detail)
    return message


def _allowed_topic(
    request: WebhookRequest, message: dict[str, Any], allowed: list[str]
) -> int:
    topic = message.get("TopicArn")
    # The header is unsigned, but a mismatch means someone edited the request.
    header = request.header("x-amz-sns-topic-arn")
    if isinstance(topic, str) and topic in allowed and header in (None, topic):
        return allowed.index(topic)
    shown_topic = shown(topic, 120) if isinstance(topic, str) else "missing"
    detail = (
        f"The TopicArn {shown_topic} is not in topic_arns (or differs from the "
        "x-amz-sns-topic-arn header); add it to the config if this topic is yours."
    )
    raise _refuse(request, "wrong_topic", detail)


def _published_at(request: WebhookRequest, message: dict[str, Any]) -> float:
    value = message.get("Timestamp")
    try:
        published = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        published = None
    if published is None:
        detail = f"The SNS Timestamp {shown(str(value))} is not an ISO 8601 time."
        raise _refuse(request, "malformed", detail)
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return published.timestamp()


def _confirm_url(
    request: WebhookRequest, message: dict[str, Any], context: Context
) -> str | None:
    if message["Type"] != "SubscriptionConfirmation":
        return None
    url: str = message["SubscribeURL"]
    try:
        region = context.certificates.check_url(url, "SubscribeURL", certificate=False)
    except CertificateError as exc:
        raise _refuse(request, "bad_certificate_url", exc.detail) from None
    # Confirm only in the topic's own region (anymail#235).
    topic_region = message["TopicArn"].split(":")[3]
    if region is not None and region != topic_region:
        detail = (
            f"The SubscribeURL is in region {region!r}, "
            f"not the topic's {topic_region!r}."
        )
        raise _refuse(request, "bad_certificate_url", detail)
    return url


def _certificate(
    request: WebhookRequest, message: dict[str, Any], context: Context
) -> x509.Certificate:
    url = message["SigningCertURL"]
    if not isinstance(url, str):
        raise _refuse(request, "malformed", "The SigningCertURL is not a string.")
    try:
        certificate = context.certificates.certificate(url)
    except CertificateError as exc:
        raise _refuse(request, exc.reason, exc.detail) from None

    now = datetime.fromtimestamp(context.now, UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        detail = "The signing certificate is outside its validity period."
        raise _refuse(request, "bad_signature", detail)
    return certificate


def _check_signature(
    request: WebhookRequest,
    message: dict[str, Any],
    certificate: x509.Certificate,
    signed: bytes,
) -> None:
    version = message.get("SignatureVersion")
    algorithm = SIGNATURE_HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        detail = f"The SignatureVersion {shown(str(version))} is not 1 or 2."
        raise _refuse(request, "malformed", detail)
    signature = message["Signature"]
    if not isinstance(signature, str):
        raise _refuse(request, "bad_signature", "The Signature is not a string.")

    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _refuse(
            request, "bad_signature", "The signing certificate has no RSA key."
        )
    try:
        key.verify(
            decode_base64(request.esp, signature, "SNS Signature"),
            signed,
            padding.PKCS1v15(),
            algorithm(),
        )
    except InvalidSignature:
        detail = (
            "The SNS Signature does not verify with the certificate at SigningCertURL."
        )
        raise _refuse(request, "bad_signature", detail) from None


def _refuse(request: WebhookRequest, reason: Reason, detail: str) -> WebhookAuthError:
    return WebhookAuthError(request.esp, reason, detail)
