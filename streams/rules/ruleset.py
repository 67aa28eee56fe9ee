"""Rule sets: an ordered list of rules, their destinations and a version.

A rule file (YAML, or JSON, which YAML reads too) has a header (``version``,
``author``, ``created_at``, ``reason``), a ``destinations`` list, a
``default`` destination and ``rules``. Rules are tried in order and the
first matching terminal rule decides; when none does, the message goes to
``default``. The file is validated and compiled in one pass.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from mailyard.model import iso_utc
from streams.rules.action_parse import ActionParser
from streams.rules.actions import Action
from streams.rules.conditions import Compiled, ConditionCompiler, always
from streams.rules.destinations import Destination, parse_destination
from streams.rules.errors import (
    RuleValidationError,
    expect_list,
    expect_mapping,
    expect_str,
    reject_unknown_keys,
)

_TOP_KEYS = {"version", "author", "created_at", "reason", "default"}
_TOP_KEYS |= {"destinations", "rules"}
_RULE_KEYS = {"name", "description", "condition", "action"}


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One rule as written (for ``to_dict``) plus its compiled form."""

    name: str
    condition: dict[str, Any] | None
    action: dict[str, Any]
    description: str | None = None
    compiled: Compiled = dataclasses.field(compare=False, repr=False, kw_only=True)
    act: Action = dataclasses.field(compare=False, repr=False, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            out["description"] = self.description
        if self.condition is not None:
            out["condition"] = copy.deepcopy(self.condition)
        out["action"] = copy.deepcopy(self.action)
        return out


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RuleSet:
    """A validated, compiled, versioned rule set."""

    version: int
    author: str
    created_at: str
    reason: str
    default: str
    destinations: dict[str, Destination]
    rules: tuple[Rule, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into an equal rule set."""
        return {
            "version": self.version,
            "author": self.author,
            "created_at": self.created_at,
            "reason": self.reason,
            "default": self.default,
            "destinations": [d.to_dict() for d in self.destinations.values()],
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, data: object) -> RuleSet:
        """Validate and compile plain data; raises :class:`RuleValidationError`."""
        data = expect_mapping(data, None, "rule set")
        reject_unknown_keys(data, None, "rule set", _TOP_KEYS)
        destinations = _destinations(data.get("destinations"))
        default = expect_str(data.get("default"), None, "default")
        if default not in destinations:
            raise RuleValidationError(
                None,
                "default",
                f"names unknown destination {default!r}; declared: "
                f"{', '.join(sorted(destinations))}.",
            )
        return cls(
            version=parse_version(data.get("version")),
            author=expect_str(data.get("author"), None, "author"),
            created_at=parse_created_at(data.get("created_at")),
            reason=expect_str(data.get("reason"), None, "reason"),
            default=default,
            destinations=destinations,
            rules=parse_rules(data.get("rules"), destinations),
        )


def load_rules(
    source: str | Path, *, destinations: str | Path | None = None
) -> RuleSet:
    """Read a rule set from a file path or from YAML/JSON text.

    ``destinations`` optionally names a separate file (or text) whose
    ``destinations`` list is added to the rule file's own.
    """
    data = expect_mapping(_read(source), None, "rule set")
    if destinations is not None:
        extra = _read(destinations)
        if isinstance(extra, dict):
            extra = extra.get("destinations")
        own = data.get("destinations") or []
        data = {**data, "destinations": [*expect_list(own, None, "destinations")]}
        data["destinations"] += expect_list(extra, None, "destinations")
    return RuleSet.from_dict(data)


def _read(source: str | Path) -> Any:
    looks_like_path = (
        isinstance(source, str)
        and "\n" not in source
        and (source.endswith((".yaml", ".yml", ".json")))
    )
    try:
        text = (
            Path(source).read_text(encoding="utf-8")
            if isinstance(source, Path) or looks_like_path
            else source
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleValidationError(None, "file", f"cannot be read: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleValidationError(
            None, "file", f"is not valid YAML or JSON: {exc}"
        ) from exc
    except RecursionError as exc:
        raise RuleValidationError(None, "file", "nests too deeply.") from exc


def parse_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleValidationError(
            None, "version", f"must be a whole number >= 1, got {value!r}."
        )
    return value


def parse_created_at(value: object) -> str:
    # YAML turns an unquoted ISO timestamp into a datetime; keep one text form.
    if isinstance(value, datetime):
        return iso_utc(value) or ""
    text = expect_str(value, None, "created_at")
    try:
        datetime.fromisoformat(text)
    except ValueError as exc:
        raise RuleValidationError(
            None, "created_at", f"must be an ISO 8601 timestamp, got {text!r}."
        ) from exc
    return text


def _destinations(value: object) -> dict[str, Destination]:
    found: dict[str, Destination] = {}
    for i, spec in enumerate(expect_list(value, None, "destinations")):
        dest = parse_destination(spec, f"destinations[{i}]")
        if dest.name in found:
            raise RuleValidationError(
                None, f"destinations[{i}].name", f"repeats {dest.name!r}."
            )
        found[dest.name] = dest
    return found


def parse_rules(
    value: object,
    destinations: Mapping[str, Destination],
    *,
    owner: str | None = None,
) -> tuple[Rule, ...]:
    """The ``rules`` list, validated and compiled against ``destinations``.

    ``owner`` names the subaccount whose own rules these are; their
    failover state is then kept apart from same-named installation rules.
    """
    rules: list[Rule] = []
    for i, spec in enumerate(expect_list(value, None, "rules")):
        rule = _rule(spec, i, destinations, owner)
        if any(r.name == rule.name for r in rules):
            raise RuleValidationError(rule.name, "name", "is used by an earlier rule.")
        rules.append(rule)
    return tuple(rules)


def _rule(
    spec: object, index: int, destinations: Mapping[str, Destination], owner: str | None
) -> Rule:
    spec = expect_mapping(spec, None, f"rules[{index}]")
    name = expect_str(spec.get("name"), None, f"rules[{index}].name")
    reject_unknown_keys(spec, name, "rule", _RULE_KEYS)
    description = spec.get("description")
    if description is not None:
        description = expect_str(description, name, "description")
    if "action" not in spec:
        raise RuleValidationError(name, "action", "is missing.")

    condition = spec.get("condition")
    compiled = Compiled(always)
    if condition is not None:
        compiled = ConditionCompiler(name, destinations).compile(condition)
    act = ActionParser(name, destinations, owner=owner).parse(spec["action"])
    return Rule(
        name,
        copy.deepcopy(condition),
        copy.deepcopy(spec["action"]),
        description,
        compiled=compiled,
        act=act,
    )
