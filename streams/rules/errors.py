"""Errors raised by the Rule Engine, and the small checks that raise them.

Every validation error names the rule (or ``None`` for the file's header
and its destinations), the field inside it as a dotted path, and what is
wrong with the value found, so a rule author can fix the file without
reading code.
"""

from __future__ import annotations

from typing import Any

from mailyard.errors import MailyardError


class RuleValidationError(MailyardError, ValueError):
    """A rule file cannot be turned into a rule set.

    ``rule`` is the rule's name (``None`` outside the rules list), ``field``
    the dotted path of the offending value, ``problem`` what is wrong.
    """

    def __init__(self, rule: str | None, field: str, problem: str) -> None:
        where = f"rule {rule!r}: " if rule is not None else ""
        super().__init__(f"{where}{field} {problem}")
        self.rule = rule
        self.field = field
        self.problem = problem


class HealthInputError(MailyardError, ValueError):
    """A health reading was recorded with an outcome the engine does not know."""


def expect_mapping(value: object, rule: str | None, field: str) -> dict[str, Any]:
    """``value`` as a dict with string keys, or a validation error."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise RuleValidationError(
            rule, field, f"must be a mapping, got {type(value).__name__}."
        )
    return value


def expect_list(value: object, rule: str | None, field: str) -> list[Any]:
    """``value`` as a non-empty list, or a validation error."""
    if not isinstance(value, list) or not value:
        raise RuleValidationError(
            rule, field, f"must be a non-empty list, got {value!r}."
        )
    return value


def expect_str(value: object, rule: str | None, field: str) -> str:
    """``value`` as a non-empty string, or a validation error."""
    if not isinstance(value, str) or not value:
        raise RuleValidationError(
            rule, field, f"must be a non-empty string, got {value!r}."
        )
    return value


def expect_number(value: object, rule: str | None, field: str) -> float:
    """``value`` as a float (bools refused), or a validation error."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleValidationError(rule, field, f"must be a number, got {value!r}.")
    return float(value)


def single_key(
    spec: dict[str, Any], rule: str | None, field: str, known: list[str]
) -> str:
    """The one key of ``spec``, which must be among ``known``."""
    if len(spec) != 1:
        raise RuleValidationError(
            rule,
            field,
            f"must have exactly one key, got {sorted(spec) or 'none'}; "
            f"use one of: {', '.join(sorted(known))}.",
        )
    (key,) = spec
    if key not in known:
        raise RuleValidationError(
            rule,
            field,
            f"has unknown key {key!r}; use one of: {', '.join(sorted(known))}.",
        )
    return key


def reject_unknown_keys(
    spec: dict[str, Any], rule: str | None, field: str, allowed: set[str]
) -> None:
    """Raise when ``spec`` has a key outside ``allowed`` (catches typos)."""
    extra = sorted(set(spec) - allowed)
    if extra:
        raise RuleValidationError(
            rule,
            field,
            f"has unknown key(s) {', '.join(map(repr, extra))}; "
            f"allowed: {', '.join(sorted(allowed))}.",
        )
