"""What a matching rule does.

Terminal actions end evaluation: ``route`` (one destination), ``split``
(weighted, sticky per recipient), ``failover`` (ordered, health-checked),
``suppress`` and ``hold``. Non-terminal actions record something and let
evaluation continue with the next rule: ``annotate`` adds tags and metadata,
``throttle`` sets the rate the sending side must keep (the first matching
throttle wins; the holding itself happens downstream).
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Literal

from streams.rules.context import Context
from streams.rules.failover import FailoverState, Thresholds

ActionKind = Literal["route", "split", "failover", "suppress", "hold", "default"]
Rejected = list[tuple[str, str]]
Choice = tuple[ActionKind, str | None, Rejected, str | None]
ThrottleScope = Literal["destination", "provider", "subaccount", "from_domain"]
_TWO_64 = float(2**64)


def sticky_fraction(subaccount: str | None, recipient: str) -> float:
    """A stable number in [0, 1) for a recipient of a subaccount.

    The same subaccount and address (any letter case) always give the same
    number, so a weighted split never moves a recipient between destinations.
    """
    key = f"{subaccount or ''}\x1f{recipient.lower()}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _TWO_64


class Route:
    """Send to one destination."""

    def __init__(self, destination: str) -> None:
        self.destination = destination

    def choose(self, ctx: Context, state: FailoverState) -> Choice:
        return ("route", self.destination, [], None)


class Split:
    """Weighted split; a recipient's sticky fraction picks the share."""

    def __init__(self, shares: list[tuple[str, float]]) -> None:
        self.destinations = [name for name, _ in shares]
        total, bounds = 0.0, []
        for _, weight in shares:
            total += weight
            bounds.append(total / 100.0)
        # Guard against float sums like 0.9999999 leaving a gap at the top.
        bounds[-1] = 1.0
        self.bounds = bounds

    def choose(self, ctx: Context, state: FailoverState) -> Choice:
        fraction = sticky_fraction(ctx.message.subaccount, ctx.recipient)
        index = bisect.bisect_right(self.bounds, fraction)
        return ("split", self.destinations[index], [], None)


class Failover:
    """The first destination in order that is not tripped."""

    def __init__(
        self,
        rule: str,
        destinations: list[str],
        limits: Thresholds,
        *,
        by_provider: bool,
        when_all_tripped: Literal["hold", "last"],
    ) -> None:
        self.rule = rule
        self.destinations = destinations
        self.limits = limits
        self.by_provider = by_provider
        self.when_all_tripped = when_all_tripped

    def choose(self, ctx: Context, state: FailoverState) -> Choice:
        provider = ctx.provider if self.by_provider else None
        rejected: Rejected = []
        for name in self.destinations:
            snapshot = ctx.health.rates(name, provider)
            why = state.assess((self.rule, name, provider), snapshot, self.limits)
            if why is None:
                return ("failover", name, rejected, None)
            rejected.append((name, why))

        if self.when_all_tripped == "last":
            return ("failover", self.destinations[-1], rejected, None)
        return ("hold", None, rejected, "every failover destination is tripped")


class Suppress:
    """Do not send to this recipient."""

    def __init__(self, reason: str | None) -> None:
        self.reason = reason

    def choose(self, ctx: Context, state: FailoverState) -> Choice:
        return ("suppress", None, [], self.reason)


class Hold:
    """Keep the message back for later release."""

    def __init__(self, reason: str | None) -> None:
        self.reason = reason

    def choose(self, ctx: Context, state: FailoverState) -> Choice:
        return ("hold", None, [], self.reason)


class Annotate:
    """Add tags and metadata; later rules see them."""

    def __init__(self, tags: list[str], metadata: dict[str, str]) -> None:
        self.tags = tags
        self.metadata = metadata

    def apply(self, ctx: Context) -> None:
        new = [t for t in self.tags if t not in ctx.tags]
        if new:
            ctx.tags = [*ctx.tags, *new]
            ctx.added_tags.extend(new)
        if self.metadata:
            ctx.metadata = {**ctx.metadata, **self.metadata}
            ctx.added_metadata.update(self.metadata)


class Throttle:
    """Ask the sending side to keep a rate for a key built from ``per``."""

    def __init__(self, rate: float, per: tuple[ThrottleScope, ...]) -> None:
        self.rate = rate
        self.per = per

    def apply(self, ctx: Context) -> None:
        if ctx.throttle is None:
            ctx.throttle = (self.rate, self.per)


TerminalAction = Route | Split | Failover | Suppress | Hold
Action = TerminalAction | Annotate | Throttle
