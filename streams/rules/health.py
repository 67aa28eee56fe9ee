"""Live health of destinations: the readings health conditions and failover use.

``volume`` counts delivery verdicts in the window (delivered, deferred,
bounced, error); each rate is its count over that volume, complaints
included. ``sent`` (accepted, verdict still to come) is counted on its own
and is not part of any rate, because an ESP that reports acceptance reports
the verdict later and the message would otherwise count twice.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal, Protocol, get_args

from streams.rules.errors import HealthInputError

Outcome = Literal["delivered", "deferred", "bounced", "complained", "error", "sent"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)
METRICS = ("deferral_rate", "bounce_rate", "complaint_rate", "error_rate")

# Mailyard event types (mailyard.model.EventType) that are health outcomes.
EVENT_OUTCOMES: dict[str, Outcome] = {
    "delivered": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
    "complained": "complained",
    "failed": "error",
    "sent": "sent",
}
_INDEX = {name: i for i, name in enumerate(OUTCOMES)}


@dataclasses.dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Rates for one destination (and optionally one mailbox provider)."""

    volume: int = 0
    deferral_rate: float = 0.0
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    error_rate: float = 0.0
    sent: int = 0

    def metric(self, name: str) -> float:
        """One of :data:`METRICS` by name."""
        value: float = getattr(self, name)
        return value


EMPTY = HealthSnapshot()


class HealthView(Protocol):
    """What the engine asks about a destination's recent delivery results."""

    def rates(self, destination: str, provider: str | None = None) -> HealthSnapshot:
        """The window's readings; ``provider`` narrows to one mailbox provider."""
        ...


class StaticHealth:
    """Fixed readings from a dict, for simulation and tests.

    Keys are a destination name or a ``(destination, provider)`` pair; a
    provider-level question falls back to the destination's overall reading.
    """

    def __init__(
        self, readings: Mapping[str | tuple[str, str], HealthSnapshot] = {}
    ) -> None:
        self._readings: dict[tuple[str, str | None], HealthSnapshot] = {}
        for key, snapshot in readings.items():
            dest, provider = (key, None) if isinstance(key, str) else key
            self.set(dest, snapshot, provider)

    def set(
        self, destination: str, snapshot: HealthSnapshot, provider: str | None = None
    ) -> None:
        """Replace one reading (a simulation step, a test changing conditions)."""
        self._readings[(destination, provider)] = snapshot

    def rates(self, destination: str, provider: str | None = None) -> HealthSnapshot:
        found = self._readings.get((destination, provider))
        if found is None and provider is not None:
            found = self._readings.get((destination, None))
        return EMPTY if found is None else found


class WindowedHealth:
    """Counts outcomes in short time buckets and reads rates over a window.

    With ``bucket=10`` and ``window=60`` a reading covers the current bucket
    and the five before it, so old results age out in 10-second steps.
    ``clock`` says what "now" is when reading; outcomes older than the
    window when recorded are dropped.
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        bucket: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if bucket <= 0 or window < bucket:
            raise ValueError(f"need 0 < bucket <= window, got {bucket=}, {window=}")
        self.window = window
        self.bucket = bucket
        self._buckets = math.ceil(window / bucket)
        self._clock = clock
        self._series: dict[tuple[str, str | None], dict[int, list[int]]] = {}

    def record(
        self,
        destination: str,
        provider: str | None,
        outcome: str,
        ts: float | datetime | None = None,
    ) -> None:
        """Count one outcome at ``ts`` (epoch seconds or aware datetime)."""
        index = _INDEX.get(outcome)
        if index is None:
            raise HealthInputError(
                f"unknown health outcome {outcome!r}; use one of {', '.join(OUTCOMES)}."
            )
        when = self._clock() if ts is None else _epoch(ts)
        slot = int(when // self.bucket)
        if slot <= int(self._clock() // self.bucket) - self._buckets:
            return

        keys: list[tuple[str, str | None]] = [(destination, None)]
        if provider is not None:
            keys.append((destination, provider))
        for key in keys:
            series = self._series.setdefault(key, {})
            series.setdefault(slot, [0] * len(OUTCOMES))[index] += 1
            self._prune(series, slot)

    def rates(self, destination: str, provider: str | None = None) -> HealthSnapshot:
        series = self._series.get((destination, provider))
        if not series:
            return EMPTY
        newest = int(self._clock() // self.bucket)
        totals = [0] * len(OUTCOMES)
        for slot, counts in series.items():
            if newest - self._buckets < slot <= newest:
                totals = [a + b for a, b in zip(totals, counts)]
        return _snapshot(totals)

    def _prune(self, series: dict[int, list[int]], newest: int) -> None:
        if len(series) > self._buckets + 1:
            for slot in [s for s in series if s <= newest - self._buckets]:
                del series[slot]


def _epoch(ts: float | datetime) -> float:
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def _snapshot(totals: list[int]) -> HealthSnapshot:
    count = dict(zip(OUTCOMES, totals))
    volume = count["delivered"] + count["deferred"] + count["bounced"] + count["error"]
    if volume == 0:
        return HealthSnapshot(sent=count["sent"])
    return HealthSnapshot(
        volume=volume,
        deferral_rate=count["deferred"] / volume,
        bounce_rate=count["bounced"] / volume,
        complaint_rate=count["complained"] / volume,
        error_rate=count["error"] / volume,
        sent=count["sent"],
    )
