"""Small checks every verifier shares: headers, clocks, constant-time matches."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.model import Context, WebhookRequest

# Unix seconds as ESPs send them: ASCII digits only (int() would also take
# "1_0", " 10 " and non-ASCII digits, none of which an ESP sends).
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}", re.ASCII)


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; lone surrogates pass through instead of raising."""
    return text.encode("utf-8", "surrogatepass")


def shown(value: str, limit: int = 40) -> str:
    """A received (never a secret) value, quoted and cut short for a message."""
    if len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def without_userinfo(url: str) -> str:
    """``url`` for a message, with any ``user:password@`` masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an unparseable URL)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc="***@" + host).geturl()


def first_match(expected: Sequence[bytes], given: Iterable[bytes]) -> int | None:
    """Index of the first ``expected`` value equal to any ``given`` one.

    Every pair is compared with :func:`hmac.compare_digest`, without
    stopping early, so timing tells nothing about which bytes differed.
    """
    offered = list(given)
    found: int | None = None
    for index, candidate in enumerate(expected):
        for value in offered:
            if hmac.compare_digest(candidate, value) and found is None:
                found = index
    return found


def require_header(request: WebhookRequest, name: str, hint: str) -> str:
    """The value of header ``name``, or a missing_credentials refusal."""
    value = request.header(name)
    if value is None:
        detail = f"The request has no {name} header; {hint}"
        raise WebhookAuthError(request.esp, "missing_credentials", detail)
    return value


def unix_seconds(esp: str, value: str, what: str) -> int:
    """Parse a Unix-seconds timestamp or refuse the request as malformed."""
    if not _UNIX_SECONDS.fullmatch(value):
        detail = f"The {what} {shown(value)} is not Unix seconds."
        raise WebhookAuthError(esp, "malformed", detail)
    return int(value)


def check_fresh(esp: str, signed_at: float, context: Context, what: str) -> None:
    """Refuse a timestamp further than ``max_age_s`` from now, either way."""
    skew = context.now - signed_at
    if abs(skew) <= context.max_age_s:
        return
    direction = "old" if skew > 0 else "in the future"
    detail = (
        f"The {what} is {abs(skew):.0f} s {direction}, beyond the allowed "
        f"{context.max_age_s:g} s; check this host's clock, or raise max_age_s "
        "in the webhook auth config if the ESP retries for longer."
    )
    raise WebhookAuthError(esp, "stale_timestamp", detail)


def check_unix_stamp(esp: str, value: str, context: Context, what: str) -> None:
    """Refuse a Unix-seconds timestamp that is malformed or not fresh."""
    check_fresh(esp, unix_seconds(esp, value, what), context, what)


def decode_base64(esp: str, value: str, what: str) -> bytes:
    """Standard base64 from a header or field, or a bad_signature refusal."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        detail = f"The {what} is not valid base64."
        raise WebhookAuthError(esp, "bad_signature", detail) from None
