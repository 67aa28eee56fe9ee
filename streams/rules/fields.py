"""Message fields a condition can test, as getters compiled once.

Scalar fields hold one value (or ``None``); ``tags`` is a list and its
operators are true when any tag satisfies them. ``metadata.<key>`` and
``headers.<name>`` read one entry; header names ignore case. Fields marked
as guards are cheap, never changed by rules, and let the engine skip rules
that cannot match (see :mod:`streams.rules.plan`); so do the presence of a
tag, a metadata key or a header.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Literal

from mailyard.providers import DOMAIN_TO_PROVIDER
from streams.rules.context import Context
from streams.rules.errors import RuleValidationError

FieldKind = Literal["str", "int", "list"]
Getter = Callable[[Context], Any]
PROVIDERS = frozenset(DOMAIN_TO_PROVIDER.values()) | {"other"}


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """A compiled field: how to read it and what its values look like."""

    name: str
    kind: FieldKind
    get: Getter
    # Path on the Context for fields the engine can index rules by.
    guard_path: str | None = None
    # For metadata and header fields: matching needs this entry present.
    presence: tuple[str, frozenset[str]] | None = None


def _attr(name: str, kind: FieldKind, path: str, *, guard: bool = False) -> Field:
    return Field(name, kind, attrgetter(path), path if guard else None)


_FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        _attr("subaccount", "str", "message.subaccount", guard=True),
        _attr("stream", "str", "message.stream", guard=True),
        _attr("from_domain", "str", "message.from_domain", guard=True),
        _attr("recipient_domain", "str", "domain", guard=True),
        _attr("provider", "str", "provider", guard=True),
        _attr("message_id", "str", "message.message_id"),
        _attr("from_addr", "str", "message.from_addr"),
        _attr("recipient", "str", "recipient"),
        _attr("subject", "str", "message.subject"),
        _attr("size_bytes", "int", "message.size_bytes"),
        _attr("tags", "list", "tags"),
    )
}
_FIELDS["mailbox_provider"] = dataclasses.replace(
    _FIELDS["provider"], name="mailbox_provider"
)
FIELD_NAMES = sorted([*_FIELDS, "metadata.<key>", "headers.<name>"])


def lookup_field(name: str, rule: str, where: str) -> Field:
    """The field called ``name``, or a validation error listing known ones."""
    if name in _FIELDS:
        return _FIELDS[name]
    prefix, _, key = name.partition(".")
    if key and prefix == "metadata":
        presence = ("#metadata", frozenset([key]))
        return Field(name, "str", _metadata_getter(key), presence=presence)
    if key and prefix == "headers":
        presence = ("#headers", frozenset([key.lower()]))
        return Field(name, "str", _header_getter(key.lower()), presence=presence)
    raise RuleValidationError(
        rule,
        where,
        f"tests unknown field {name!r}; use one of: {', '.join(FIELD_NAMES)}.",
    )


def _metadata_getter(key: str) -> Getter:
    def get(ctx: Context) -> str | None:
        return ctx.metadata.get(key)

    return get


def _header_getter(name: str) -> Getter:
    def get(ctx: Context) -> str | None:
        return ctx.message.headers_lower.get(name)

    return get
