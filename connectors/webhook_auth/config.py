"""What a webhook-authentication config may hold for each ESP.

A config is a plain dict, stored per subaccount. Every secret field is a
list so a key can be rotated: add the new one, switch the ESP, remove the
old one. ``{"none": true}`` turns checks off for local demos, and
``max_age_s`` (default 300) bounds how far a signed timestamp may be from
this host's clock, in either direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.webhook_auth import config_fields as fields
from connectors.webhook_auth.errors import WebhookConfigError

DEFAULT_MAX_AGE_S = 300.0


@dataclass(frozen=True, slots=True)
class Schema:
    """The fields one ESP accepts.

    At least one of ``credentials`` must be present; ``required`` fields
    must all be present; ``optional`` ones may be.
    """

    credentials: tuple[str, ...]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*self.credentials, *self.required, *self.optional, *COMMON_FIELDS)


SCHEMAS: dict[str, Schema] = {
    "sendgrid": Schema(credentials=("public_keys",)),
    "mailgun": Schema(credentials=("signing_keys",)),
    "sparkpost": Schema(credentials=("basic_auth", "header")),
    "amazon_ses": Schema(
        credentials=(), required=("topic_arns",), optional=("basic_auth",)
    ),
    "postmark": Schema(credentials=("basic_auth",)),
    "mailjet": Schema(credentials=("basic_auth",)),
    "brevo": Schema(credentials=("basic_auth", "bearer_tokens")),
    "mandrill": Schema(credentials=("webhook_keys",), optional=("url",)),
    "resend": Schema(credentials=("secrets",)),
    # SocketLabs validates an endpoint by looking for its validation key in
    # the reply to a post; the gateway puts it in every SocketLabs reply.
    "socketlabs": Schema(
        credentials=("basic_auth", "secret_keys"), optional=("validation_key",)
    ),
}

FIELD_CHECKS: dict[str, fields.Checker] = {
    "public_keys": fields.public_keys,
    "signing_keys": fields.secrets,
    "basic_auth": fields.basic_auth,
    "bearer_tokens": fields.secrets,
    "header": fields.custom_header,
    "topic_arns": fields.topic_arns,
    "webhook_keys": fields.secrets,
    "url": fields.public_url,
    "secrets": fields.svix_secrets,
    "secret_keys": fields.secrets,
    "validation_key": fields.secret,
    "none": fields.flag,
    "max_age_s": fields.max_age,
}

COMMON_FIELDS = ("none", "max_age_s")


def validate_config(esp: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A checked, normalized copy of ``config`` for ``esp``.

    Raises :class:`WebhookConfigError` (a ``ValueError``) naming the field
    and what is wrong with it.
    """
    schema = SCHEMAS.get(esp)
    if schema is None:
        known = ", ".join(sorted(SCHEMAS))
        raise WebhookConfigError(
            esp, "esp", f"is not an ESP with webhook auth; known: {known}."
        )
    if not isinstance(config, Mapping):
        raise WebhookConfigError(esp, "config", "must be an object of settings.")

    unknown = sorted(str(name) for name in config if name not in schema.allowed)
    if unknown:
        allowed = ", ".join(schema.allowed)
        raise WebhookConfigError(
            esp, unknown[0], f"is not a setting for {esp}; use: {allowed}."
        )

    normalized = {
        name: FIELD_CHECKS[name](esp, name, value) for name, value in config.items()
    }

    if normalized.get("none") is True:
        return _insecure(esp, normalized)
    normalized.pop("none", None)
    _check_presence(esp, schema, normalized)
    normalized.setdefault("max_age_s", DEFAULT_MAX_AGE_S)
    return normalized


def _insecure(esp: str, normalized: dict[str, Any]) -> dict[str, Any]:
    # Credentials next to "none" would be silently ignored; say so instead.
    others = sorted(name for name in normalized if name != "none")
    if others:
        problem = f"turns checks off, so it cannot be combined with {others[0]!r}."
        raise WebhookConfigError(esp, "none", problem)
    return {"none": True}


def _check_presence(esp: str, schema: Schema, normalized: dict[str, Any]) -> None:
    for name in schema.required:
        if name not in normalized:
            raise WebhookConfigError(esp, name, "is required.")
    if schema.credentials and not any(
        name in normalized for name in schema.credentials
    ):
        names = " or ".join(schema.credentials)
        problem = (
            f'is missing: give {names} (or {{"none": true}} to turn checks off '
            "on a local demo)."
        )
        raise WebhookConfigError(esp, schema.credentials[0], problem)
