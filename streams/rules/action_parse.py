"""Validation of a rule's ``action`` mapping into an action object.

Each error names the rule and the path inside ``action``; destination names
are checked against the rule set's declared destinations.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, get_args

from streams.rules.actions import (
    Action,
    Annotate,
    Failover,
    Hold,
    Route,
    Split,
    Suppress,
    Throttle,
    ThrottleScope,
)
from streams.rules.destinations import parse_rate
from streams.rules.errors import (
    RuleValidationError,
    expect_list,
    expect_mapping,
    expect_number,
    expect_str,
    reject_unknown_keys,
    single_key,
)
from streams.rules.failover import Thresholds
from streams.rules.health import METRICS
from streams.rules.health_condition import check_destination, check_min_volume

ACTIONS = ["route", "split", "failover", "suppress", "hold", "annotate", "throttle"]
SCOPES: tuple[str, ...] = get_args(ThrottleScope)
_FAILOVER_KEYS = {"destinations", "trip", "recover", "min_volume", "by_provider"}
_FAILOVER_KEYS.add("when_all_tripped")


class ActionParser:
    """Parses the action of one rule."""

    def __init__(
        self, rule: str, destinations: Collection[str], *, owner: str | None = None
    ) -> None:
        self.rule = rule
        self.destinations = destinations
        # A subaccount's failover trips apart from an installation rule's.
        self.state_key = rule if owner is None else f"{owner}/{rule}"

    def parse(self, spec: object, where: str = "action") -> Action:
        spec = expect_mapping(spec, self.rule, where)
        kind = single_key(spec, self.rule, where, ACTIONS)
        value, where = spec[kind], f"{where}.{kind}"
        if kind == "route":
            return Route(self._dest(value, where))
        if kind == "split":
            return Split(self._shares(value, where))
        if kind == "failover":
            return self._failover(value, where)
        if kind in ("suppress", "hold"):
            reason = self._reason(value, where)
            return Suppress(reason) if kind == "suppress" else Hold(reason)
        if kind == "annotate":
            return self._annotate(value, where)
        return self._throttle(value, where)

    def _dest(self, value: object, where: str) -> str:
        return check_destination(value, self.rule, where, self.destinations)

    def _shares(self, value: object, where: str) -> list[tuple[str, float]]:
        shares = []
        for i, item in enumerate(expect_list(value, self.rule, where)):
            entry = expect_mapping(item, self.rule, f"{where}[{i}]")
            reject_unknown_keys(
                entry, self.rule, f"{where}[{i}]", {"destination", "weight"}
            )
            name = self._dest(entry.get("destination"), f"{where}[{i}].destination")
            weight = expect_number(
                entry.get("weight"), self.rule, f"{where}[{i}].weight"
            )
            if weight <= 0:
                raise RuleValidationError(
                    self.rule,
                    f"{where}[{i}].weight",
                    f"must be above 0, got {weight:g}.",
                )
            shares.append((name, weight))
        total = sum(w for _, w in shares)
        if not math.isclose(total, 100.0, abs_tol=1e-9):
            raise RuleValidationError(
                self.rule, where, f"weights must sum to 100, got {total:g}."
            )
        self._distinct([n for n, _ in shares], where)
        return shares

    def _failover(self, value: object, where: str) -> Failover:
        spec = expect_mapping(value, self.rule, where)
        reject_unknown_keys(spec, self.rule, where, _FAILOVER_KEYS)
        names = expect_list(
            spec.get("destinations"), self.rule, f"{where}.destinations"
        )
        names = [
            self._dest(n, f"{where}.destinations[{i}]") for i, n in enumerate(names)
        ]
        if len(names) < 2:
            raise RuleValidationError(
                self.rule, f"{where}.destinations", "needs at least two destinations."
            )
        self._distinct(names, f"{where}.destinations")

        trip = self._rates(spec.get("trip"), f"{where}.trip", None)
        defaults = {m: v / 2 for m, v in trip.items()}
        recover = defaults | self._rates(
            spec.get("recover", {}), f"{where}.recover", trip
        )
        floor = check_min_volume(
            spec.get("min_volume"), self.rule, f"{where}.min_volume"
        )
        exhausted = spec.get("when_all_tripped", "hold")
        if exhausted not in ("hold", "last"):
            raise RuleValidationError(
                self.rule,
                f"{where}.when_all_tripped",
                f"must be hold or last, got {exhausted!r}.",
            )

        limits = Thresholds(tuple(trip.items()), tuple(recover.items()), floor)
        by_provider = spec.get("by_provider", False) is True
        return Failover(
            self.state_key,
            names,
            limits,
            by_provider=by_provider,
            when_all_tripped=exhausted,
        )

    def _rates(
        self, value: object, where: str, trip: dict[str, float] | None
    ) -> dict[str, float]:
        spec = expect_mapping(value, self.rule, where)
        allowed = set(METRICS) if trip is None else set(trip)
        reject_unknown_keys(spec, self.rule, where, allowed)
        if trip is None and not spec:
            raise RuleValidationError(
                self.rule, where, f"needs one of {', '.join(METRICS)}."
            )
        rates = {}
        for metric, raw in spec.items():
            rate = expect_number(raw, self.rule, f"{where}.{metric}")
            ceiling = 1.0 if trip is None else trip[metric]
            if not 0 <= rate <= 1 or (trip is not None and rate >= ceiling):
                bound = "between 0 and 1" if trip is None else f"below trip {ceiling:g}"
                raise RuleValidationError(
                    self.rule, f"{where}.{metric}", f"must be {bound}, got {rate:g}."
                )
            rates[metric] = rate
        return rates

    def _reason(self, value: object, where: str) -> str | None:
        if value is True or value is None:
            return None
        spec = expect_mapping(value, self.rule, where)
        reject_unknown_keys(spec, self.rule, where, {"reason"})
        return expect_str(spec.get("reason"), self.rule, f"{where}.reason")

    def _annotate(self, value: object, where: str) -> Annotate:
        spec = expect_mapping(value, self.rule, where)
        reject_unknown_keys(spec, self.rule, where, {"tags", "metadata"})
        tags = spec.get("tags", [])
        if not isinstance(tags, list) or not all(
            isinstance(t, str) and t for t in tags
        ):
            raise RuleValidationError(
                self.rule, f"{where}.tags", f"must be a list of text, got {tags!r}."
            )
        metadata = expect_mapping(
            spec.get("metadata", {}), self.rule, f"{where}.metadata"
        )
        if not tags and not metadata:
            raise RuleValidationError(self.rule, where, "needs tags, metadata or both.")
        return Annotate(tags, {k: str(v) for k, v in metadata.items()})

    def _throttle(self, value: object, where: str) -> Throttle:
        spec = expect_mapping(value, self.rule, where)
        reject_unknown_keys(spec, self.rule, where, {"rate", "per"})
        rate = parse_rate(spec.get("rate"), self.rule, f"{where}.rate")
        per: Any = spec.get("per", ["destination"])
        per = (
            [per]
            if isinstance(per, str)
            else expect_list(per, self.rule, f"{where}.per")
        )
        bad = [p for p in per if p not in SCOPES]
        if bad:
            raise RuleValidationError(
                self.rule,
                f"{where}.per",
                f"has unknown scope(s) {bad}; use {', '.join(SCOPES)}.",
            )
        return Throttle(rate, tuple(per))

    def _distinct(self, names: list[str], where: str) -> None:
        seen = {n for n in names if names.count(n) > 1}
        if seen:
            raise RuleValidationError(
                self.rule, where, f"lists {sorted(seen)} more than once."
            )
