"""Why a webhook was refused, and the HTTP status each reason gets.

Every refusal is a :class:`WebhookAuthError` with a short ``reason`` code
and a ``status`` taken from :data:`STATUS`, one table for all ESPs. The
statuses follow what each ESP does with a non-2xx reply:

- SendGrid retries any non-2xx for up to 24 hours; SparkPost for 8 hours.
- Mailgun retries for about 8 hours and stops only on 406, which we never
  send: a key typo must not throw events away.
- Postmark stops on 403, so a credential problem is never answered 403.
- Amazon SNS retries only 5xx and network errors (3 retries, 20 s apart,
  by default). It sends basic-auth credentials only after a 401 that
  carries ``WWW-Authenticate``, which is what ``challenge`` is for.
- Brevo stops on every 4xx except 429 and on every 5xx, so an event it
  posts while its credentials are wrong is lost whatever we answer; we
  do not misuse 429 to keep it retrying.
- Mailjet, Mandrill, Resend (Svix) and SocketLabs: our reference does not
  give their retry rules (unverified); none is known to stop on 401.

Hence 401 for anything an operator can fix on our side (no config, a
rotated key, a clock that drifted), so a genuine ESP keeps retrying while
the setting is corrected. 403 is kept for SNS requests that are not ours
to accept even when genuine (another topic) or that no real SNS message
carries (a certificate on a foreign host). 503 asks SNS to retry when the
signing certificate could not be fetched, and 400 marks a body that is
not the format the ESP sends. A Mailgun token reused with another body
(``replayed``) is a forgery, never a retry: 401.
"""

from __future__ import annotations

from typing import Literal

from mailyard.errors import ConfigError, MailyardError

# "bad_signature" also covers a basic-auth password, token or header value
# that matches nothing; "bad_certificate_url" also covers an SNS SubscribeURL
# off the allowed hosts or outside the topic's region.
Reason = Literal[
    "missing_credentials",
    "not_configured",
    "bad_signature",
    "stale_timestamp",
    "wrong_topic",
    "bad_certificate_url",
    "certificate_unavailable",
    "malformed",
    "replayed",
]

STATUS: dict[Reason, int] = {
    "missing_credentials": 401,
    "not_configured": 401,
    "bad_signature": 401,
    "stale_timestamp": 401,
    "wrong_topic": 403,
    "bad_certificate_url": 403,
    "certificate_unavailable": 503,
    "malformed": 400,
    "replayed": 401,
}


class WebhookAuthError(MailyardError, PermissionError):
    """A webhook request could not be shown to come from the ESP.

    ``reason`` is one of :data:`Reason`; ``status`` is the HTTP status to
    answer with; ``detail`` is a sentence for the operator that never
    holds a secret. ``challenge``, when set, is the ``WWW-Authenticate``
    value to send with the 401 (basic auth is configured).
    """

    def __init__(
        self, esp: str, reason: Reason, detail: str, *, challenge: str | None = None
    ) -> None:
        super().__init__(f"{esp} webhook refused ({reason}): {detail}")
        self.esp = esp
        self.reason: Reason = reason
        self.status = STATUS[reason]
        self.detail = detail
        self.challenge = challenge


class WebhookConfigError(ConfigError):
    """A webhook-authentication config cannot be used.

    ``field`` names the offending entry (``"basic_auth[1]"``); the message
    says what is wrong with it without repeating a secret.
    """

    def __init__(self, esp: str, field: str, problem: str) -> None:
        super().__init__(f"{esp} webhook auth config: {field!r} {problem}")
        self.esp = esp
        self.field = field
        self.problem = problem
