"""The engine's answer for one (message, recipient).

The record shape matches ``schemas/routing_decision.avsc``. ``rule`` is the
terminal rule that decided, or ``None`` when the default destination was
used; ``rejected`` lists destinations a failover considered and passed
over, each with the reading that ruled it out. ``ruleset_version`` is the
installation's rule set version, whose destinations are used; when one of
the subaccount's own rules decided, ``subaccount_ruleset_version`` is the
version of those rules, else ``None``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streams.rules.actions import ActionKind


@dataclasses.dataclass(slots=True)
class Decision:
    """Where one recipient's copy of a message goes, and why."""

    message_id: str
    recipient: str
    rule: str | None
    ruleset_version: int
    action: ActionKind
    destination: str | None
    throttle_key: str | None = None
    throttle_rate: float | None = None
    tags: list[str] = dataclasses.field(default_factory=list)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    rejected: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    reason: str | None = None
    subaccount: str | None = None
    subaccount_ruleset_version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, also the record ``routing_decision.avsc`` describes."""
        return {
            "message_id": self.message_id,
            "recipient": self.recipient,
            "rule": self.rule,
            "ruleset_version": self.ruleset_version,
            "action": self.action,
            "destination": self.destination,
            "throttle_key": self.throttle_key,
            "throttle_rate": self.throttle_rate,
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
            "rejected": [
                {"destination": dest, "reason": why} for dest, why in self.rejected
            ],
            "reason": self.reason,
            "subaccount": self.subaccount,
            "subaccount_ruleset_version": self.subaccount_ruleset_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        """The inverse of :meth:`to_dict` (accepts a decoded Avro record)."""
        fields = dict(data)
        fields["rejected"] = [
            (item["destination"], item["reason"]) for item in data.get("rejected", [])
        ]
        return cls(**fields)
