"""What one evaluation sees: the message, one recipient and derived facts.

The engine builds a :class:`Context` per ``(message, recipient)``; compiled
conditions and actions read its attributes directly. Tags and metadata
start as the message's own and grow when a non-terminal rule adds some, so
later rules see what earlier ones added. The clock is read at most once.
"""

from __future__ import annotations

from collections.abc import Callable

from mailyard.providers import DOMAIN_TO_PROVIDER, recipient_domain
from streams.rules.health import HealthView
from streams.rules.message import Message

_DAY = 86_400
# 1 January 1970 was a Thursday; with Monday as 0 that is day 3.
_EPOCH_WEEKDAY = 3


class Context:
    """Per-decision facts; ``hour`` and ``weekday`` are UTC."""

    __slots__ = (
        "_clock",
        "_now",
        "added_metadata",
        "added_tags",
        "domain",
        "health",
        "message",
        "metadata",
        "provider",
        "recipient",
        "tags",
        "throttle",
    )

    def __init__(
        self,
        message: Message,
        recipient: str,
        health: HealthView,
        clock: Callable[[], float],
    ) -> None:
        domain = recipient_domain(recipient)
        self.message = message
        self.recipient = recipient
        self.domain = domain
        self.provider = (
            None if domain is None else DOMAIN_TO_PROVIDER.get(domain, "other")
        )
        self.tags: list[str] = message.tags
        self.metadata: dict[str, str] = message.metadata
        self.health = health
        self.added_tags: list[str] = []
        self.added_metadata: dict[str, str] = {}
        # The first matching throttle rule, as (rate per second, scopes).
        self.throttle: tuple[float, tuple[str, ...]] | None = None
        self._clock = clock
        self._now: float | None = None

    def now(self) -> float:
        """Epoch seconds from the injected clock, read once per decision."""
        if self._now is None:
            self._now = self._clock()
        return self._now

    def hour(self) -> int:
        """The UTC hour of day, 0 to 23."""
        return int(self.now() % _DAY) // 3600

    def weekday(self) -> int:
        """The UTC day of week, Monday 0 to Sunday 6."""
        return (int(self.now() // _DAY) + _EPOCH_WEEKDAY) % 7
