"""Which rules can match a message, found without evaluating them all.

A rule whose condition requires, say, ``subaccount in {a, b}`` cannot match
a message from subaccount ``c``. The plan indexes such rules by the fields
they require (only fields no rule can change), and for each combination of
those fields' values it remembers the ordered list of rules worth testing.
Rules keep their order, so first-match semantics are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

from streams.rules.actions import Annotate, Choice, Throttle
from streams.rules.conditions import Test
from streams.rules.context import Context
from streams.rules.failover import FailoverState
from streams.rules.ruleset import Rule

Choose = Callable[[Context, FailoverState], Choice]
Apply = Callable[[Context], None]
# (rule name, condition, terminal choice or None, non-terminal effect or None)
Step = tuple[str, Test, Choose | None, Apply | None]

# Bound on remembered combinations; recipient_domain can have many values.
_CACHE_LIMIT = 20_000


def _step(rule: Rule) -> Step:
    act = rule.act
    if isinstance(act, Annotate | Throttle):
        return (rule.name, rule.compiled.test, None, act.apply)
    return (rule.name, rule.compiled.test, act.choose, None)


class Plan:
    """Candidate rules per combination of guard-field values."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        self._steps = tuple(_step(r) for r in rules)
        paths = sorted({r.compiled.guard[0] for r in rules if r.compiled.guard})
        self._paths = tuple(paths)
        self._key = attrgetter(*paths) if paths else None
        self._cache: dict[Hashable, tuple[Step, ...]] = {}

    def candidates(self, ctx: Context) -> tuple[Step, ...]:
        """The steps of the rules, in order, that could match ``ctx``."""
        if self._key is None:
            return self._steps
        key = self._key(ctx)
        found = self._cache.get(key)
        if found is None:
            found = self._build(key)
        return found

    def _build(self, key: Any) -> tuple[Step, ...]:
        values = key if len(self._paths) > 1 else (key,)
        by_path = dict(zip(self._paths, values))
        found = tuple(
            step
            for rule, step in zip(self._rules, self._steps)
            if rule.compiled.guard is None
            or by_path[rule.compiled.guard[0]] in rule.compiled.guard[1]
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found
