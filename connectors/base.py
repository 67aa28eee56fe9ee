"""Value helpers every connector shares, and the one way to build an event.

Everything here is pure. Functions that look at one value (timestamps,
SMTP codes, addresses) return ``None`` or raise ``ValueError``;
:mod:`connectors.bodies` turns bodies and fields into records and raises
:class:`~mailyard.errors.WebhookError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from email.utils import getaddresses

from mailyard.errors import WebhookError
from mailyard.model import EmailEvent, make_event_id
from mailyard.providers import mailbox_provider, recipient_domain

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Epoch values at or above this are milliseconds: 10**11 s is the year 5138.
_MILLIS_FROM = 10**11
_NUMERIC = re.compile(r"-?\d+(?:\.\d*)?", re.ASCII)
# A reply code stands alone: not part of a longer number, an IP or an x.y.z.
_SMTP_CODE = re.compile(r"(?<!\d)(?<!\d\.)([2-5]\d\d)(?!\d)(?!\.\d)", re.ASCII)
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)", re.ASCII)
_THREE_DIGITS = re.compile(r"[0-9]{3}")
_ENHANCED_EXACT = re.compile(r"[245]\.\d{1,3}\.\d{1,3}", re.ASCII)
METADATA_MESSAGE_ID = "mailyard_message_id"
METADATA_STREAM = "mailyard_stream"


def parse_timestamp(value: object) -> datetime | None:
    """An aware UTC datetime from epoch seconds, milliseconds or ISO 8601.

    Numbers (or numeric strings) of 10**11 and above are milliseconds.
    Fractions beyond microseconds are truncated, not rounded. ISO strings
    without an offset are taken as UTC. Raises ``ValueError`` otherwise.
    """
    if value is None or value == "":
        return None
    kind = type(value)
    if kind is float:
        # repr is a float's shortest exact text, so truncation is exact too.
        text = repr(value)
    elif kind is str:
        text = value  # type: ignore[assignment]
        if not _NUMERIC.fullmatch(text):
            return _parse_iso(text)
    elif kind is int:
        text = ""
    else:
        raise ValueError(f"{value!r} is not a timestamp")

    try:
        micros = _epoch_micros(value) if kind is int else _epoch_text_micros(text)
        return _EPOCH + timedelta(microseconds=micros)
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(f"{value!r} is out of range for a timestamp") from None


def _epoch_micros(value: int) -> int:
    return value * 1_000 if abs(value) >= _MILLIS_FROM else value * 1_000_000


def _epoch_text_micros(text: str) -> int:
    whole, _, fraction = text.partition(".")
    if whole.isdigit() and (not fraction or fraction.isdigit()):
        seconds = int(whole)
        if seconds < _MILLIS_FROM:
            return seconds * 1_000_000 + int(fraction[:6].ljust(6, "0"))
        return seconds * 1_000 + int(fraction[:3].ljust(3, "0"))
    # Signs, exponents, inf and nan: rare enough for exact decimal arithmetic.
    exact = Decimal(text)
    scale = 1_000 if abs(exact) >= _MILLIS_FROM else 1_000_000
    return int(exact * scale) * (1_000_000 // scale)


def _parse_iso(text: str) -> datetime:
    try:
        # Python 3.11 truncates fractions past 6 digits (Postmark sends 7).
        parsed = datetime.fromisoformat(text.strip())
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither epoch time nor ISO 8601") from None


def smtp_code(text: str | None) -> int | None:
    """The first standalone 3-digit number from 200 to 599 in MTA text."""
    if not text:
        return None
    match = _SMTP_CODE.search(text)
    return int(match.group(1)) if match else None


def enhanced_status(text: str | None) -> str | None:
    """The first RFC 3463 enhanced status code (``5.1.1``) in MTA text."""
    if not text:
        return None
    match = _ENHANCED.search(text)
    return match.group(1) if match else None


def is_enhanced_status(text: str | None) -> bool:
    """Whether ``text`` is exactly an RFC 3463 ``x.y.z`` code."""
    return bool(text) and _ENHANCED_EXACT.fullmatch(text or "") is not None


def bare_address(value: str | None) -> str | None:
    """The addr-spec from ``"Name, Jr." <a@b>``-style text, or ``None``.

    Unquoted commas in a display name split it into several parts; the
    first part that carries an ``@`` is the address. Text with no display
    name syntax is returned stripped, as the ESP gave it.
    """
    if not value:
        return None
    if "<" not in value and "," not in value and "(" not in value:
        return value.strip() or None
    for _name, addr in getaddresses([value]):
        if "@" in addr:
            return addr
    return None


def metadata_text(value: object) -> str:
    """A metadata value as text: strings as-is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def split_metadata(
    pairs: Mapping[str, object] | Iterable[tuple[str, object]],
) -> tuple[str | None, str | None, dict[str, str]]:
    """ESP metadata split into (our message id, our stream, the rest as text)."""
    metadata: dict[str, str] = {}
    if not pairs:
        return None, None, metadata
    for key, value in pairs.items() if isinstance(pairs, Mapping) else pairs:
        metadata[key] = value if value.__class__ is str else metadata_text(value)
    message_id = metadata.pop(METADATA_MESSAGE_ID, None)
    stream = metadata.pop(METADATA_STREAM, None)
    return message_id, stream, metadata


def pick_smtp_code(structured: object, text: str | None) -> int | None:
    """The structured reply code when it is one, else the first one in ``text``."""
    if isinstance(structured, str) and _THREE_DIGITS.fullmatch(structured):
        structured = int(structured)
    if isinstance(structured, int) and not isinstance(structured, bool):
        if 200 <= structured <= 599:
            return structured
    return smtp_code(text)


def pick_enhanced_status(structured: str | None, text: str | None) -> str | None:
    """The structured ``x.y.z`` field when it is one, else the first in ``text``."""
    if structured and _ENHANCED_EXACT.fullmatch(structured):
        return structured
    return enhanced_status(text)


def strip_brackets(message_id: str | None) -> str | None:
    """A message id without one pair of surrounding ``<>``."""
    if message_id and message_id[0] == "<" and message_id[-1] == ">":
        return message_id[1:-1]
    return message_id or None


def build_event(
    esp: str,
    type_: str,
    esp_event: str,
    *,
    key: tuple[object, ...] | None = None,
    timestamp: datetime | None = None,
    recipient: str | None = None,
    esp_message_id: str | None = None,
    meta: Mapping[str, object] | Iterable[tuple[str, object]] = (),
    tags: list[str] | None = None,
    bounce_class: str | None = None,
    smtp_code: int | None = None,
    enhanced_status: str | None = None,
    reason: str | None = None,
    url: str | None = None,
    user_agent: str | None = None,
    sending_ip: str | None = None,
) -> EmailEvent:
    """An :class:`EmailEvent` with the conventions every connector shares.

    ``key`` is the ESP's idempotency key; without one the event id hashes
    (message id, recipient, type, timestamp). Bounce classes exist only on
    bounced and deferred events, and a deferral is always soft. ``url`` is
    kept on clicks only.
    """
    esp_message_id = strip_brackets(esp_message_id)
    if type_ == "deferred":
        bounce_class = "soft"
    elif type_ != "bounced":
        bounce_class = None
    if key is None:
        key = (esp_message_id, recipient, type_, timestamp)
    message_id, stream, metadata = split_metadata(meta)

    domain = recipient_domain(recipient)
    try:
        event_id = make_event_id(esp, *key)
    except UnicodeEncodeError:
        detail = "an identifying field contains an unpaired surrogate."
        raise WebhookError(esp, detail) from None
    return EmailEvent(
        event_id=event_id,
        type=type_,  # type: ignore[arg-type]  # connectors map into EVENT_TYPES
        esp=esp,
        esp_event=esp_event,
        timestamp=timestamp,
        recipient=recipient,
        recipient_domain=domain,
        mailbox_provider=mailbox_provider(domain),
        esp_message_id=esp_message_id,
        message_id=message_id,
        stream=stream,
        tags=tags or [],
        metadata=metadata,
        bounce_class=bounce_class,  # type: ignore[arg-type]  # tables hold Literals
        smtp_code=smtp_code,
        enhanced_status=enhanced_status,
        reason=reason or None,
        url=url if type_ == "clicked" else None,
        user_agent=user_agent or None,
        sending_ip=sending_ip or None,
    )
