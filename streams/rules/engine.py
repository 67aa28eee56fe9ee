"""The Rule Engine: one decision per (message, recipient), no I/O.

Rules are tried in order. A matching non-terminal rule (``annotate``,
``throttle``) records its effect and evaluation goes on; the first matching
terminal rule decides. When none matches, the rule set's default
destination is used. The engine owns the failover state, so one engine
should serve one stream of decisions (it is not thread-safe).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streams.rules.actions import Choice
from streams.rules.context import Context
from streams.rules.decision import Decision
from streams.rules.failover import FailoverState
from streams.rules.health import HealthView
from streams.rules.message import Message
from streams.rules.plan import Plan
from streams.rules.ruleset import RuleSet


class Engine:
    """Decides with one rule set at a time; ``reload`` swaps it atomically."""

    def __init__(
        self,
        ruleset: RuleSet,
        health: HealthView,
        *,
        clock: Callable[[], float] = time.time,
        state: FailoverState | None = None,
    ) -> None:
        self.health = health
        self.state = FailoverState() if state is None else state
        self._clock = clock
        self.reload(ruleset)

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    def reload(self, ruleset: RuleSet) -> None:
        """Use ``ruleset`` from the next decision on; failover state is kept."""
        self._plan = Plan(ruleset.rules)
        self._default: Choice = ("default", ruleset.default, [], None)
        self._max_rates = {name: d.max_rate for name, d in ruleset.destinations.items()}
        self._ruleset = ruleset

    def decide(self, message: Message, recipient: str) -> Decision:
        """The decision for one recipient of ``message``."""
        ctx = Context(message, recipient, self.health, self._clock)
        state = self.state
        for name, test, choose, apply in self._plan.candidates(ctx):
            if not test(ctx):
                continue
            if choose is not None:
                return self._finish(ctx, name, choose(ctx, state))
            if apply is not None:
                apply(ctx)
        action, dest, _, reason = self._default
        return self._finish(ctx, None, (action, dest, [], reason))

    def _finish(self, ctx: Context, rule: str | None, choice: Choice) -> Decision:
        action, dest, rejected, reason = choice
        key, rate = None, None
        if dest is not None:
            key, rate = self._throttle(ctx, dest)
        return Decision(
            ctx.message.message_id,
            ctx.recipient,
            rule,
            self._ruleset.version,
            action,
            dest,
            key,
            rate,
            ctx.added_tags,
            ctx.added_metadata,
            rejected,
            reason,
        )

    def _throttle(self, ctx: Context, dest: str) -> tuple[str | None, float | None]:
        # Without a throttle rule the destination's own limit applies, if any.
        if ctx.throttle is None:
            rate = self._max_rates[dest]
            return (None, None) if rate is None else (dest, rate)
        rate, scopes = ctx.throttle
        parts = {
            "destination": dest,
            "provider": ctx.provider or "unknown",
            "subaccount": ctx.message.subaccount or "",
            "from_domain": ctx.message.from_domain or "",
        }
        return "/".join(parts[s] for s in scopes), rate
