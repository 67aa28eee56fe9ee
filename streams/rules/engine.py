"""The Rule Engine: one decision per (message, recipient), no I/O.

Rules are tried in order. A matching non-terminal rule (``annotate``,
``throttle``) records its effect and evaluation goes on; the first matching
terminal rule decides. When none matches, the rule set's default
destination is used. The engine owns the failover state, so one engine
should serve one stream of decisions (it is not thread-safe).

An engine for one subaccount (:meth:`Engine.with_own`) tries that
subaccount's own rules first, then the installation's, with the
installation's destinations and default. When one of its own rules
decides, the installation's throttle rules are still tried (the first
that matches applies), so no subaccount rule escapes the installation's
rates; it shares the installation engine's failover state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from streams.rules.actions import Choice, Throttle
from streams.rules.context import Context
from streams.rules.decision import Decision
from streams.rules.failover import FailoverState
from streams.rules.health import HealthView
from streams.rules.message import Message
from streams.rules.plan import Plan
from streams.rules.ruleset import RuleSet
from streams.rules.subaccount import SubaccountRules


class Engine:
    """Decides with one rule set at a time; ``reload`` swaps it atomically."""

    def __init__(
        self,
        ruleset: RuleSet,
        health: HealthView,
        *,
        clock: Callable[[], float] = time.time,
        state: FailoverState | None = None,
        own: SubaccountRules | None = None,
    ) -> None:
        self.health = health
        self.state = FailoverState() if state is None else state
        self._clock = clock
        self.reload(ruleset, own)

    @property
    def ruleset(self) -> RuleSet:
        return self._ruleset

    @property
    def own(self) -> SubaccountRules | None:
        """The subaccount rules tried before the rule set's, if any."""
        return self._own

    def reload(self, ruleset: RuleSet, own: SubaccountRules | None = None) -> None:
        """Use ``ruleset`` (after ``own``) from the next decision on.

        Failover state is kept.
        """
        own_rules = () if own is None else own.rules
        self._plan = Plan((*own_rules, *ruleset.rules))
        self._own_count = len(own_rules)
        self._throttles = [
            (r.compiled.test, r.act.apply)
            for r in ruleset.rules
            if isinstance(r.act, Throttle)
        ]
        self._default: Choice = ("default", ruleset.default, [], None)
        self._max_rates = {name: d.max_rate for name, d in ruleset.destinations.items()}
        self._ruleset = ruleset
        self._own = own

    def with_own(self, own: SubaccountRules) -> Engine:
        """An engine for ``own``'s subaccount: its rules first, then this one's.

        It reads the same health and clock and shares this engine's failover
        state, so an installation failover rule trips alike for everyone.
        """
        return Engine(
            self._ruleset, self.health, clock=self._clock, state=self.state, own=own
        )

    def decide(self, message: Message, recipient: str) -> Decision:
        """The decision for one recipient of ``message``."""
        ctx = Context(message, recipient, self.health, self._clock)
        state = self.state
        for index, name, test, choose, apply in self._plan.candidates(ctx):
            if not test(ctx):
                continue
            if choose is not None:
                own = index < self._own_count
                if own:
                    self._installation_throttle(ctx)
                return self._finish(ctx, name, choose(ctx, state), own=own)
            if apply is not None:
                apply(ctx)
        action, dest, _, reason = self._default
        return self._finish(ctx, None, (action, dest, [], reason))

    def route_to(
        self, message: Message, recipient: str, destination: str, *, rule: str
    ) -> Decision:
        """A ``route`` to ``destination`` decided outside the rules (a pin).

        The installation's throttle rules and the destination's limit still
        apply. ``destination`` must be one of the rule set's.
        """
        ctx = Context(message, recipient, self.health, self._clock)
        self._installation_throttle(ctx)
        return self._finish(ctx, rule, ("route", destination, [], None))

    def _installation_throttle(self, ctx: Context) -> None:
        for test, apply in self._throttles:
            if ctx.throttle is not None:
                return
            if test(ctx):
                apply(ctx)

    def _finish(
        self, ctx: Context, rule: str | None, choice: Choice, *, own: bool = False
    ) -> Decision:
        action, dest, rejected, reason = choice
        key, rate = None, None
        if dest is not None:
            key, rate = self._throttle(ctx, dest)
        own_version = self._own.version if own and self._own is not None else None
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
            ctx.message.subaccount,
            own_version,
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
