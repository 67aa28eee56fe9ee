"""The engines of an installation: its own, and one per subaccount with rules.

A subaccount's engine is built from its current own rules and the
installation's current rule set (:meth:`Engine.with_own`) the first time
one of its messages is decided, and kept until either of them changes;
so a new version of either is used from the next decision on, without a
restart. Own rules that no longer validate against the installation's
rule set (a destination they name was removed) hold that subaccount's
mail, with the problem as the reason, until one of the two is fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from streams.rules.decision import Decision
from streams.rules.engine import Engine
from streams.rules.errors import RuleValidationError
from streams.rules.message import Message
from streams.rules.ruleset import RuleSet
from streams.rules.subaccount import SubaccountRules

# A subaccount's current own rules as stored (plain data), or None.
OwnRules = Callable[[str], Mapping[str, Any] | None]
# Told (subaccount, problem) once per own rules that fail to build.
OnInvalid = Callable[[str, str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class _Built:
    ruleset: RuleSet
    data: Mapping[str, Any]
    engine: Engine | None
    problem: str | None


def _ignore(subaccount: str, problem: str) -> None:
    return None


class EngineBook:
    """Finds the engine for a message's subaccount, building it when needed."""

    def __init__(
        self,
        installation: Engine,
        own_rules: OwnRules,
        *,
        on_invalid: OnInvalid = _ignore,
    ) -> None:
        self.installation = installation
        self._own_rules = own_rules
        self._on_invalid = on_invalid
        self._built: dict[str, _Built] = {}

    def decide(
        self, message: Message, recipient: str, *, subaccount: str | None
    ) -> Decision:
        """Decide with ``subaccount``'s engine; None: the installation's alone."""
        if subaccount is None or (data := self._own_rules(subaccount)) is None:
            return self.installation.decide(message, recipient)

        built = self._engine_for(subaccount, data)
        if built.engine is not None:
            return built.engine.decide(message, recipient)
        return Decision(
            message.message_id,
            recipient,
            None,
            built.ruleset.version,
            "hold",
            None,
            reason=built.problem,
            subaccount=message.subaccount,
            subaccount_ruleset_version=data.get("version"),
        )

    def _engine_for(self, subaccount: str, data: Mapping[str, Any]) -> _Built:
        # Identity, not equality: the store keeps one object per version.
        ruleset = self.installation.ruleset
        built = self._built.get(subaccount)
        if built is not None and built.ruleset is ruleset and built.data is data:
            return built

        built = self._build(subaccount, ruleset, data)
        self._built[subaccount] = built
        if built.problem is not None:
            self._on_invalid(subaccount, built.problem)
        return built

    def _build(
        self, subaccount: str, ruleset: RuleSet, data: Mapping[str, Any]
    ) -> _Built:
        try:
            own = SubaccountRules.from_dict(dict(data), ruleset.destinations)
        except RuleValidationError as exc:
            problem = (
                f"subaccount {subaccount}'s rules (version {data.get('version')}) "
                f"do not fit the installation's rule set version {ruleset.version}: "
                f"{exc}"
            )
            return _Built(ruleset, data, None, problem)
        return _Built(ruleset, data, self.installation.with_own(own), None)
