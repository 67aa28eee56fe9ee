"""Webhook authentication: is this POST really from the ESP it names?

Pure functions over the exact request: :func:`verify_webhook` returns a
:class:`Verdict` or raises :class:`WebhookAuthError`, whose ``status`` is
the HTTP status to answer (see :mod:`.errors` for why each). One module
per mechanism, picked by the table in :mod:`.verify`:

- ``ecdsa``: SendGrid's signed event webhook (ECDSA P-256).
- ``mailgun_hmac``: Mailgun's HMAC over timestamp and token in the body.
- ``sns``: Amazon SES through SNS, RSA over a canonical string, with
  certificates from :class:`CertificateStore`.
- ``mandrill_hmac``: Mandrill's HMAC over the URL and the form fields.
- ``svix``: Resend's Svix HMAC over id, timestamp and body.
- ``credentials``: basic auth, bearer tokens, a custom header or a
  payload key for Postmark, Mailjet, SparkPost, Brevo and SocketLabs.

Configs are plain dicts checked by :func:`validate_config`.
"""

from connectors.webhook_auth.certificates import CertificateStore
from connectors.webhook_auth.config import validate_config
from connectors.webhook_auth.errors import (
    STATUS,
    Reason,
    WebhookAuthError,
    WebhookConfigError,
)
from connectors.webhook_auth.model import Verdict, WebhookRequest
from connectors.webhook_auth.verify import VERIFIERS, verify_webhook

__all__ = [
    "STATUS",
    "VERIFIERS",
    "CertificateStore",
    "Reason",
    "Verdict",
    "WebhookAuthError",
    "WebhookConfigError",
    "WebhookRequest",
    "validate_config",
    "verify_webhook",
]
