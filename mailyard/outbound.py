"""What the outbound sinks are handed, and what they hand back.

The router turns a submitted message into one :class:`Delivery` per
recipient and destination; a sink sends it and returns a
:class:`SendResult`. Sinks never raise for a provider's answer (a 4xx or
5xx is a result, not an exception); they raise
:class:`mailyard.errors.MailyardError` subclasses only for configuration
mistakes.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

Outcome = Literal["accepted", "deferred", "bounced", "failed"]

# Header every outbound copy carries, so events map back to our message.
MESSAGE_ID_HEADER = "X-Mailyard-Message-Id"
# Metadata / custom-arg key ESP relays set; connectors read it back.
MESSAGE_ID_METADATA = "mailyard_message_id"


@dataclasses.dataclass(slots=True)
class Delivery:
    """One message to one recipient through one destination."""

    message_id: str
    recipient: str
    from_addr: str
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    raw_mime: bytes | None = None  # when set, sent as is (plus our header)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    subaccount: str | None = None
    stream: str | None = None
    attempt: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider answered, classified.

    ``accepted``: the provider took the message (SMTP 2xx, HTTP 2xx).
    ``deferred``: try again later (SMTP 4xx, HTTP 429 or 5xx, network error).
    ``bounced``: the recipient was refused for good (SMTP 5xx).
    ``failed``: the request itself was refused (HTTP 4xx other than 429).
    ``detail`` is the provider's own text.
    """

    outcome: Outcome
    detail: str
    smtp_code: int | None = None
    enhanced_status: str | None = None
    http_status: int | None = None
    provider_message_id: str | None = None
    retry_after_s: float | None = None
