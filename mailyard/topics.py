"""The topic catalog: every Kafka topic Mailyard owns, declared once.

The broker runs with ``auto.create.topics.enable=false``; ``mailyard``
applies this catalog at start (see :func:`mailyard.admin.apply_catalog`),
so partition counts and retention are always what is written here.
Faust's own changelog topics are created by Faust with the partition count
of their source topic.
"""

from __future__ import annotations

import dataclasses

DAY_MS = 24 * 60 * 60 * 1000


@dataclasses.dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int | None = 7 * DAY_MS
    compacted: bool = False
    doc: str = ""

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        else:
            cfg["retention.ms"] = "-1"
        return cfg


RAW_WEBHOOKS = TopicSpec(
    "mailyard.webhooks.raw", 4, 7 * DAY_MS,
    doc="Exact webhook request bodies as ESPs sent them (RawWebhook).",
)
EVENTS = TopicSpec(
    "mailyard.events", 4, 30 * DAY_MS,
    doc="Normalized email events (EmailEvent), keyed by event_id.",
)
DEAD_LETTERS = TopicSpec(
    "mailyard.deadletters", 1, 30 * DAY_MS,
    doc="Records a stage could not process, with the reason (DeadLetter).",
)

SUBMITTED = TopicSpec(
    "mailyard.messages.submitted", 4, 7 * DAY_MS,
    doc="Messages senders submitted (SubmittedMessage), keyed by message_id.",
)
REROUTE = TopicSpec(
    "mailyard.messages.reroute", 4, 7 * DAY_MS,
    doc="Deliveries due for another attempt, routed again (Dispatch).",
)
DECISIONS = TopicSpec(
    "mailyard.decisions", 4, 30 * DAY_MS,
    doc="Every routing decision (RoutingDecision), keyed by message_id.",
)
DISPATCH = TopicSpec(
    "mailyard.dispatch", 4, 7 * DAY_MS,
    doc="One delivery to one recipient through one destination (Dispatch).",
)
RULES = TopicSpec(
    "mailyard.rules", 1, None, compacted=True,
    doc="Rule set versions: the installation's keyed by version, "
    "a subaccount's by <name>/<version>; the highest is current.",
)
SUPPRESSIONS = TopicSpec(
    "mailyard.suppressions", 4, None, compacted=True,
    doc="Suppression list entries keyed by subaccount|address; null removes.",
)
TENANTS = TopicSpec(
    "mailyard.tenants", 1, None, compacted=True,
    doc="Subaccounts, API keys (hashed) and installation settings (mailyard.tenancy).",
)
LEDGER_CHANGELOG = TopicSpec(
    "mailyard.ledger.changelog", EVENTS.partitions, None, compacted=True,
    doc="The ledger's counts and seen marks; partition n backs events partition n.",
)
# Delayed retries: a record waits in the tier whose delay covers its backoff;
# every record in a tier waits the same time, so due times stay in order.
RETRY_TIERS_S: tuple[int, ...] = (10, 60, 600, 3600)
RETRIES: tuple[TopicSpec, ...] = tuple(
    TopicSpec(f"mailyard.dispatch.retry.{s}s", 4, 7 * DAY_MS, doc="Delayed retries.")
    for s in RETRY_TIERS_S
)

CATALOG: tuple[TopicSpec, ...] = (
    RAW_WEBHOOKS, EVENTS, DEAD_LETTERS, LEDGER_CHANGELOG,
    SUBMITTED, REROUTE, DECISIONS, DISPATCH, RULES, SUPPRESSIONS, TENANTS, *RETRIES,
)


def by_name(name: str) -> TopicSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(f"Topic {name!r} is not in the Mailyard topic catalog.")
