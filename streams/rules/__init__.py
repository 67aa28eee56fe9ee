"""The Rule Engine's pure core: rules as data, compiled, decided per recipient.

``load_rules`` validates a YAML/JSON rule file into a :class:`RuleSet`;
:class:`Engine` decides one ``(message, recipient)`` at a time, first
matching terminal rule wins, else the default destination. A subaccount's
own rules (:class:`SubaccountRules`) are tried before the installation's
by its engine, which :class:`EngineBook` builds and keeps. Health comes in
through the :class:`HealthView` protocol. Nothing here talks to Kafka.
"""

from streams.rules.actions import sticky_fraction
from streams.rules.book import EngineBook
from streams.rules.decision import Decision
from streams.rules.destinations import Destination
from streams.rules.engine import Engine
from streams.rules.errors import HealthInputError, RuleValidationError
from streams.rules.failover import FailoverState
from streams.rules.health import (
    EVENT_OUTCOMES,
    HealthSnapshot,
    HealthView,
    StaticHealth,
    WindowedHealth,
)
from streams.rules.message import Message
from streams.rules.ruleset import Rule, RuleSet, load_rules
from streams.rules.simulate import simulate, summarize
from streams.rules.subaccount import SubaccountRules

__all__ = [
    "EVENT_OUTCOMES",
    "Decision",
    "Destination",
    "Engine",
    "EngineBook",
    "FailoverState",
    "HealthInputError",
    "HealthSnapshot",
    "HealthView",
    "Message",
    "Rule",
    "RuleSet",
    "RuleValidationError",
    "StaticHealth",
    "SubaccountRules",
    "WindowedHealth",
    "load_rules",
    "simulate",
    "sticky_fraction",
    "summarize",
]
