"""Where webhook authentication plugs in.

The gateway calls :func:`verify_webhook` before it accepts a body. Today it
accepts every request: signature checks for each ESP (SendGrid's ECDSA,
Mailgun's HMAC, SNS certificates, basic auth) come with subaccounts and
keys. A failed check raises :class:`WebhookAuthError`, which the gateway
answers with ``status`` (401 or 403, as the ESP's retry rules want).
"""

from __future__ import annotations

from collections.abc import Mapping

from mailyard.errors import MailyardError


class WebhookAuthError(MailyardError, PermissionError):
    def __init__(self, esp: str, detail: str, status: int = 401) -> None:
        super().__init__(f"{esp} webhook refused: {detail}")
        self.esp = esp
        self.status = status


def verify_webhook(
    esp: str, subaccount: str | None, headers: Mapping[str, str], body: bytes
) -> None:
    """Raise WebhookAuthError when the request is not from the ESP (no-op today)."""
    return None
