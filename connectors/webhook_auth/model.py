"""The values a verifier reads and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.webhook_auth.tokens import TokenCache
    from connectors.webhook_auth.certificates import CertificateStore


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One POST as the ESP sent it.

    ``headers`` has lower-cased names; ``body`` is the exact bytes, since
    every signature covers those and not a re-serialized form.
    """

    esp: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    content_type: str

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (lower-case), or None if absent or empty."""
        value = self.headers.get(name)
        return value if value else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """An accepted request.

    ``confirm_url`` is set for an SNS SubscriptionConfirmation from an
    allowed topic: GET it to confirm. ``identity`` says which configured
    credential matched (``"signing_keys[1]"``), never the secret itself.
    """

    confirm_url: str | None = None
    identity: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a verifier needs besides the request and its config."""

    now: float
    max_age_s: float
    certificates: CertificateStore
    tokens: TokenCache | None = None  # Mailgun tokens seen (a gateway passes one)
