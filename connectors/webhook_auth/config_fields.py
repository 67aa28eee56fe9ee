"""One checker per kind of config field: each returns the normalized value.

A checker raises :class:`WebhookConfigError` naming the field; messages
describe a secret ("entry 2 has no colon") and never repeat it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from connectors.webhook_auth.ecdsa import normalize_public_key
from connectors.webhook_auth.errors import WebhookConfigError

Checker = Callable[[str, str, Any], Any]

_MAX_SECRET_CHARS = 4096
_MAX_AGE_LIMIT_S = 86_400
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
# arn:<partition>:sns:<region>:<12-digit account>:<topic name>
_TOPIC_ARN = re.compile(
    r"arn:aws(?:-cn|-us-gov)?:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:"
    r"[A-Za-z0-9_-]{1,256}(?:\.fifo)?"
)


def strings(esp: str, field: str, value: Any) -> list[str]:
    """A non-empty list of non-empty strings (the shape of every key list)."""
    if not isinstance(value, list) or not value:
        problem = "must be a non-empty list of strings, so keys can be rotated."
        raise WebhookConfigError(esp, field, problem)
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise WebhookConfigError(
                esp, f"{field}[{index}]", "must be a non-empty string."
            )
    return list(value)


def secrets(esp: str, field: str, value: Any) -> list[str]:
    """Shared secrets and tokens: printable text without stray whitespace."""
    entries = strings(esp, field, value)
    for index, item in enumerate(entries):
        name = f"{field}[{index}]"
        if item != item.strip():
            problem = (
                "has leading or trailing whitespace; remove it (a pasted newline?)."
            )
            raise WebhookConfigError(esp, name, problem)
        if len(item) > _MAX_SECRET_CHARS or not item.isprintable():
            problem = (
                f"must be printable text of at most {_MAX_SECRET_CHARS} characters."
            )
            raise WebhookConfigError(esp, name, problem)
    return entries


def basic_auth(esp: str, field: str, value: Any) -> list[str]:
    """``user:password`` pairs, as the ESP puts them in the webhook URL."""
    entries = secrets(esp, field, value)
    for index, item in enumerate(entries):
        user, colon, password = item.partition(":")
        if not colon or not user or not password:
            problem = "must be 'user:password' with both parts non-empty."
            raise WebhookConfigError(esp, f"{field}[{index}]", problem)
    return entries


def public_keys(esp: str, field: str, value: Any) -> list[str]:
    """SendGrid verification keys, normalized to base64 DER."""
    entries = strings(esp, field, value)
    normalized = []
    for index, item in enumerate(entries):
        key = normalize_public_key(item)
        if key is None:
            problem = (
                "is not an EC P-256 public key; paste the verification key "
                "SendGrid shows (base64 DER) or a PEM public key."
            )
            raise WebhookConfigError(esp, f"{field}[{index}]", problem)
        normalized.append(key)
    return normalized


def svix_secrets(esp: str, field: str, value: Any) -> list[str]:
    """Svix signing secrets: ``whsec_`` followed by base64."""
    entries = secrets(esp, field, value)
    for index, item in enumerate(entries):
        prefix, _, encoded = item.partition("_")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if prefix != "whsec" or not key:
            problem = "must be a signing secret of the form 'whsec_<base64>'."
            raise WebhookConfigError(esp, f"{field}[{index}]", problem)
    return entries


def topic_arns(esp: str, field: str, value: Any) -> list[str]:
    """SNS topic ARNs allowed to post here."""
    entries = strings(esp, field, value)
    for index, item in enumerate(entries):
        if not _TOPIC_ARN.fullmatch(item):
            problem = (
                f"is {item!r}, not an SNS topic ARN like "
                "'arn:aws:sns:us-east-1:123456789012:ses-events'."
            )
            raise WebhookConfigError(esp, f"{field}[{index}]", problem)
    return entries


def public_url(esp: str, field: str, value: Any) -> str:
    """The exact URL configured at the ESP (Mandrill signs it)."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        problem = "must be the absolute http(s) URL entered in the ESP's dashboard."
        raise WebhookConfigError(esp, field, problem)
    return str(value)


def custom_header(esp: str, field: str, value: Any) -> dict[str, Any]:
    """``{"name": ..., "values": [...]}``: a header the ESP adds to each post."""
    if not isinstance(value, dict) or set(value) != {"name", "values"}:
        problem = "must be an object with exactly the keys 'name' and 'values'."
        raise WebhookConfigError(esp, field, problem)
    name = value["name"]
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise WebhookConfigError(esp, f"{field}.name", "must be an HTTP header name.")
    values = secrets(esp, f"{field}.values", value["values"])
    return {"name": name.lower(), "values": values}


def secret(esp: str, field: str, value: Any) -> str:
    """One secret, checked as :func:`secrets` checks each entry."""
    if not isinstance(value, str):
        raise WebhookConfigError(esp, field, f"must be a string, not {value!r}.")
    return secrets(esp, field, [value])[0]


def flag(esp: str, field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise WebhookConfigError(esp, field, f"must be true or false, not {value!r}.")
    return value


def max_age(esp: str, field: str, value: Any) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not 0 < value <= _MAX_AGE_LIMIT_S:
        problem = f"must be a number of seconds above 0 and at most {_MAX_AGE_LIMIT_S}."
        raise WebhookConfigError(esp, field, problem)
    return float(value)
