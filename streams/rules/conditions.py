"""Conditions compiled into closures at load time.

A condition is a one-key mapping: ``all``/``any`` (a list), ``not`` (a
condition), ``time`` (UTC hour range and days), ``health`` (a destination's
live rates) or a field name mapped to one operator: ``equals``, ``in``,
``regex`` (``re.search``), ``exists``, ``gt``/``gte``/``lt``/``lte``.
Operator names are resolved here, once; evaluation is plain calls.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Collection
from typing import Any

from streams.rules.context import Context
from streams.rules.errors import (
    RuleValidationError,
    expect_list,
    expect_mapping,
    single_key,
)
from streams.rules.fields import PROVIDERS, Field, lookup_field
from streams.rules.health_condition import compile_health
from streams.rules.regex_guard import nested_repeat
from streams.rules.time_condition import compile_time

Test = Callable[[Context], bool]
Guard = tuple[str, frozenset[Any]]
_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt}
_COMPARE["lte"] = operator.le
OPERATORS = ["equals", "in", "regex", "exists", *_COMPARE]


@dataclasses.dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled condition and the guards any match must satisfy.

    A guard ``(path, values)`` reads "only matches if the Context attribute
    at ``path`` is in ``values``"; paths starting with ``#`` mean "only if
    one of ``values`` is among the tags / metadata keys / header names".
    """

    test: Test
    guards: tuple[Guard, ...] = ()


def always(ctx: Context) -> bool:
    """The condition of a rule that has none."""
    return True


class ConditionCompiler:
    """Compiles the conditions of one rule, naming it in every error."""

    def __init__(self, rule: str, destinations: Collection[str]) -> None:
        self.rule = rule
        self.destinations = destinations

    def compile(self, spec: object, where: str = "condition") -> Compiled:
        """Validate ``spec`` and return its closure and guard."""
        spec = expect_mapping(spec, self.rule, where)
        if len(spec) != 1:
            single_key(spec, self.rule, where, ["all", "any", "not", "<field>"])
        ((key, value),) = spec.items()
        if key in ("all", "any"):
            return self._combine(key, value, f"{where}.{key}")
        if key == "not":
            inner = self.compile(value, f"{where}.not").test
            return Compiled(lambda c: not inner(c))
        if key == "time":
            return Compiled(compile_time(value, self.rule, f"{where}.time"))
        if key == "health":
            test = compile_health(
                value, self.rule, f"{where}.health", self.destinations
            )
            return Compiled(test)
        field = lookup_field(key, self.rule, where)
        return self._field(field, value, f"{where}.{key}")

    def _combine(self, kind: str, value: object, where: str) -> Compiled:
        items = expect_list(value, self.rule, where)
        parts = [self.compile(item, f"{where}[{i}]") for i, item in enumerate(items)]
        tests = tuple(p.test for p in parts)
        if kind == "all":
            guards = tuple(g for p in parts for g in p.guards)
            return Compiled(_all_of(tests), guards)
        return Compiled(_any_of(tests), _union_guard([p.guards for p in parts]))

    def _field(self, field: Field, value: object, where: str) -> Compiled:
        spec = expect_mapping(value, self.rule, where)
        op = single_key(spec, self.rule, where, OPERATORS)
        operand = spec[op]
        where = f"{where}.{op}"
        if op == "exists":
            if not isinstance(operand, bool):
                raise RuleValidationError(
                    self.rule, where, f"must be true or false, got {operand!r}."
                )
            present = () if field.presence is None or not operand else (field.presence,)
            return Compiled(_exists(field, operand), present)
        present = () if field.presence is None else (field.presence,)
        if op == "regex":
            return Compiled(_regex(field, self._pattern(operand, where)), present)
        if op in _COMPARE:
            test = _compare(field, _COMPARE[op], self._number(operand, where))
            return Compiled(test, present)
        values = [operand] if op == "equals" else expect_list(operand, self.rule, where)
        allowed = frozenset(self._scalar(field, v, where) for v in values)
        return self._membership(field, allowed)

    def _membership(self, field: Field, allowed: frozenset[Any]) -> Compiled:
        get = field.get
        if field.kind == "list":
            tags_guard = (("#tags", allowed),)
            return Compiled(lambda c: not allowed.isdisjoint(get(c)), tags_guard)
        guard: tuple[Guard, ...] = ()
        if field.guard_path is not None:
            guard = ((field.guard_path, allowed),)
        elif field.presence is not None:
            guard = (field.presence,)
        if len(allowed) == 1:
            (only,) = allowed
            return Compiled(lambda c: get(c) == only, guard)
        return Compiled(lambda c: get(c) in allowed, guard)

    def _scalar(self, field: Field, value: object, where: str) -> Any:
        if field.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise RuleValidationError(
                    self.rule, where, f"must be a whole number, got {value!r}."
                )
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise RuleValidationError(
                self.rule, where, f"must be text or a number, got {value!r}."
            )
        text = str(value)
        if field.name in ("provider", "mailbox_provider") and text not in PROVIDERS:
            raise RuleValidationError(
                self.rule,
                where,
                f"names unknown mailbox provider {text!r}; use one of: "
                f"{', '.join(sorted(PROVIDERS))}.",
            )
        return text

    def _pattern(self, value: object, where: str) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise RuleValidationError(
                self.rule, where, f"must be a regular expression, got {value!r}."
            )
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise RuleValidationError(
                self.rule, where, f"is not a valid regular expression {value!r}: {exc}."
            ) from exc
        if nested_repeat(value):
            raise RuleValidationError(
                self.rule, where,
                f"{value!r} repeats a group that itself repeats or has alternatives, "
                "which can take exponential time to match; write it without the "
                "nesting (e.g. 'a+' instead of '(a+)+').",
            )
        return compiled

    def _number(self, value: object, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleValidationError(
                self.rule, where, f"must be a number, got {value!r}."
            )
        return float(value)


def _all_of(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda c: first(c) and second(c)
    return lambda c: all(t(c) for t in tests)


def _any_of(tests: tuple[Test, ...]) -> Test:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda c: first(c) or second(c)
    return lambda c: any(t(c) for t in tests)


def _union_guard(branches: list[tuple[Guard, ...]]) -> tuple[Guard, ...]:
    # Every branch must constrain the same field, or the rule can match anyway.
    if any(len(guards) != 1 for guards in branches):
        return ()
    paths = {guards[0][0] for guards in branches}
    if len(paths) != 1:
        return ()
    values = frozenset().union(*(guards[0][1] for guards in branches))
    return ((paths.pop(), values),)


def _exists(field: Field, wanted: bool) -> Test:
    get = field.get
    if field.kind == "list":
        return lambda c: bool(get(c)) is wanted
    return lambda c: (get(c) is not None) is wanted


def _regex(field: Field, pattern: re.Pattern[str]) -> Test:
    get, search = field.get, pattern.search
    if field.kind == "list":
        return lambda c: any(search(tag) is not None for tag in get(c))

    def test(c: Context) -> bool:
        value = get(c)
        return value is not None and search(str(value)) is not None

    return test


def _compare(field: Field, cmp: Callable[[Any, Any], bool], limit: float) -> Test:
    get = field.get
    if field.kind == "int":
        return lambda c: cmp(get(c), limit)
    if field.kind == "list":
        return lambda c: any(_numeric(v, cmp, limit) for v in get(c))
    return lambda c: _numeric(get(c), cmp, limit)


def _numeric(value: Any, cmp: Callable[[Any, Any], bool], limit: float) -> bool:
    # Metadata and header values are text; one that is not a number never matches.
    try:
        return cmp(float(value), limit)
    except (TypeError, ValueError):
        return False
