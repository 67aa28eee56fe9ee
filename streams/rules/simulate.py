"""Dry runs: what a rule set would decide for a batch of messages.

``simulate`` decides every recipient of every message with a fresh engine
(so failover state starts empty) and ``summarize`` counts the outcome, to
compare a candidate rule set with the live one before publishing it. With
``own``, a subaccount's rules are tried first, as its live engine does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable

from streams.rules.decision import Decision
from streams.rules.engine import Engine
from streams.rules.health import HealthView
from streams.rules.message import Message
from streams.rules.ruleset import RuleSet
from streams.rules.subaccount import SubaccountRules


def simulate(
    ruleset: RuleSet,
    messages: Iterable[Message],
    health: HealthView,
    *,
    clock: Callable[[], float] = time.time,
    own: SubaccountRules | None = None,
) -> list[Decision]:
    """One decision per recipient (to, cc, bcc) of each message, in order."""
    engine = Engine(ruleset, health, clock=clock, own=own)
    return [
        engine.decide(message, recipient)
        for message in messages
        for recipient in message.recipients()
    ]


def summarize(decisions: Iterable[Decision]) -> dict[str, dict[str, int]]:
    """Counts by destination, by action and by deciding rule.

    Suppressed and held recipients have no destination and are counted
    under ``(none)``; recipients that no rule matched under ``(default)``.
    """
    by_destination: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    for decision in decisions:
        by_destination[decision.destination or "(none)"] += 1
        by_action[decision.action] += 1
        by_rule[decision.rule or "(default)"] += 1
    return {
        "by_destination": dict(by_destination),
        "by_action": dict(by_action),
        "by_rule": dict(by_rule),
    }
