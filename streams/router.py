"""Routing: a submitted message in, per-recipient decisions and dispatches out.

Plain code over the Rule Engine, with no Faust in it: the router agent
calls :meth:`Router.route` for each submitted message and
:meth:`Router.reroute` for each delivery due for another attempt (so a
retry goes wherever the rules send it *now*, e.g. to the backup while the
primary fails). Suppressed recipients become ``rejected`` events with the
reason; nothing is dropped silently.

Per recipient, in this order: the mail of a suspended subaccount is
rejected ("subaccount suspended"); a suppressed recipient is rejected; the
mail of a subaccount pinned to a destination goes there (held if the
installation's rule set has no such destination); everything else is
decided by the subaccount's engine, its own rules before the
installation's. A subaccount the tenant directory does not know (deleted)
is decided by the installation's rules alone.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from mailyard.codec import codec
from mailyard.model import EmailEvent, make_event_id
from mailyard.providers import mailbox_provider, recipient_domain
from mailyard.tenancy import Subaccount, TenantDirectory
from mailyard.topics import DECISIONS, DISPATCH, EVENTS
from streams.producer import Record
from streams.rules import Decision, Engine, EngineBook, Message
from streams.state import SuppressionList

_DISPATCH = codec("dispatch")
_DECISION = codec("routing_decision")
_EVENT = codec("email_event")
_ROUTED = {"route", "split", "failover", "default"}
_MESSAGE_FIELDS = ("subaccount", "stream", "headers", "tags", "metadata", "size_bytes")
_CONTENT_FIELDS = ("subject", "text", "html", "raw_mime")
SUSPENDED = "subaccount suspended"


@dataclasses.dataclass(slots=True)
class Routed:
    records: list[Record] = dataclasses.field(default_factory=list)
    dispatched: int = 0
    rejected: int = 0
    held: int = 0


class Router:
    def __init__(
        self,
        engines: Engine | EngineBook,
        suppressions: SuppressionList,
        *,
        tenants: TenantDirectory | None = None,
    ) -> None:
        self.book = (
            engines if isinstance(engines, EngineBook)
            else EngineBook(engines, lambda _subaccount: None)
        )
        self.suppressions = suppressions
        self.tenants = tenants

    @property
    def engine(self) -> Engine:
        """The installation's engine (``reload`` it for a new rule set)."""
        return self.book.installation

    def route(self, submitted: dict[str, Any]) -> Routed:
        """Decide every recipient (to, cc, bcc) of a submitted message."""
        message = Message.from_record(submitted)
        now = datetime.now(timezone.utc)
        out = Routed()
        for recipient in message.recipients():
            base = _dispatch_base(submitted, recipient, attempt=1, first=now)
            self._decide(message, recipient, base, out)
        return out

    def reroute(self, dispatch: dict[str, Any]) -> Routed:
        """Decide again for one recipient whose delivery is due for a retry."""
        fields = {k: dispatch[k] for k in _MESSAGE_FIELDS}
        message = Message.from_record(
            {**fields, "message_id": dispatch["message_id"],
             "from_addr": dispatch["from_addr"], "to": [dispatch["recipient"]]}
        )
        out = Routed()
        self._decide(message, dispatch["recipient"], dict(dispatch), out)
        return out

    def _decide(
        self, message: Message, recipient: str, base: dict[str, Any], out: Routed
    ) -> None:
        decision = self.decision(message, recipient)

        key = message.message_id.encode()
        out.records.append((DECISIONS.name, key, _DECISION.encode(decision.to_dict())))
        if decision.action in _ROUTED and decision.destination is not None:
            out.records.append((DISPATCH.name, key, _DISPATCH.encode(
                _with_decision(base, decision))))
            out.dispatched += 1
        elif decision.action == "suppress":
            event = _rejected(message, recipient, decision.reason or "suppressed")
            out.records.append((EVENTS.name, event.event_id.encode(),
                                _EVENT.encode(event.to_record())))
            out.rejected += 1
        else:
            out.held += 1

    def decision(self, message: Message, recipient: str) -> Decision:
        """The decision for one recipient, subaccount status and pin first."""
        sub = self._subaccount(message.subaccount)
        if sub is not None and sub.status == "suspended":
            return self._refused(message, recipient, f"suspended:{sub.name}", SUSPENDED)

        entry = self.suppressions.get(message.subaccount, recipient)
        if entry is not None:
            reason = f"on the suppression list: {entry.get('reason', 'suppressed')}"
            return self._refused(message, recipient, None, reason)

        if sub is not None and sub.pinned_destination is not None:
            return self._pinned(message, recipient, sub, sub.pinned_destination)
        name = None if sub is None else sub.name
        return self.book.decide(message, recipient, subaccount=name)

    def _subaccount(self, name: str | None) -> Subaccount | None:
        if name is None or self.tenants is None:
            return None
        return self.tenants.subaccounts.get(name)

    def _refused(
        self, message: Message, recipient: str, rule: str | None, reason: str
    ) -> Decision:
        return Decision(
            message.message_id, recipient, rule, self.engine.ruleset.version,
            "suppress", None, reason=reason, subaccount=message.subaccount,
        )

    def _pinned(
        self, message: Message, recipient: str, sub: Subaccount, destination: str
    ) -> Decision:
        rule = f"pinned:{sub.name}"
        ruleset = self.engine.ruleset
        if destination not in ruleset.destinations:
            reason = (
                f"subaccount {sub.name} is pinned to destination {destination!r}, "
                f"which the installation's rule set version {ruleset.version} "
                "does not declare"
            )
            return Decision(
                message.message_id, recipient, rule, ruleset.version, "hold", None,
                reason=reason, subaccount=message.subaccount,
            )
        return self.engine.route_to(message, recipient, destination, rule=rule)


def _dispatch_base(
    submitted: dict[str, Any], recipient: str, *, attempt: int, first: datetime
) -> dict[str, Any]:
    record = {k: submitted.get(k) for k in (*_MESSAGE_FIELDS, *_CONTENT_FIELDS)}
    record.update(
        message_id=submitted["message_id"], recipient=recipient,
        from_addr=submitted["from_addr"], attempt=attempt, first_attempt_at=first,
        due_at=None, destination=None,
    )
    record["headers"] = record["headers"] or {}
    record["tags"] = record["tags"] or []
    record["metadata"] = record["metadata"] or {}
    record["size_bytes"] = record["size_bytes"] or 0
    return record


def _with_decision(base: dict[str, Any], decision: Decision) -> dict[str, Any]:
    tags = list(dict.fromkeys([*base["tags"], *decision.tags]))
    return {
        **base,
        "destination": decision.destination,
        "tags": tags,
        "metadata": {**base["metadata"], **decision.metadata},
        "throttle_key": decision.throttle_key,
        "throttle_rate": decision.throttle_rate,
        "ruleset_version": decision.ruleset_version,
        "due_at": None,
    }


def _rejected(message: Message, recipient: str, reason: str) -> EmailEvent:
    domain = recipient_domain(recipient)
    return EmailEvent(
        event_id=make_event_id("mailyard", message.message_id, recipient, "rejected"),
        type="rejected",
        esp="mailyard",
        esp_event="subaccount_suspended" if reason == SUSPENDED else "suppressed",
        timestamp=datetime.now(timezone.utc),
        recipient=recipient,
        recipient_domain=domain,
        mailbox_provider=mailbox_provider(domain),
        message_id=message.message_id,
        subaccount=message.subaccount,
        stream=message.stream,
        tags=list(message.tags),
        metadata=dict(message.metadata),
        reason=reason,
    )
