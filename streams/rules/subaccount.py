"""A subaccount's own rules: tried before the installation's, for its mail only.

A subaccount rule set has a header (``subaccount``, ``version``, ``author``,
``created_at``, ``reason``) and ``rules`` in the installation's rule syntax.
It has no destinations and no default: its rules name the installation's
destinations, so it is validated against the installation's current rule
set, here and again whenever either changes. An empty ``rules`` list is a
version too, one that leaves the subaccount's mail to the installation.

Rules may not ``throttle``: rates protect destinations that every
subaccount shares, so they stay the installation's to set (its throttle
rules and destination limits apply to every message, see
:class:`~streams.rules.engine.Engine`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from streams.rules.actions import Throttle
from streams.rules.destinations import Destination
from streams.rules.errors import (
    RuleValidationError,
    expect_mapping,
    expect_str,
    reject_unknown_keys,
)
from streams.rules.ruleset import (
    Rule,
    parse_created_at,
    parse_rules,
    parse_version,
)

_KEYS = {"subaccount", "version", "author", "created_at", "reason", "rules"}
_INSTALLATION_ONLY = ("destinations", "default")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SubaccountRules:
    """One validated, compiled version of a subaccount's own rules."""

    subaccount: str
    version: int
    author: str
    created_at: str
    reason: str
    rules: tuple[Rule, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into equal rules."""
        return {
            "subaccount": self.subaccount,
            "version": self.version,
            "author": self.author,
            "created_at": self.created_at,
            "reason": self.reason,
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(
        cls, data: object, destinations: Mapping[str, Destination]
    ) -> SubaccountRules:
        """Validate against the installation's ``destinations`` and compile.

        Raises :class:`RuleValidationError` naming the rule, field and problem.
        """
        data = expect_mapping(data, None, "subaccount rule set")
        for key in _INSTALLATION_ONLY:
            if key in data:
                raise RuleValidationError(
                    None,
                    key,
                    "belongs to the installation's rule set; a subaccount's rules "
                    f"name its destinations ({', '.join(sorted(destinations))}).",
                )
        reject_unknown_keys(data, None, "subaccount rule set", _KEYS)

        subaccount = expect_str(data.get("subaccount"), None, "subaccount")
        rules = data.get("rules")
        own = () if rules == [] else parse_rules(rules, destinations, owner=subaccount)
        _refuse_throttles(own)
        return cls(
            subaccount=subaccount,
            version=parse_version(data.get("version")),
            author=expect_str(data.get("author"), None, "author"),
            created_at=parse_created_at(data.get("created_at")),
            reason=expect_str(data.get("reason"), None, "reason"),
            rules=own,
        )


def _refuse_throttles(rules: tuple[Rule, ...]) -> None:
    for rule in rules:
        if isinstance(rule.act, Throttle):
            raise RuleValidationError(
                rule.name,
                "action.throttle",
                "is the installation's to set: its throttle rules and destination "
                "limits apply to every subaccount's mail; remove this rule.",
            )
