"""ESP relay sinks by provider name, and the one way to build one from config.

A destination config names the provider and, under ``credentials``, the
environment variables that hold each secret, never a secret itself::

    {"name": "ses-eu", "kind": "esp_http", "provider": "amazon_ses",
     "region": "eu-west-1",
     "credentials": {"access_key_id": "SES_EU_KEY_ID",
                     "secret_access_key": "SES_EU_SECRET"}}

Optional keys: ``base_url``, ``timeout_s``, ``max_concurrency`` and the
provider's own options (``domain`` for Mailgun, ``region`` and
``configuration_set`` for SES, ``message_stream`` for Postmark).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

from mailyard.errors import ConfigError
from sinks.amazon_ses import AmazonSesSink
from sinks.esp_http import EspHttpSink
from sinks.mailgun import MailgunSink
from sinks.postmark import PostmarkSink
from sinks.sendgrid import SendGridSink
from sinks.sparkpost import SparkPostSink

KIND = "esp_http"
SINKS: dict[str, type[EspHttpSink]] = {
    cls.provider: cls
    for cls in (SendGridSink, MailgunSink, SparkPostSink, AmazonSesSink, PostmarkSink)
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LIMITS = {"timeout_s": float, "max_concurrency": int}


def build_esp_sink(
    config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> EspHttpSink:
    """The sink a destination config describes, its secrets read from ``environ``.

    ``environ`` defaults to :data:`os.environ`. Raises
    :class:`~mailyard.errors.ConfigError` naming the destination and the
    key or variable to fix.
    """
    name = str(config.get("name") or "<unnamed>")
    if config.get("kind") != KIND:
        raise ConfigError(
            f"Destination {name}: kind is {config.get('kind')!r}; "
            f"this factory builds only {KIND!r} destinations."
        )
    cls = _sink_class(name, config.get("provider"))

    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {
        "credentials": _credentials(name, cls, config.get("credentials"), env)
    }
    kwargs.update({key: config[key] for key in cls.options if key in config})
    kwargs.update(_limits(name, config))
    if config.get("base_url"):
        kwargs["base_url"] = str(config["base_url"])

    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"Destination {name}: {exc}.") from exc


def _sink_class(name: str, provider: object) -> type[EspHttpSink]:
    cls = SINKS.get(str(provider))
    if cls is None:
        known = ", ".join(sorted(SINKS))
        raise ConfigError(
            f"Destination {name}: provider {provider!r} has no ESP sink; "
            f"known providers are: {known}."
        )
    return cls


def _credentials(
    name: str, cls: type[EspHttpSink], spec: object, env: Mapping[str, str]
) -> Any:
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"Destination {name}: credentials must map each secret to the "
            f"environment variable holding it, not {type(spec).__name__}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls.credentials_type)}
    unknown = sorted(set(spec) - set(fields))
    if unknown:
        raise ConfigError(
            f"Destination {name}: unknown credentials {unknown}; "
            f"{cls.provider} takes {sorted(fields)}."
        )

    values = {key: _secret(name, key, var, env) for key, var in spec.items()}
    missing = [key for key, f in fields.items() if _required(f) and key not in values]
    if missing:
        raise ConfigError(
            f"Destination {name}: credentials {missing} are missing; name the "
            "environment variable that holds each."
        )
    return cls.credentials_type(**values)


def _secret(name: str, key: str, var: object, env: Mapping[str, str]) -> str:
    # A value that cannot be a variable name is most likely a pasted secret.
    if not isinstance(var, str) or not _ENV_NAME.fullmatch(var):
        raise ConfigError(
            f"Destination {name}: credentials.{key} must be the name of an "
            "environment variable; the value given is not one (secrets do "
            "not belong in the config)."
        )
    value = env.get(var)
    if not value:
        raise ConfigError(
            f"Destination {name}: environment variable {var} (credentials.{key}) "
            "is not set or empty."
        )
    return value


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING


def _limits(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    limits = {}
    for key, kind in _LIMITS.items():
        if key not in config:
            continue
        try:
            limits[key] = kind(config[key])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"Destination {name}: {key} must be a number, not {config[key]!r}."
            ) from exc
    return limits
