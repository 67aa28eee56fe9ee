"""The one entry point: pick the ESP's verifier from a table and run it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from connectors.webhook_auth import (
    credentials,
    ecdsa,
    mailgun_hmac,
    mandrill_hmac,
    sns,
    svix,
)
from connectors.webhook_auth.certificates import CertificateStore
from connectors.webhook_auth.config import validate_config
from connectors.webhook_auth.errors import WebhookAuthError, WebhookConfigError
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest
from connectors.webhook_auth.tokens import TokenCache

Verifier = Callable[[WebhookRequest, Mapping[str, Any], Context], Verdict]

VERIFIERS: dict[str, Verifier] = {
    "sendgrid": ecdsa.verify,
    "mailgun": mailgun_hmac.verify,
    "sparkpost": credentials.verify,
    "amazon_ses": sns.verify,
    "postmark": credentials.verify,
    "mailjet": credentials.verify,
    "brevo": credentials.verify,
    "mandrill": mandrill_hmac.verify,
    "resend": svix.verify,
    "socketlabs": credentials.verify,
}

_shared_store: CertificateStore | None = None
_store_lock = threading.Lock()


def default_certificates() -> CertificateStore:
    """The process-wide SNS certificate store, so the cache outlives a request."""
    global _shared_store
    with _store_lock:
        if _shared_store is None:
            _shared_store = CertificateStore()
        return _shared_store


def verify_webhook(
    request: WebhookRequest,
    config: Mapping[str, Any] | None,
    *,
    now: float | None = None,
    certificates: CertificateStore | None = None,
    tokens: TokenCache | None = None,
) -> Verdict:
    """Accept ``request`` as coming from its ESP, or raise :class:`WebhookAuthError`.

    ``config`` is the ESP's auth settings for this entry point (see
    :func:`validate_config`), or None when nothing is configured, which
    refuses the request. ``now`` (Unix seconds) is for tests. Fetching an
    SNS certificate may block for a few seconds on a cache miss, so call
    this from a worker thread in async code.
    """
    esp = request.esp
    verifier = VERIFIERS.get(esp)
    if verifier is None:
        detail = f"There is no webhook verifier for ESP {esp!r}."
        raise WebhookAuthError(esp, "not_configured", detail)
    if config is None:
        detail = (
            f"No webhook authentication is configured for {esp} on this entry point; "
            f"add a {esp} webhook auth config with its keys or credentials, or "
            '{"none": true} to accept unauthenticated posts on a local demo.'
        )
        raise WebhookAuthError(esp, "not_configured", detail)
    try:
        settings = validate_config(esp, config)
    except WebhookConfigError as exc:
        detail = (
            f"The {esp} webhook auth config cannot be used: {exc.field!r} {exc.problem}"
        )
        raise WebhookAuthError(esp, "not_configured", detail) from None

    if settings.get("none") is True:
        return Verdict(identity="none")
    context = Context(
        now=time.time() if now is None else now,
        max_age_s=settings["max_age_s"],
        certificates=certificates or default_certificates(),
        tokens=tokens,
    )
    return verifier(request, settings, context)
