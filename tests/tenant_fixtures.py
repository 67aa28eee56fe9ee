"""Keys and webhook settings for tests that call the gateway or the worker.

Every endpoint but the probes and the webhooks takes an API key, and every
webhook entry point checks the ESP's signature. Tests post unsigned sample
bodies, so they configure their entry points with ``{"none": true}`` (the
setting a local demo uses) and call the API with a fresh admin key; they
never turn authentication off.
"""

from __future__ import annotations

from typing import Any

from connectors.registry import esp_names
from mailyard.tenancy import (
    Subaccount,
    TenantDirectory,
    installation_record,
    new_key,
    subaccount_record,
)
from mailyard.tenant_ops import TenantRecord


def unsigned_webhooks() -> dict[str, dict[str, Any]]:
    """Webhook settings that accept every ESP's bodies without a signature."""
    return {esp: {"none": True} for esp in esp_names()}


def admin_key() -> str:
    """The text of a new admin key, as ``MAILYARD_ADMIN_KEY`` takes it."""
    _record, text = new_key(None, ["admin"])
    return text


def bearer(key_text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key_text}"}


def installation_unsigned() -> TenantRecord:
    """The record that lets ``/webhooks/{esp}`` take unsigned bodies."""
    return installation_record({"webhook_auth": unsigned_webhooks()})


def subaccount_unsigned(name: str) -> TenantRecord:
    """A subaccount whose ``/webhooks/{esp}/{name}`` take unsigned bodies."""
    return subaccount_record(Subaccount(name, webhook_auth=unsigned_webhooks()))


def open_directory(
    admin: str | None = None, *, subaccounts: tuple[str, ...] = ()
) -> TenantDirectory:
    """An in-process directory: ``admin`` as its bootstrap key, unsigned webhooks."""
    directory = TenantDirectory(admin)
    for key, value in [installation_unsigned(), *map(subaccount_unsigned, subaccounts)]:
        directory.apply(key.decode(), value)
    return directory
