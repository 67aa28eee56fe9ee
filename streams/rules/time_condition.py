"""The ``time`` condition: a UTC hour range, optionally on some days.

``hours: [22, 6]`` is 22:00 to 05:59 (the range wraps past midnight; the
end hour is excluded); ``days: [sat, sun]`` limits it to those UTC days.
Either may be left out, not both. The hour comes from the engine's clock.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.rules.context import Context
from streams.rules.errors import (
    RuleValidationError,
    expect_list,
    expect_mapping,
    reject_unknown_keys,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def compile_time(spec: object, rule: str, where: str) -> Callable[[Context], bool]:
    """A test for the current UTC hour and weekday."""
    spec = expect_mapping(spec, rule, where)
    reject_unknown_keys(spec, rule, where, {"hours", "days"})
    if not spec:
        raise RuleValidationError(rule, where, "needs hours, days or both.")
    hours = _hours(spec.get("hours"), rule, f"{where}.hours")
    days = _days(spec.get("days"), rule, f"{where}.days")

    def in_hours(c: Context) -> bool:
        if hours is None:
            return True
        start, end = hours
        hour = c.hour()
        return start <= hour < end if start < end else hour >= start or hour < end

    if days is None:
        return in_hours
    return lambda c: c.weekday() in days and in_hours(c)


def _hours(value: object, rule: str, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = expect_list(value, rule, where)
    valid = len(pair) == 2 and all(
        isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 24 for h in pair
    )
    if not valid or pair[0] == pair[1]:
        raise RuleValidationError(
            rule,
            where,
            f"must be [start, end] with two different hours 0-24, got {value!r}.",
        )
    return pair[0] % 24, pair[1] % 24 or 24


def _days(value: object, rule: str, where: str) -> frozenset[int] | None:
    if value is None:
        return None
    names = expect_list(value, rule, where)
    unknown = [d for d in names if d not in DAYS]
    if unknown:
        raise RuleValidationError(
            rule, where, f"has unknown day(s) {unknown}; use {', '.join(DAYS)}."
        )
    return frozenset(DAYS.index(d) for d in names)
