"""Destinations as data: where a routed message can go.

A destination is an ESP's HTTP API (``esp_http`` with a ``provider``), an
SMTP relay (``smtp_relay`` with a ``host``) or direct-to-MX delivery
(``smtp_direct``). Credentials are referenced by environment variable name
only; a rule file never holds a secret, and validation refuses one.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal, get_args

from streams.rules.errors import (
    RuleValidationError,
    expect_mapping,
    expect_number,
    expect_str,
    reject_unknown_keys,
)

DestinationKind = Literal["esp_http", "smtp_relay", "smtp_direct"]
EspProvider = Literal["sendgrid", "mailgun", "sparkpost", "amazon_ses", "postmark"]
KINDS: tuple[str, ...] = get_args(DestinationKind)
ESP_PROVIDERS: tuple[str, ...] = get_args(EspProvider)

_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*")
_PER_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_PER_SECONDS |= {"h": 3600, "hour": 3600}
_KEYS = {"name", "kind", "provider", "credentials", "limits", "host", "port"}
# Handed to the sink as they are (sinks.registry and sinks.smtp_relay check them).
_SINK_OPTIONS = {
    "base_url", "region", "domain", "message_stream", "configuration_set",
    "timeout_s", "max_concurrency", "starttls", "max_connections", "helo_name",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """A named place to send mail; ``max_rate`` is messages per second."""

    name: str
    kind: DestinationKind
    provider: EspProvider | None = None
    credentials_env: str | None = None
    max_rate: float | None = None
    host: str | None = None
    port: int | None = None
    # Each secret the sink needs, by the environment variable holding it.
    credentials: dict[str, str] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def sink_config(self) -> dict[str, Any]:
        """The config ``sinks.registry.build_esp_sink`` and the SMTP relay take."""
        out = {**self.options, "name": self.name, "kind": self.kind}
        if self.provider is not None:
            out["provider"] = self.provider
        if self.host is not None:
            out["host"] = self.host
        if self.port is not None:
            out["port"] = self.port
        out["credentials"] = dict(self.credentials)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The destination in the rule file's own shape."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.provider is not None:
            out["provider"] = self.provider
        if self.credentials_env is not None:
            out["credentials"] = {"env": self.credentials_env}
        if self.max_rate is not None:
            out["limits"] = {"max_rate": self.max_rate}
        if self.host is not None:
            out["host"] = self.host
        if self.port is not None:
            out["port"] = self.port
        if self.credentials and self.credentials_env is None:
            out["credentials"] = dict(self.credentials)
        out.update(self.options)
        return out


def parse_rate(value: object, rule: str | None, field: str) -> float:
    """A rate as messages per second: a number, or text like ``"300/min"``."""
    if isinstance(value, str):
        match = _RATE.fullmatch(value)
        if match is None:
            raise RuleValidationError(
                rule,
                field,
                f"must be a number per second or 'N/s', 'N/min', 'N/h', got {value!r}.",
            )
        rate = float(match[1]) / _PER_SECONDS[match[2]]
    else:
        rate = expect_number(value, rule, field)
    if rate <= 0:
        raise RuleValidationError(rule, field, f"must be above 0, got {value!r}.")
    return rate


def parse_destination(spec: object, where: str) -> Destination:
    """One entry of the ``destinations`` list, validated."""
    spec = expect_mapping(spec, None, where)
    name = expect_str(spec.get("name"), None, f"{where}.name")
    where = f"destinations.{name}"
    reject_unknown_keys(spec, None, where, _KEYS | _SINK_OPTIONS)

    kind = spec.get("kind")
    if kind not in KINDS:
        raise RuleValidationError(
            None, f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}."
        )
    provider = _parse_provider(spec, kind, where)
    host = spec.get("host")
    if kind == "smtp_relay":
        host = expect_str(host, None, f"{where}.host")
    port = spec.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise RuleValidationError(
            None, f"{where}.port", f"must be a TCP port number, got {port!r}."
        )

    credentials = _parse_credentials(spec.get("credentials"), where)
    return Destination(
        name=name,
        kind=kind,
        provider=provider,
        credentials_env=credentials.get("env"),
        max_rate=_parse_limits(spec.get("limits"), where),
        host=host,
        port=port,
        credentials=credentials,
        options={k: v for k, v in spec.items() if k in _SINK_OPTIONS},
    )


def _parse_provider(spec: dict[str, Any], kind: str, where: str) -> Any:
    provider = spec.get("provider")
    if kind == "esp_http" and provider not in ESP_PROVIDERS:
        raise RuleValidationError(
            None,
            f"{where}.provider",
            f"must be one of {', '.join(ESP_PROVIDERS)} for kind esp_http, "
            f"got {provider!r}.",
        )
    if kind != "esp_http" and provider is not None:
        raise RuleValidationError(
            None, f"{where}.provider", f"applies to esp_http only, not {kind}."
        )
    return provider


def _parse_credentials(value: object, where: str) -> dict[str, str]:
    """``{env: NAME}``, or each secret by name: ``{api_key: SENDGRID_API_KEY}``."""
    if value is None:
        return {}
    creds = expect_mapping(value, None, f"{where}.credentials")
    for key, env in creds.items():
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            raise RuleValidationError(
                None,
                f"{where}.credentials.{key}",
                "must name an environment variable like SENDGRID_API_KEY (the "
                "value given is not one, and is not repeated here in case it is "
                "a secret); keep secrets out of the rule file.",
            )
    return dict(creds)


def _parse_limits(value: object, where: str) -> float | None:
    if value is None:
        return None
    limits = expect_mapping(value, None, f"{where}.limits")
    reject_unknown_keys(limits, None, f"{where}.limits", {"max_rate"})
    if "max_rate" not in limits:
        return None
    return parse_rate(limits["max_rate"], None, f"{where}.limits.max_rate")
