"""Dispatch: one routed delivery in, the provider's answer out as an event.

The dispatcher agent hands each ``Dispatch`` record to the sink of its
destination (an ESP's HTTP API or an SMTP relay), waits for the answer and
turns it into a normalized event on ``mailyard.events`` (the same topic the
ESP connectors write to). A deferral is parked on the delayed-retry tier
whose wait covers the retry policy's backoff; once the message is older
than the policy's maximum age it fails for good, with a ``failed`` event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from mailyard.codec import codec
from mailyard.errors import ConfigError
from mailyard.model import EmailEvent, make_event_id
from mailyard.outbound import MESSAGE_ID_HEADER, Delivery, SendResult
from mailyard.providers import mailbox_provider, recipient_domain
from mailyard.topics import EVENTS, REROUTE, RETRIES, RETRY_TIERS_S
from sinks.registry import build_esp_sink
from sinks.retry import RetryPolicy
from sinks.smtp_relay import SmtpRelay
from streams.producer import Record
from streams.rules import Destination, RuleSet
from streams.state import DESTINATION_KEY, ERROR_KEY

log = logging.getLogger(__name__)

_DISPATCH = codec("dispatch")
_EVENT = codec("email_event")
_TYPES = {"accepted": "sent", "deferred": "deferred", "bounced": "bounced",
          "failed": "failed"}


class Sink(Protocol):
    async def send(self, delivery: Delivery) -> SendResult: ...
    async def aclose(self) -> None: ...


def build_sink(dest: Destination, environ: Mapping[str, str]) -> Sink:
    config = dest.sink_config()
    if dest.kind == "esp_http":
        return build_esp_sink(config, environ=environ)
    if dest.kind == "smtp_relay":
        creds = dest.credentials
        secret = {k: environ.get(v) for k, v in creds.items() if k != "env"}
        if "password" in creds and secret.get("password") is None:
            raise ConfigError(f"Destination {dest.name}: {creds['password']} is not set.")
        return SmtpRelay(
            host=dest.host or "127.0.0.1", port=dest.port or 25,
            username=secret.get("username"), password=secret.get("password"),
            starttls=config.get("starttls", "opportunistic"),
            timeout_s=float(config.get("timeout_s", 30)),
            max_connections=int(config.get("max_connections", 4)),
        )
    raise ConfigError(f"Destination {dest.name}: kind {dest.kind} has no sink yet.")


class SinkPool:
    """One sink per destination, rebuilt when the destination's config changes."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self._sinks: dict[str, tuple[Destination, Sink]] = {}

    def get(self, dest: Destination) -> Sink:
        known = self._sinks.get(dest.name)
        if known is not None and known[0] == dest:
            return known[1]
        sink = build_sink(dest, self.environ)
        self._sinks[dest.name] = (dest, sink)
        return sink

    async def aclose(self) -> None:
        for _, sink in self._sinks.values():
            await sink.aclose()


# A throttled delivery waits in process for at most this long; a longer wait
# would hold up its whole batch, so it waits on a retry tier instead.
THROTTLE_HOLD_S = 2.0


class TokenBuckets:
    """Per-key rate limits; waiters are released in the order they arrived."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, key: str, rate: float, max_wait: float | None = None) -> float:
        """Wait for ``key``'s next slot at ``rate`` per second; return 0.

        With ``max_wait``, a slot further away than that is not taken: the
        wait it would have needed is returned at once, for the caller to
        hold the delivery elsewhere instead of blocking its batch.
        """
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # asyncio.Lock wakes waiters first-in, first-out
            now = self._clock()
            due = max(self._next.get(key, now), now)
            if max_wait is not None and due - now > max_wait:
                return due - now
            self._next[key] = due + 1.0 / rate
            if due > now:
                await asyncio.sleep(due - now)
        return 0.0


# Headers a sink builds from the delivery's own fields; providers refuse them
# as custom headers (SendGrid answers 400 for each of these).
_STRUCTURAL = frozenset({
    "from", "to", "cc", "bcc", "subject", "content-type",
    "content-transfer-encoding", "mime-version",
})


def delivery_of(record: dict[str, Any]) -> Delivery:
    headers = {k: v for k, v in record["headers"].items()
               if k.lower() not in _STRUCTURAL}
    headers[MESSAGE_ID_HEADER] = record["message_id"]
    return Delivery(
        message_id=record["message_id"], recipient=record["recipient"],
        from_addr=record["from_addr"], subject=record["subject"],
        text=record["text"], html=record["html"], raw_mime=record["raw_mime"],
        headers=headers, tags=list(record["tags"]), metadata=dict(record["metadata"]),
        subaccount=record["subaccount"], stream=record["stream"],
        attempt=record["attempt"],
    )


class Dispatcher:
    def __init__(
        self,
        ruleset: Callable[[], RuleSet | None],
        *,
        pool: SinkPool | None = None,
        policy: RetryPolicy | None = None,
        tiers: tuple[tuple[int, str], ...] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.pool = pool or SinkPool()
        self.policy = policy or RetryPolicy()
        self.tiers = tiers or tuple(zip(RETRY_TIERS_S, (t.name for t in RETRIES)))
        self.buckets = TokenBuckets()

    async def dispatch(self, record: dict[str, Any]) -> list[Record]:
        rules = self.ruleset()
        dest = rules.destinations.get(record["destination"]) if rules else None
        if dest is None:
            # The rule set changed under this delivery: route it again.
            log.warning("destination %s is gone; rerouting %s", record["destination"],
                        record["message_id"])
            return [(REROUTE.name, record["message_id"].encode(), _DISPATCH.encode(
                {**record, "destination": None}))]
        try:
            sink = self.pool.get(dest)
        except ConfigError as exc:
            result = SendResult("failed", str(exc))
        else:
            wait = await self._throttle(record, dest)
            if wait > 0:
                return [self._hold(record, wait)]
            result = await sink.send(delivery_of(record))
        return self._outcome(record, dest, result)

    async def _throttle(self, record: dict[str, Any], dest: Destination) -> float:
        """0 once the delivery may go; else how long it would have to wait."""
        if record.get("throttle_key") and record.get("throttle_rate"):
            return await self.buckets.acquire(
                record["throttle_key"], record["throttle_rate"], THROTTLE_HOLD_S)
        if dest.max_rate:
            return await self.buckets.acquire(dest.name, dest.max_rate, THROTTLE_HOLD_S)
        return 0.0

    def _tier(self, seconds: float) -> tuple[int, str]:
        """The retry tier whose wait covers ``seconds`` (the longest if none does)."""
        return next(((s, t) for s, t in self.tiers if s >= seconds), self.tiers[-1])

    def _hold(self, record: dict[str, Any], wait: float) -> Record:
        """Over its rate by more than a moment: wait on a retry tier, not here.

        Not an attempt and not a deferral event (those feed the failover
        health); the router decides again when it falls due.
        """
        tier, topic = self._tier(wait)
        due = datetime.now(timezone.utc) + timedelta(seconds=tier)
        log.info("throttled %s for %s: held %ss on %s", record["message_id"],
                 record["recipient"], tier, topic)
        held = {**record, "due_at": due, "destination": None}
        return (topic, record["message_id"].encode(), _DISPATCH.encode(held))

    def _outcome(
        self, record: dict[str, Any], dest: Destination, result: SendResult
    ) -> list[Record]:
        out = [_event_record(record, dest, result, _TYPES[result.outcome])]
        if result.outcome != "deferred":
            return out
        now = time.time()
        first = record["first_attempt_at"].timestamp()
        delay = self.policy.next_attempt(first, record["attempt"], now, result)
        if delay is None:
            hours = (now - first) / 3600
            gave_up = SendResult(
                "failed", f"gave up after {record['attempt']} attempts over "
                f"{hours:.1f} h; last answer: {result.detail}",
                smtp_code=result.smtp_code, http_status=result.http_status,
            )
            out.append(_event_record(record, dest, gave_up, "failed", final=True))
            return out
        wait, topic = self._tier(delay)
        due = datetime.now(timezone.utc) + timedelta(seconds=wait)
        retry = {**record, "attempt": record["attempt"] + 1, "due_at": due,
                 "destination": None}
        out.append((topic, record["message_id"].encode(), _DISPATCH.encode(retry)))
        return out


def _event_record(
    record: dict[str, Any], dest: Destination, result: SendResult, type_: str,
    *, final: bool = False,
) -> Record:
    domain = recipient_domain(record["recipient"])
    outcome = "gave-up" if final else result.outcome
    transient_error = result.outcome == "deferred" and (
        result.smtp_code is None and (result.http_status is None or result.http_status >= 500)
    )
    metadata = {**record["metadata"], DESTINATION_KEY: dest.name,
                "mailyard_attempt": str(record["attempt"])}
    if transient_error or result.outcome == "failed":
        metadata[ERROR_KEY] = "1"
    bounced = type_ == "bounced"
    event = EmailEvent(
        event_id=make_event_id("mailyard", record["message_id"], record["recipient"],
                               outcome, record["attempt"]),
        type=type_,  # type: ignore[arg-type]
        esp=dest.provider or dest.kind,
        esp_event=f"dispatch:{outcome}",
        timestamp=datetime.now(timezone.utc),
        recipient=record["recipient"], recipient_domain=domain,
        mailbox_provider=mailbox_provider(domain),
        esp_message_id=result.provider_message_id, message_id=record["message_id"],
        subaccount=record["subaccount"], stream=record["stream"],
        tags=list(record["tags"]), metadata=metadata,
        bounce_class="hard" if bounced else ("soft" if type_ == "deferred" else None),
        smtp_code=result.smtp_code, enhanced_status=result.enhanced_status,
        reason=result.detail,
    )
    return (EVENTS.name, event.event_id.encode(), _EVENT.encode(event.to_record()))
