"""The Rule Engine and relay stages of the worker (``streams.stage``).

* ``route``: submitted messages (and retries that fell due) are decided
  per recipient by the Rule Engine; decisions go to ``mailyard.decisions``
  and deliveries to ``mailyard.dispatch``.
* ``dispatch``: deliveries are sent through their destination's sink; the
  answers become events, deferrals wait on the retry tiers.

Every worker reads the whole rules, suppressions, decisions and events
topics (``mailyard.broadcast``), so each routes with the same rule set,
suppression list and destination health whatever partitions it holds.
The rules topic holds the installation's rule set versions (key
``<version>``) and each subaccount's own rules (key
``<subaccount>/<version>``); the worker's tenant directory says which
subaccounts exist, are suspended or pinned to a destination.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from typing import Any

from mailyard.codec import codec
from mailyard.settings import Settings
from mailyard.tenancy import TenantDirectory
from mailyard.topics import (
    DECISIONS, DISPATCH, EVENTS, REROUTE, RETRIES, RULES, SUBMITTED, SUPPRESSIONS,
)
from sinks.retry import RetryPolicy
from mailyard.broadcast import Broadcast
from streams.dispatcher import Dispatcher
from streams.producer import BatchProducer, Record
from streams.retry import RetryForwarder
from streams.stage import Records, Stage, dead_letter
from streams.router import Router
from streams.rules import (
    Decision, Engine, EngineBook, RuleSet, RuleValidationError, SubaccountRules,
    WindowedHealth, load_rules,
)
from streams.state import (
    HealthFeed, MessageIndex, RulesStore, SuppressionList, suppression_key,
)

log = logging.getLogger(__name__)

_SUBMITTED = codec("submitted_message")
_DISPATCH = codec("dispatch")
_DECISION = codec("routing_decision")
MESSAGE_INDEX_HOURS = 24


class Relay:
    """Owns the relay's state and adds its stages to ``worker``."""

    def __init__(
        self, worker: Any, settings: Settings, producer: BatchProducer,
        *, tenants: TenantDirectory | None = None,
        tenants_ready: asyncio.Event | None = None,
    ) -> None:
        app_id = worker.app_id
        self.settings = settings
        self.producer = producer
        # None: every subaccount is unknown, so the installation's rules decide.
        self.tenants = tenants
        self._tenants_ready = tenants_ready
        self.health = WindowedHealth(
            window=settings.health_window_s, bucket=settings.health_bucket_s
        )
        self.suppressions = SuppressionList()
        self.rules = RulesStore(self._on_rules)
        self.index = MessageIndex()
        self.router: Router | None = None
        self.dispatcher = Dispatcher(
            lambda: self.rules.current,
            policy=RetryPolicy(base_s=settings.retry_base_s,
                               max_age_s=settings.retry_max_age_s),
        )
        self.stats = {"routed": 0, "rejected": 0, "held": 0, "dispatched": 0}
        self._publishing = asyncio.Lock()
        self._published = 0
        self._published_own: dict[str, int] = {}
        self._readers = self._make_readers()
        self._retry = RetryForwarder(
            settings.bootstrap, [t.name for t in RETRIES], producer,
            f"{app_id}-retry",
        )
        worker.app.task(self._start)
        stages = settings.worker_stages
        if "route" in stages:
            worker.add_stage(Stage(
                "route", settings.bootstrap, [SUBMITTED.name, REROUTE.name],
                f"{app_id}.route", self._route, batch_size=500, poll_ms=100,
                before_first_poll=self.ready, park=worker.parker("route"),
            ))
        if "dispatch" in stages:
            worker.add_stage(Stage(
                "dispatch", settings.bootstrap, [DISPATCH.name],
                f"{app_id}.dispatch", self._dispatch, batch_size=200, poll_ms=50,
                before_first_poll=self.ready, park=worker.parker("dispatch"),
            ))

    @property
    def retry_failing(self) -> bool:
        return self._retry.failing

    def _make_readers(self) -> list[Broadcast]:
        b = self.settings.bootstrap
        since = MESSAGE_INDEX_HOURS * 3600

        feed = HealthFeed(self.health)
        status = "status" in self.settings.worker_stages

        def on_event(record: Any) -> None:
            feed.on_record(record)
            if status:
                self.index.on_event(record)

        readers = [
            Broadcast(b, RULES.name, RULES.partitions, self.rules.on_record),
            Broadcast(b, SUPPRESSIONS.name, SUPPRESSIONS.partitions,
                      self.suppressions.on_record),
            # Health needs only the last window; the status index the last day.
            Broadcast(b, EVENTS.name, EVENTS.partitions, on_event,
                      since_s=since if status else self.settings.health_window_s),
        ]
        if status:
            readers.append(Broadcast(b, DECISIONS.name, DECISIONS.partitions,
                                     self.index.on_decision, since_s=since))
        return readers

    async def _start(self) -> None:
        for reader in self._readers:
            reader.start()
        await self._readers[0].ready.wait()
        if self.rules.current is None and self.settings.rules_file is not None:
            ruleset = load_rules(self.settings.rules_file)
            await self.publish_rules(ruleset.to_dict(), author=ruleset.author,
                                     reason=f"initial rules from {self.settings.rules_file}")
        if "dispatch" in self.settings.worker_stages:
            self._retry.start()

    async def ready(self) -> None:
        """Wait until the rules, suppressions and tenants topics have been read."""
        await asyncio.gather(self._readers[0].ready.wait(), self._readers[1].ready.wait())
        if self._tenants_ready is not None:
            # Suspensions and pins must be known before the first message.
            await self._tenants_ready.wait()
        if self.rules.current is None and self.settings.rules_file is not None:
            while self.router is None:  # the initial rules are being published
                await asyncio.sleep(0.1)

    def _on_rules(self, ruleset: RuleSet) -> None:
        if self.router is None:
            book = EngineBook(Engine(ruleset, self.health), self.rules.subaccount_rules,
                              on_invalid=_log_invalid_own_rules)
            self.router = Router(book, self.suppressions, tenants=self.tenants)
        else:
            self.router.engine.reload(ruleset)

    async def publish_rules(self, data: dict[str, Any], *, author: str, reason: str) -> int:
        """Validate and publish ``data`` as the next rule set version.

        Versions are numbered by this worker alone; two workers publishing at
        once could still pick the same number.
        """
        await self._readers[0].ready.wait()
        async with self._publishing:
            # The store learns of a version only once its reader reads it
            # back; without this, calls in that gap reuse one version number
            # and the compacted topic keeps only the last of them.
            version = max(self.rules.next_version, self._published + 1)
            stamped = {**data, "version": version, "author": author,
                       "reason": reason,
                       "created_at": datetime.now(timezone.utc).isoformat()}
            RuleSet.from_dict(stamped)  # raises RuleValidationError: rule, field
            value = json.dumps(stamped).encode()
            await self.producer.send_all([(RULES.name, str(version).encode(), value)])
            self._published = version
        return version

    async def publish_subaccount_rules(
        self, subaccount: str, data: dict[str, Any], *, author: str, reason: str
    ) -> int:
        """Validate ``data`` as ``subaccount``'s next own rules and publish it.

        Its rules are checked against the installation's current rule set
        (RuleValidationError names the rule and field); versions count per
        subaccount, numbered by this worker as :meth:`publish_rules` does.
        """
        await self._readers[0].ready.wait()
        installation = self.rules.current
        if installation is None:
            raise RuleValidationError(None, "rules", "cannot be checked: no "
                                      "installation rule set is published yet.")
        async with self._publishing:
            version = max(self.rules.next_subaccount_version(subaccount),
                          self._published_own.get(subaccount, 0) + 1)
            stamped = {**data, "subaccount": subaccount, "version": version,
                       "author": author, "reason": reason,
                       "created_at": datetime.now(timezone.utc).isoformat()}
            SubaccountRules.from_dict(stamped, installation.destinations)
            key = f"{subaccount}/{version}".encode()
            await self.producer.send_all([(RULES.name, key, json.dumps(stamped).encode())])
            self._published_own[subaccount] = version
        return version

    async def forget_subaccount(self, subaccount: str) -> None:
        """Delete every rules version of a subaccount that is gone."""
        versions = self.rules.subaccount_versions.get(subaccount, {})
        records = [(RULES.name, f"{subaccount}/{v}".encode(), None) for v in versions]
        if records:
            await self.producer.send_all(records)  # type: ignore[arg-type]

    async def set_suppression(
        self, subaccount: str | None, address: str, entry: dict[str, Any] | None
    ) -> None:
        key = suppression_key(subaccount, address).encode()
        value = None if entry is None else json.dumps(entry).encode()
        await self.producer.send_all([(SUPPRESSIONS.name, key, value)])  # type: ignore[list-item]

    async def _route(self, batch: Records) -> None:
        records: list[Record] = []
        for msg in batch:
            try:
                if self.router is None:
                    # Without rules nothing can be routed; say so per message.
                    records.extend(no_rules(msg.value, msg.topic))
                    self.stats["held"] += 1
                    continue
                if msg.topic == REROUTE.name:
                    routed = self.router.reroute(_DISPATCH.decode(msg.value))
                else:
                    routed = self.router.route(_SUBMITTED.decode(msg.value))
            except Exception as exc:  # a bad record is parked, never a crash loop
                records.append(dead_letter("route", msg, exc, "message record"))
                continue
            records.extend(routed.records)
            self.stats["routed"] += routed.dispatched
            self.stats["rejected"] += routed.rejected
            self.stats["held"] += routed.held
        await self.producer.send_all(records)

    async def _dispatch(self, batch: Records) -> None:
        deliveries, records = [], []
        for msg in batch:
            try:
                deliveries.append(_DISPATCH.decode(msg.value))
            except Exception as exc:
                records.append(dead_letter("dispatch", msg, exc, "dispatch record"))
        results = await asyncio.gather(*(self.dispatcher.dispatch(d) for d in deliveries))
        await self.producer.send_all([*records, *(r for rs in results for r in rs)])
        self.stats["dispatched"] += len(batch)


def no_rules(value: bytes, topic: str) -> list[Record]:
    """Hold decisions for a message that arrived before any rule set existed."""
    record = (_DISPATCH if topic == REROUTE.name else _SUBMITTED).decode(value)
    recipients = ([record["recipient"]] if "recipient" in record
                  else [*record["to"], *record["cc"], *record["bcc"]])
    reason = "no rule set is published yet (POST /v1/rules or set MAILYARD_RULES)"
    return [
        (DECISIONS.name, record["message_id"].encode(), _DECISION.encode(
            Decision(record["message_id"], r, None, 0, "hold", None, reason=reason,
                     subaccount=record.get("subaccount")).to_dict()))
        for r in recipients
    ]


def _log_invalid_own_rules(subaccount: str, problem: str) -> None:
    log.warning("holding subaccount %s's mail: %s", subaccount, problem,
                extra={"subaccount": subaccount})


def suppression_entry(event: Any) -> dict[str, Any] | None:
    """The suppression an event calls for: hard bounce, complaint, unsubscribe."""
    if event.recipient is None:
        return None
    hard = event.type == "bounced" and event.bounce_class == "hard"
    if not (hard or event.type in ("complained", "unsubscribed")):
        return None
    reason = {"bounced": "hard bounce", "complained": "spam complaint",
              "unsubscribed": "unsubscribed"}[event.type]
    return {"reason": reason, "source": f"{event.esp}:{event.esp_event}",
            "event_id": event.event_id,
            "at": event.timestamp.isoformat() if event.timestamp else None}
