"""The ``health`` condition: true when a destination's live rates are bad.

``{destination: primary, deferral_rate: {gt: 0.2}, min_volume: 500}`` is
true when the window holds at least 500 verdicts and more than 20% were
deferrals. Several metrics must all hold. Below ``min_volume`` the
condition is false: too little evidence never counts as unhealthy.
``by_provider: true`` reads the recipient's mailbox provider only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection
from typing import Any

from streams.rules.context import Context
from streams.rules.errors import (
    RuleValidationError,
    expect_mapping,
    expect_str,
    reject_unknown_keys,
    single_key,
)
from streams.rules.health import METRICS

_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt}
_COMPARE["lte"] = operator.le
_KEYS = {"destination", "min_volume", "by_provider", *METRICS}


def check_destination(
    name: object, rule: str, where: str, known: Collection[str]
) -> str:
    """``name`` if it is a declared destination, else a validation error."""
    name = expect_str(name, rule, where)
    if name not in known:
        raise RuleValidationError(
            rule,
            where,
            f"names unknown destination {name!r}; declared: "
            f"{', '.join(sorted(known)) or 'none'}.",
        )
    return name


def check_min_volume(value: object, rule: str, where: str) -> int:
    """A non-negative whole number of events (default 0 when absent)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RuleValidationError(
            rule, where, f"must be a whole number of events >= 0, got {value!r}."
        )
    return value


def compile_health(
    spec: object, rule: str, where: str, destinations: Collection[str]
) -> Callable[[Context], bool]:
    """A test reading ``ctx.health`` for one destination."""
    spec = expect_mapping(spec, rule, where)
    reject_unknown_keys(spec, rule, where, _KEYS)
    dest = check_destination(
        spec.get("destination"), rule, f"{where}.destination", destinations
    )
    floor = check_min_volume(spec.get("min_volume"), rule, f"{where}.min_volume")
    by_provider = spec.get("by_provider", False) is True
    checks = [_metric(spec[m], m, rule, f"{where}.{m}") for m in METRICS if m in spec]
    if not checks:
        raise RuleValidationError(
            rule, where, f"needs at least one of {', '.join(METRICS)}."
        )

    def test(c: Context) -> bool:
        snapshot = c.health.rates(dest, c.provider if by_provider else None)
        if snapshot.volume < floor:
            return False
        return all(cmp(getattr(snapshot, m), limit) for m, cmp, limit in checks)

    return test


def _metric(
    value: object, metric: str, rule: str, where: str
) -> tuple[str, Any, float]:
    spec = expect_mapping(value, rule, where)
    op = single_key(spec, rule, where, list(_COMPARE))
    limit = spec[op]
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not (0 <= limit <= 1)
    ):
        raise RuleValidationError(
            rule, f"{where}.{op}", f"must be a rate between 0 and 1, got {limit!r}."
        )
    return metric, _COMPARE[op], float(limit)
