"""The sending side of webhook authentication, for demos, replays and tests.

:func:`sign_request` makes a request that :mod:`connectors.webhook_auth`
accepts, the way each ESP would: it returns the headers to add and the
body to send, which differs from the given one only where the ESP puts
credentials in the body (Mailgun's signature, SocketLabs' secret key).
``secrets`` holds the sender's side of one credential:

- sendgrid: ``{"private_key": <PEM or EllipticCurvePrivateKey>}``
- mailgun: ``{"signing_key": ...}``; the body is JSON or a url-encoded form
- mandrill: ``{"webhook_key": ...}``; signs ``url`` and the form fields
- resend: ``{"secret": "whsec_..."}``, optionally ``"message_id"``
- postmark, mailjet, sparkpost, brevo, socketlabs: ``{"basic_auth":
  "user:password"}``; brevo also ``{"bearer_token": ...}``; sparkpost
  also ``{"header": {"name": ..., "value": ...}}``; socketlabs also
  ``{"secret_key": ...}``

Amazon SNS messages are built whole by :func:`signed_sns_message`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from connectors.bodies import parse_urlencoded
from connectors.webhook_auth import ecdsa, mandrill_hmac, sns, svix

Signed = tuple[dict[str, str], bytes]
SnsType = Literal["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]


def sign_request(
    esp: str,
    secrets: Mapping[str, Any],
    body: bytes,
    url: str,
    now: float | None = None,
) -> Signed:
    """Headers to add and the body to send for a request from ``esp``."""
    signer = SIGNERS.get(esp)
    if signer is None:
        hint = (
            " (build SNS messages with signed_sns_message)"
            if esp == "amazon_ses"
            else ""
        )
        raise ValueError(f"sign_request cannot sign for ESP {esp!r}{hint}.")
    stamp = str(int(time.time() if now is None else now))
    return signer(secrets, body, url, stamp)


def _sendgrid(secrets: Mapping[str, Any], body: bytes, url: str, stamp: str) -> Signed:
    key = secrets["private_key"]
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        key = serialization.load_pem_private_key(_bytes(key), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey), (
            "private_key is not an EC key"
        )
    signature = key.sign(stamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        ecdsa.SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii"),
        ecdsa.TIMESTAMP_HEADER: stamp,
    }
    return headers, body


def _mailgun(secrets: Mapping[str, Any], body: bytes, url: str, stamp: str) -> Signed:
    token = random.token_hex(25)
    key = _bytes(secrets["signing_key"])
    digest = hmac.new(key, (stamp + token).encode(), hashlib.sha256).hexdigest()
    fields = {"timestamp": stamp, "token": token, "signature": digest}
    if body.lstrip().startswith(b"{"):
        payload = json.loads(body)
        payload["signature"] = fields
        return {}, json.dumps(payload).encode("utf-8")
    # Legacy form posts: Mailgun's own fields come after any user variables.
    separator = b"&" if body else b""
    return {}, body + separator + urlencode(fields).encode("ascii")


def _mandrill(secrets: Mapping[str, Any], body: bytes, url: str, stamp: str) -> Signed:
    signed = mandrill_hmac.signed_string(url, parse_urlencoded(body))
    digest = hmac.new(_bytes(secrets["webhook_key"]), signed, hashlib.sha1).digest()
    return {mandrill_hmac.SIGNATURE_HEADER: base64.b64encode(digest).decode()}, body


def _resend(secrets: Mapping[str, Any], body: bytes, url: str, stamp: str) -> Signed:
    message_id = secrets.get("message_id") or f"msg_{uuid.uuid4().hex}"
    content = svix.signed_content(message_id, stamp, body)
    signature = svix.sign(svix.secret_key(secrets["secret"]), content)
    headers = {
        "svix-id": message_id,
        "svix-timestamp": stamp,
        "svix-signature": "v1," + signature.decode("ascii"),
    }
    return headers, body


def _credentials(
    secrets: Mapping[str, Any], body: bytes, url: str, stamp: str
) -> Signed:
    headers: dict[str, str] = {}
    if "basic_auth" in secrets:
        pair = base64.b64encode(_bytes(secrets["basic_auth"])).decode("ascii")
        headers["authorization"] = f"Basic {pair}"
    if "bearer_token" in secrets:
        headers["authorization"] = f"Bearer {secrets['bearer_token']}"
    if "header" in secrets:
        headers[secrets["header"]["name"].lower()] = secrets["header"]["value"]
    if "secret_key" in secrets:
        body = _with_secret_key(body, secrets["secret_key"])
    return headers, body


def _with_secret_key(body: bytes, key: str) -> bytes:
    payload = json.loads(body)
    for event in payload if isinstance(payload, list) else [payload]:
        event["SecretKey"] = key
    return json.dumps(payload).encode("utf-8")


SIGNERS: dict[str, Callable[[Mapping[str, Any], bytes, str, str], Signed]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "mandrill": _mandrill,
    "resend": _resend,
    "postmark": _credentials,
    "mailjet": _credentials,
    "sparkpost": _credentials,
    "brevo": _credentials,
    "socketlabs": _credentials,
}


def sign_sns_message(
    message: Mapping[str, str],
    private_key: rsa.RSAPrivateKey | str | bytes,
    cert_url: str,
    *,
    version: Literal["1", "2"] = "2",
) -> dict[str, str]:
    """``message`` with SignatureVersion, SigningCertURL and Signature set."""
    key = _rsa_key(private_key)
    algorithm = sns.SIGNATURE_HASHES[version]()
    signature = key.sign(sns.string_to_sign(message), padding.PKCS1v15(), algorithm)
    return {
        **message,
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "Signature": base64.b64encode(signature).decode("ascii"),
    }


def signed_sns_message(
    kind: SnsType,
    *,
    topic_arn: str,
    message: str,
    private_key: rsa.RSAPrivateKey | str | bytes,
    cert_url: str,
    subject: str | None = None,
    now: float | None = None,
    version: Literal["1", "2"] = "2",
    subscribe_url: str | None = None,
) -> dict[str, str]:
    """A whole SNS message of type ``kind``, signed as SNS signs it."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    region = topic_arn.split(":")[3]
    envelope = {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z",
    }
    if kind == "Notification":
        if subject is not None:
            envelope["Subject"] = subject
        envelope["UnsubscribeURL"] = _sns_url(region, "Unsubscribe", topic_arn, "")
    else:
        token = random.token_hex(64)
        envelope["Token"] = token
        envelope["SubscribeURL"] = subscribe_url or _sns_url(
            region, "ConfirmSubscription", topic_arn, token
        )
    return sign_sns_message(envelope, private_key, cert_url, version=version)


def _sns_url(region: str, action: str, topic_arn: str, token: str) -> str:
    query = f"Action={action}&TopicArn={quote(topic_arn, safe='')}"
    if token:
        query += f"&Token={token}"
    return f"https://sns.{region}.amazonaws.com/?{query}"


def _ec_key(value: object) -> ec.EllipticCurvePrivateKey:
    key = _load_pem(value)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(
            "The SendGrid private_key must be an EC private key or its PEM."
        )
    return key


def _rsa_key(value: object) -> rsa.RSAPrivateKey:
    key = _load_pem(value)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("The SNS private_key must be an RSA private key or its PEM.")
    return key


def _load_pem(value: object) -> object:
    if isinstance(value, (str, bytes)):
        return serialization.load_pem_private_key(_bytes(value), password=None)
    return value


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value
