"""State every worker keeps whole: rule versions, suppressions, health, status.

Each store is fed by a :class:`mailyard.broadcast.Broadcast` reader over all
partitions of its topic, so every worker holds the same view whichever
partitions its consumer group gave it.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRecord

from mailyard.codec import Codec, load_schema
from mailyard.model import EmailEvent
from streams.normalize import decode_event
from streams.rules import RuleSet, WindowedHealth

log = logging.getLogger(__name__)

DESTINATION_KEY = "mailyard_destination"
ERROR_KEY = "mailyard_error"


class RulesStore:
    """Every rule set version from the compacted rules topic.

    The installation's versions are keyed by their number and the highest
    is current. A subaccount's own rules are keyed ``<subaccount>/<number>``
    and kept as plain data, its highest number current: they are validated
    against the installation's rule set when an engine is built from them
    (:class:`streams.rules.EngineBook`). A null value deletes a version.
    """

    def __init__(self, on_change: Callable[[RuleSet], None]) -> None:
        self.versions: dict[int, dict[str, Any]] = {}
        self.current: RuleSet | None = None
        self.subaccount_versions: dict[str, dict[int, dict[str, Any]]] = {}
        self._subaccount_current: dict[str, dict[str, Any]] = {}
        self._on_change = on_change

    def on_record(self, record: ConsumerRecord) -> None:
        key = record.key.decode() if record.key else ""
        subaccount, slash, number = key.rpartition("/")
        if slash:
            self._on_subaccount_record(subaccount, number, record.value)
        elif record.value is None:
            if number.isdigit():
                self.versions.pop(int(number), None)
        else:
            self._on_installation_record(json.loads(record.value))

    def _on_installation_record(self, data: dict[str, Any]) -> None:
        ruleset = RuleSet.from_dict(data)
        self.versions[ruleset.version] = data
        if self.current is None or ruleset.version > self.current.version:
            self.current = ruleset
            log.info("rule set version %s is current (%s)", ruleset.version, ruleset.reason)
            self._on_change(ruleset)

    def _on_subaccount_record(
        self, subaccount: str, number: str, value: bytes | None
    ) -> None:
        if not number.isdigit():
            log.warning("ignoring rules record %s/%s: not <subaccount>/<version>",
                        subaccount, number, extra={"subaccount": subaccount})
            return
        versions = self.subaccount_versions.setdefault(subaccount, {})
        if value is None:
            versions.pop(int(number), None)
        else:
            versions[int(number)] = json.loads(value)
        latest = versions[max(versions)] if versions else None
        if latest is None:
            self._subaccount_current.pop(subaccount, None)
        elif latest is not self._subaccount_current.get(subaccount):
            self._subaccount_current[subaccount] = latest
            log.info("subaccount %s rules version %s is current", subaccount,
                     max(versions), extra={"subaccount": subaccount})

    @property
    def next_version(self) -> int:
        return max(self.versions, default=0) + 1

    def subaccount_rules(self, subaccount: str) -> dict[str, Any] | None:
        """The subaccount's current own rules as published, if it has any."""
        return self._subaccount_current.get(subaccount)

    def next_subaccount_version(self, subaccount: str) -> int:
        return max(self.subaccount_versions.get(subaccount, ()), default=0) + 1


def suppression_key(subaccount: str | None, address: str) -> str:
    return f"{subaccount or '-'}|{address.strip().lower()}"


class SuppressionList:
    """Addresses not to send to, per subaccount, from the compacted topic."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def on_record(self, record: ConsumerRecord) -> None:
        key = record.key.decode()
        if record.value is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = json.loads(record.value)

    def get(self, subaccount: str | None, address: str) -> dict[str, Any] | None:
        return self.entries.get(suppression_key(subaccount, address))

    def for_subaccount(self, subaccount: str) -> list[dict[str, Any]]:
        prefix = f"{subaccount}|"
        return [
            {"address": k.split("|", 1)[1], **v}
            for k, v in sorted(self.entries.items())
            if k.startswith(prefix)
        ]


# What a dispatch outcome (esp_event "dispatch:<outcome>") means for health:
# a relay's acceptance is a success, a refused request is a provider error.
_DISPATCH_HEALTH = {
    "accepted": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
    "failed": "error",
}
_WEBHOOK_HEALTH = {
    "delivered": "delivered",
    "deferred": "deferred",
    "bounced": "bounced",
    "complained": "complained",
}


def health_outcome(event: EmailEvent) -> str | None:
    if event.esp_event.startswith("dispatch:"):
        if event.metadata.get(ERROR_KEY) == "1":
            return "error"
        return _DISPATCH_HEALTH.get(event.esp_event[len("dispatch:"):])
    return _WEBHOOK_HEALTH.get(event.type)


class HealthFeed:
    """Destination health from the event stream (dispatch results and webhooks)."""

    def __init__(self, health: WindowedHealth) -> None:
        self.health = health

    def on_record(self, record: ConsumerRecord) -> None:
        event = decode_event(record.value)
        destination = event.metadata.get(DESTINATION_KEY)
        # Destinations are the installation's: a webhook that came in through
        # a subaccount's entry point may not steer them (it could be forged
        # by that subaccount). Dispatch results are our own.
        own = event.esp_event.startswith("dispatch:")
        if not own and event.subaccount is not None:
            return
        outcome = health_outcome(event)
        if destination and outcome:
            self.health.record(destination, event.mailbox_provider, outcome, event.timestamp)


def _decision_codec() -> Codec:
    """The decision codec, which also reads decisions from before ``subaccount``.

    The decisions topic keeps 30 days, so records written before the
    subaccount fields were added are read back for that long.
    """
    current = load_schema("routing_decision")
    added = {"subaccount", "subaccount_ruleset_version"}
    before = {**current, "fields": [f for f in current["fields"]
                                    if f["name"] not in added]}
    return Codec(current, writers=[before])


class MessageIndex:
    """Recent messages' decisions and events, for ``GET /v1/messages/{id}``.

    Bounded: the oldest messages are forgotten past ``capacity``.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, dict[str, list[dict[str, Any]]]] = OrderedDict()
        self._decision = _decision_codec()

    def _entry(self, message_id: str) -> dict[str, list[dict[str, Any]]]:
        entry = self._items.get(message_id)
        if entry is None:
            entry = self._items[message_id] = {"decisions": [], "events": []}
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return entry

    def on_decision(self, record: ConsumerRecord) -> None:
        decision = self._decision.decode(record.value)
        self._entry(decision["message_id"])["decisions"].append(decision)

    def on_event(self, record: ConsumerRecord) -> None:
        event = decode_event(record.value)
        if event.message_id:
            self._entry(event.message_id)["events"].append(event.to_json_dict())

    def get(self, message_id: str) -> dict[str, list[dict[str, Any]]] | None:
        """Its decisions, and the events its owner may see.

        An event that came in through another subaccount's webhook entry
        point names the message only by a claim in its metadata, so it is
        left out; the installation's entry points and dispatch results are
        trusted.
        """
        entry = self._items.get(message_id)
        if entry is None:
            return None
        owner = self.owner(message_id)
        events = [e for e in entry["events"] if e.get("subaccount") in (None, owner)]
        return {"decisions": entry["decisions"], "events": events}

    def owner(self, message_id: str) -> str | None:
        """The subaccount a message was submitted for, as the router recorded it."""
        entry = self._items.get(message_id) or {"decisions": [], "events": []}
        for decision in entry["decisions"]:
            if decision.get("subaccount"):
                return str(decision["subaccount"])
        return None
