"""Refuse regular expressions that can take exponential time to match.

Rules are data that subaccounts publish, and every worker evaluates them
for every message: one pattern like ``(a+)+$`` could stall routing for
everyone. Python's ``re`` backtracks and has no time limit, so a rule
pattern may not repeat (``*``, ``+``, ``{m,}``) a group that is itself
nothing but a repeat (``(a+)+``, ``(?:x*)*``) or that holds an optional
alternative (``(a|aa)*``, which ``re`` reads as ``a(|a)``): the shapes that
let one text match in exponentially many ways, and a repeated group with
two repeats and nothing required between them (``(x+x+)+``, also
``(\\w+\\s*)+``, which is slow on long near-misses). Repeats separated by a
fixed part, such as ``(?:[a-z0-9-]+\\.)*example\\.com``, stay allowed. This
is a guard against the common shapes, not a proof of linear time.
"""

from __future__ import annotations

from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT}


def nested_repeat(pattern: str) -> bool:
    """Whether ``pattern`` repeats a group in one of the exponential shapes."""
    return _scan(list(sre_parse.parse(pattern).data))


def _scan(items: list[Any]) -> bool:
    for op, arg in items:
        if op in _REPEATS:
            _low, high, body = arg
            body = _unwrap(list(body))
            if high > 1 and (_is_repeat(body) or _has_optional_branch(body)
                             or _adjacent_repeats(body)):
                return True
            if _scan(body):
                return True
        elif op is sre.BRANCH:
            if any(_scan(list(alt)) for alt in arg[1]):
                return True
        elif op is sre.SUBPATTERN:
            if _scan(list(arg[3])):
                return True
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            if _scan(list(arg[1])):
                return True
    return False


def _unwrap(items: list[Any]) -> list[Any]:
    """A group's content, through groups that hold only another group."""
    while len(items) == 1 and items[0][0] is sre.SUBPATTERN:
        items = list(items[0][1][3])
    return items


def _is_repeat(items: list[Any]) -> bool:
    return len(items) == 1 and items[0][0] in _REPEATS and items[0][1][1] > 1


def _adjacent_repeats(items: list[Any]) -> bool:
    """Two unbounded repeats with nothing required between them (``x+x+``, ``a*b?a*``)."""
    open_repeats = 0
    for op, arg in items:
        if op in _REPEATS:
            low, high = arg[0], arg[1]
            if high > 1:
                open_repeats += 1
                if open_repeats >= 2:
                    return True
                continue
            if low == 0:
                continue  # optional (``b?``): not a separator
        open_repeats = 0
    return False


def _has_optional_branch(items: list[Any]) -> bool:
    return any(
        op is sre.BRANCH and any(len(alt) == 0 for alt in arg[1]) for op, arg in items
    )
