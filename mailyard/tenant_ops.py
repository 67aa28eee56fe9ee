"""Changes to subaccounts and keys, shared by the REST API and the CLI.

Each operation checks a change against a :class:`TenantDirectory` and
returns the records that make it (for ``mailyard.tenants``) with the
result; the caller produces them and applies them to its own directory,
so it reads its own writes at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from mailyard.errors import BrokerUnavailable, MailyardError
from mailyard.tenancy import (
    ApiKey,
    Status,
    Subaccount,
    TenantDirectory,
    installation_record,
    key_record,
    new_key,
    subaccount_record,
    validate_subaccount_name,
)
from mailyard.topics import TENANTS

TenantRecord = tuple[bytes, bytes | None]
UNSET: Any = object()  # "leave as it is" for optional updates


class TenantNotFound(MailyardError, LookupError):
    status = 404


class TenantConflict(MailyardError, ValueError):
    status = 409


def _subaccount(directory: TenantDirectory, name: str) -> Subaccount:
    found = directory.subaccounts.get(name)
    if found is None:
        raise TenantNotFound(f"There is no subaccount {name!r}.")
    return found


def _key(directory: TenantDirectory, key_id: str) -> ApiKey:
    found = directory.keys.get(key_id)
    if found is None:
        raise TenantNotFound(f"There is no API key {key_id!r}.")
    return found


def create_subaccount(
    directory: TenantDirectory,
    name: str,
    *,
    pinned_destination: str | None = None,
    webhook_auth: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[TenantRecord], Subaccount]:
    validate_subaccount_name(name)
    if name in directory.subaccounts:
        raise TenantConflict(f"Subaccount {name!r} exists already.")
    if name in directory.deleted:
        raise TenantConflict(
            f"Subaccount {name!r} was deleted; its data keeps the name, so it is "
            "not given out again. Choose another name."
        )

    now = time.time()
    sub = Subaccount(
        name,
        "active",
        pinned_destination,
        dict(webhook_auth or {}),
        created_at=now,
        updated_at=now,
    )
    return [subaccount_record(sub)], sub


def update_subaccount(
    directory: TenantDirectory,
    name: str,
    *,
    status: Status | None = None,
    pinned_destination: str | None = UNSET,
    webhook_auth: dict[str, dict[str, Any] | None] | None = None,
) -> tuple[list[TenantRecord], Subaccount]:
    """Change what is given; ``webhook_auth`` merges per ESP, None removes one."""
    sub = _subaccount(directory, name)
    if status is not None and status not in ("active", "suspended"):
        raise ValueError(f"status must be 'active' or 'suspended', got {status!r}.")

    auth = dict(sub.webhook_auth)
    for esp, config in (webhook_auth or {}).items():
        if config is None:
            auth.pop(esp, None)
        else:
            auth[esp] = config
    changed = dataclasses.replace(
        sub,
        status=status or sub.status,
        pinned_destination=(
            sub.pinned_destination
            if pinned_destination is UNSET
            else pinned_destination
        ),
        webhook_auth=auth,
        updated_at=time.time(),
    )
    return [subaccount_record(changed)], changed


def delete_subaccount(directory: TenantDirectory, name: str) -> list[TenantRecord]:
    """The subaccount and every key of it go; its suppressions and events stay."""
    _subaccount(directory, name)
    records: list[TenantRecord] = [
        (f"subaccount/{name}".encode(), None),
        (f"deleted/{name}".encode(), str(time.time()).encode()),
    ]
    records += [(f"key/{k.key_id}".encode(), None) for k in directory.keys_of(name)]
    return records


def create_key(
    directory: TenantDirectory,
    subaccount: str | None,
    scopes: Iterable[str],
    *,
    name: str = "",
    rate_per_s: float | None = None,
    expires_at: float | None = None,
) -> tuple[list[TenantRecord], ApiKey, str]:
    if subaccount is not None:
        _subaccount(directory, subaccount)
    options: dict[str, Any] = {"name": name, "expires_at": expires_at}
    if rate_per_s is not None:
        options["rate_per_s"] = rate_per_s
    key, text = new_key(subaccount, list(scopes), **options)
    return [key_record(key)], key, text


def rotate_key(
    directory: TenantDirectory, key_id: str, *, overlap_s: float = 3600.0
) -> tuple[list[TenantRecord], ApiKey, str]:
    """A new key like ``key_id``; the old one keeps working for ``overlap_s``."""
    old = _key(directory, key_id)
    if overlap_s < 0:
        raise ValueError(f"overlap_s must be 0 or more, got {overlap_s}.")
    if not old.usable(time.time()):
        raise TenantConflict(f"API key {key_id} has expired or was revoked already.")

    records, new, text = create_key(
        directory,
        old.subaccount,
        old.scopes,
        name=old.name or f"rotated {key_id}",
        rate_per_s=old.rate_per_s,
    )
    expires = time.time() + overlap_s
    if old.expires_at is not None:
        expires = min(expires, old.expires_at)
    retired = dataclasses.replace(old, expires_at=expires)
    return [key_record(retired), *records], new, text


def revoke_key(
    directory: TenantDirectory, key_id: str
) -> tuple[list[TenantRecord], ApiKey]:
    old = _key(directory, key_id)
    if old.revoked_at is not None:
        raise TenantConflict(f"API key {key_id} was revoked already.")
    revoked = dataclasses.replace(old, revoked_at=time.time())
    return [key_record(revoked)], revoked


def set_installation_webhook_auth(
    directory: TenantDirectory, esp: str, config: dict[str, Any] | None
) -> list[TenantRecord]:
    """Credentials for ``/webhooks/{esp}``; ``config`` must be validated already."""
    auth = dict(directory.installation.get("webhook_auth", {}))
    if config is None:
        auth.pop(esp, None)
    else:
        auth[esp] = config
    return [installation_record({**directory.installation, "webhook_auth": auth})]


# --- synchronous access for the CLI ------------------------------------------


def load_directory(bootstrap: str, *, timeout_s: float = 10.0) -> TenantDirectory:
    """The tenants topic read whole, for one-off commands."""
    directory = TenantDirectory()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "mailyard-cli",
            "enable.auto.commit": False,
            # Failures are raised; librdkafka need not print them too.
            "log_level": 0,
        }
    )
    deadline = time.monotonic() + timeout_s
    try:
        high = _end_offset(consumer, TopicPartition(TENANTS.name, 0), deadline)
        consumer.assign([TopicPartition(TENANTS.name, 0, 0)])
        position = 0
        while position < high and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            directory.apply(msg.key().decode(), msg.value())
            position = msg.offset() + 1
        if position < high:
            raise BrokerUnavailable(f"Could not read {TENANTS.name} in {timeout_s}s.")
    except KafkaException as exc:
        raise BrokerUnavailable(f"Could not read {TENANTS.name}: {exc}.") from exc
    finally:
        consumer.close()
    return directory


# A broker that has just started may not lead the partition for a moment yet.
_NOT_YET = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def _end_offset(consumer: Consumer, tp: TopicPartition, deadline: float) -> int:
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(
                tp, timeout=max(0.1, deadline - time.monotonic())
            )
            return int(high)
        except KafkaException as exc:
            if exc.args[0].code() not in _NOT_YET or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def publish_sync(bootstrap: str, records: list[TenantRecord]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "log_level": 0,
        }
    )
    for key, value in records:
        producer.produce(TENANTS.name, value, key)
    if producer.flush(10.0) > 0:
        raise BrokerUnavailable(f"The broker did not confirm the {TENANTS.name} write.")
