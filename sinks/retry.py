"""When to try a deferred delivery again, and when to give up.

Pure: no clock, no I/O. The caller passes the times (seconds on one
clock, e.g. epoch seconds) and the last :class:`SendResult`; the policy
answers with a delay in seconds, or ``None`` when the delivery must fail.
Routing the delivery through the delayed-retry topics is the caller's job.

The delay after attempt ``n`` (1-based, as in ``Delivery.attempt``) is::

    base_s * factor ** (n - 1), times a jitter factor, capped at max_backoff_s

Jitter is *proportional*: the delay is multiplied by a factor drawn
uniformly from ``[1 - jitter, 1 + jitter]``, so retries of messages
deferred together spread out but stay near the schedule. The cap applies
after the jitter, so ``max_backoff_s`` is a true maximum. A server's
``retry_after_s`` wins when it is longer. A delivery fails once
``max_attempts`` attempts were made, or when it is ``max_age_s`` old; a
last wait that would end past the deadline is shortened to end on it,
unless the server asked to wait longer than that.
"""

from __future__ import annotations

import dataclasses
import random

from mailyard.errors import ConfigError
from mailyard.outbound import SendResult

_HOUR = 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by age and attempts.

    The defaults retry after about 30 s, 1 min, 2 min, ... up to 1 h
    between tries, for 3 days. Yahoo, for one, asks senders to keep
    retrying 4xx replies and to investigate only when they last 48 h
    (shared reference on mailbox providers, section 3.2).
    Pass ``rng=random.Random(seed)`` for a reproducible jitter.
    """

    base_s: float = 30.0
    factor: float = 2.0
    max_backoff_s: float = _HOUR
    jitter: float = 0.2
    max_age_s: float = 72 * _HOUR
    max_attempts: int | None = None
    rng: random.Random = dataclasses.field(
        default_factory=random.Random, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.base_s <= 0:
            raise ConfigError(f"RetryPolicy base_s={self.base_s} must be positive.")
        if self.factor < 1:
            raise ConfigError(f"RetryPolicy factor={self.factor} must be at least 1.")
        if self.max_backoff_s < self.base_s:
            raise ConfigError(
                f"RetryPolicy max_backoff_s={self.max_backoff_s} must be at least "
                f"base_s={self.base_s}."
            )
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"RetryPolicy jitter={self.jitter} must be in [0, 1).")
        if self.max_age_s <= 0:
            raise ConfigError(
                f"RetryPolicy max_age_s={self.max_age_s} must be positive."
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(
                f"RetryPolicy max_attempts={self.max_attempts} must be at least 1."
            )

    def backoff(self, attempt: int) -> float:
        """The delay after ``attempt`` before jitter and the cap."""
        # Past ~1000 doublings the float overflows; the cap is reached long before.
        exponent = min(max(attempt, 1) - 1, 1000)
        try:
            return float(self.base_s * self.factor**exponent)
        except OverflowError:
            return float("inf")

    def next_attempt(
        self,
        first_attempt_at: float,
        attempt: int,
        now: float,
        result: SendResult | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up.

        ``attempt`` is the number of the attempt that just ended. Only a
        ``deferred`` result (or none) is retried: accepted, bounced and
        failed deliveries have nothing left to try.
        """
        if result is not None and result.outcome != "deferred":
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        remaining = first_attempt_at + self.max_age_s - now
        if remaining <= 0:
            return None

        spread = self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        delay = min(self.backoff(attempt) * spread, self.max_backoff_s)
        asked = result.retry_after_s if result is not None else None
        if asked is not None and asked > delay:
            delay = asked

        if delay <= remaining:
            return delay
        # The server's own "not before" is kept; our schedule is not.
        if asked is not None and asked > remaining:
            return None
        return remaining
