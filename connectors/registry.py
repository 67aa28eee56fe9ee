"""The connector registry and :func:`normalize`, the one way in for a body.

ESP names are the ones used in webhook URLs, settings and the ``esp``
field of every event.
"""

from __future__ import annotations

from types import ModuleType

from connectors import (
    amazon_ses,
    brevo,
    mailgun,
    mailjet,
    mandrill,
    postmark,
    resend,
    sendgrid,
    socketlabs,
    sparkpost,
)
from mailyard.errors import UnknownEspError
from mailyard.model import EmailEvent

CONNECTORS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        sendgrid, mailgun, sparkpost, amazon_ses, postmark, mailjet,
        brevo, mandrill, resend, socketlabs,
    )
}  # fmt: skip


def esp_names() -> list[str]:
    """The ESP names :func:`normalize` accepts, in registry order."""
    return list(CONNECTORS)


def normalize(
    esp: str,
    body: bytes,
    content_type: str,
    *,
    subaccount: str | None = None,
) -> list[EmailEvent]:
    """The events in one webhook body from ``esp``, in body order.

    Raises :class:`~mailyard.errors.UnknownEspError` for an ESP name that
    has no connector and :class:`~mailyard.errors.WebhookError` for a body
    that cannot be read; nothing else.
    """
    connector = CONNECTORS.get(esp)
    if connector is None:
        raise UnknownEspError(esp, esp_names())

    events: list[EmailEvent] = connector.parse(body, content_type)
    if subaccount is not None:
        for event in events:
            event.subaccount = subaccount
    return events
