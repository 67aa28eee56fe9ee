"""Where webhook authentication plugs into the gateway.

The checks themselves live in :mod:`connectors.webhook_auth`; this module
keeps the gateway's old entry point until the gateway passes a
:class:`~connectors.webhook_auth.WebhookRequest` and the subaccount's
config to :func:`connectors.webhook_auth.verify_webhook`. Until then
:func:`verify_webhook` here accepts every request.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.webhook_auth import WebhookAuthError

__all__ = ["WebhookAuthError", "verify_webhook"]


def verify_webhook(
    esp: str, subaccount: str | None, headers: Mapping[str, str], body: bytes
) -> None:
    """Accept every request: the gateway's placeholder until it is wired to
    :func:`connectors.webhook_auth.verify_webhook`."""
    return
