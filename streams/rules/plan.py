"""Which rules can match a message, found without evaluating them all.

A rule whose condition requires, say, ``subaccount in {a, b}`` or the tag
``vip`` cannot match a message from subaccount ``c`` without that tag. The
plan reads each rule's guards (see :class:`~streams.rules.conditions.
Compiled`), and for each combination of guard-field values and present
tags, metadata keys and headers it remembers the ordered list of rules
worth testing. Tags and metadata keys that an ``annotate`` rule can add are
never used to skip a rule. Rule order is kept, so first match still wins.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

from streams.rules.actions import Annotate, Choice, Throttle
from streams.rules.conditions import Guard, Test
from streams.rules.context import Context
from streams.rules.failover import FailoverState
from streams.rules.ruleset import Rule

Choose = Callable[[Context, FailoverState], Choice]
Apply = Callable[[Context], None]
# (position in the rule list, rule name, condition, terminal choice or None,
# non-terminal effect or None)
Step = tuple[int, str, Test, Choose | None, Apply | None]
_PRESENCE = ("#tags", "#metadata", "#headers")

# Bound on remembered combinations; recipient_domain can have many values.
_CACHE_LIMIT = 20_000


def _step(index: int, rule: Rule) -> Step:
    act = rule.act
    if isinstance(act, Annotate | Throttle):
        return (index, rule.name, rule.compiled.test, None, act.apply)
    return (index, rule.name, rule.compiled.test, act.choose, None)


def _usable_guards(rules: Sequence[Rule]) -> list[tuple[Guard, ...]]:
    added_tags: set[str] = set()
    added_keys: set[str] = set()
    for rule in rules:
        if isinstance(rule.act, Annotate):
            added_tags.update(rule.act.tags)
            added_keys.update(rule.act.metadata)
    changeable = {"#tags": added_tags, "#metadata": added_keys}
    return [
        tuple(
            (path, values)
            for path, values in rule.compiled.guards
            if values.isdisjoint(changeable.get(path, ()))
        )
        for rule in rules
    ]


class Plan:
    """Candidate rules per combination of guard values and present items."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._steps = tuple(_step(i, r) for i, r in enumerate(rules))
        self._guards = _usable_guards(rules)
        every = [g for guards in self._guards for g in guards]
        paths = sorted({p for p, _ in every if p not in _PRESENCE})
        self._paths = tuple(paths)
        self._scalar = attrgetter(*paths) if paths else None
        tokens = {kind: frozenset[str]() for kind in _PRESENCE}
        for path, values in every:
            if path in tokens:
                tokens[path] |= values
        self._tags, self._keys, self._headers = (tokens[k] for k in _PRESENCE)
        self._cache: dict[Hashable, tuple[Step, ...]] = {}
        self._everything = not every

    def candidates(self, ctx: Context) -> tuple[Step, ...]:
        """The steps of the rules, in order, that could match ``ctx``."""
        if self._everything:
            return self._steps
        message = ctx.message
        key = (
            None if self._scalar is None else self._scalar(ctx),
            self._tags.intersection(message.tags),
            self._keys.intersection(message.metadata),
            self._headers.intersection(message.headers_lower),
        )
        found = self._cache.get(key)
        if found is None:
            found = self._build(key)
        return found

    def _build(self, key: Any) -> tuple[Step, ...]:
        scalar, tags, keys, headers = key
        values = scalar if len(self._paths) > 1 else (scalar,)
        present = dict(zip(self._paths, values))
        present.update({"#tags": tags, "#metadata": keys, "#headers": headers})
        found = tuple(
            step
            for step, guards in zip(self._steps, self._guards)
            if all(_admits(present[path], allowed) for path, allowed in guards)
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = found
        return found


def _admits(seen: Any, allowed: frozenset[Any]) -> bool:
    if isinstance(seen, frozenset):
        return not seen.isdisjoint(allowed)
    return seen in allowed
