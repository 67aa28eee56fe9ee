"""Ordered failover with hysteresis, and the state it needs.

A destination trips when any watched rate rises above its ``trip``
threshold and, once tripped, stays out until every watched rate is below
its lower ``recover`` threshold, so readings between the two never make
traffic flap. Each evaluation walks the list from the top, which returns
traffic to the primary as soon as it recovers. Below ``min_volume`` a
reading is not evidence: the destination counts as healthy and a trip is
released, which lets a drained primary be retried.
"""

from __future__ import annotations

import dataclasses

from streams.rules.health import HealthSnapshot

TripKey = tuple[str, str, str | None]


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-metric trip and recover rates (``recover[m] < trip[m]``)."""

    trip: tuple[tuple[str, float], ...]
    recover: tuple[tuple[str, float], ...]
    min_volume: int = 0


class FailoverState:
    """Which (rule, destination, provider) triples are tripped right now.

    The engine owns one and keeps it across reloads; given the same health
    readings in the same order it makes the same choices.
    """

    def __init__(self) -> None:
        self._tripped: set[TripKey] = set()

    def tripped(self) -> frozenset[TripKey]:
        """A copy of the tripped keys, for inspection and tests."""
        return frozenset(self._tripped)

    def assess(
        self, key: TripKey, snapshot: HealthSnapshot, limits: Thresholds
    ) -> str | None:
        """``None`` if the destination may take traffic, else the reason not."""
        volume = snapshot.volume
        if volume < limits.min_volume:
            self._tripped.discard(key)
            return None
        if key in self._tripped:
            return self._still_tripped(key, snapshot, limits)
        for metric, limit in limits.trip:
            value: float = getattr(snapshot, metric)
            if value > limit:
                self._tripped.add(key)
                return f"{metric} {value:.2f} > {limit:.2f} over {volume} events"
        return None

    def _still_tripped(
        self, key: TripKey, snapshot: HealthSnapshot, limits: Thresholds
    ) -> str | None:
        for metric, limit in limits.recover:
            value: float = getattr(snapshot, metric)
            if value >= limit:
                return (
                    f"tripped, {metric} {value:.2f} not yet below {limit:.2f} "
                    f"over {snapshot.volume} events"
                )
        self._tripped.discard(key)
        return None
