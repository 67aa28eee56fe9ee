"""REST for the Rule Engine: rules, simulation, suppressions, message status."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from streams.recorded import recorded_messages
from streams.relay import Relay
from streams.rules import (
    Message, RuleSet, RuleValidationError, StaticHealth, simulate, summarize,
)


class RulesIn(BaseModel):
    rules: dict[str, Any] | str = Field(description="A rule set as JSON, or YAML text.")
    author: str
    reason: str


class RestoreIn(BaseModel):
    version: int
    author: str
    reason: str | None = None


class SimulateIn(BaseModel):
    rules: dict[str, Any] | str | None = Field(
        None, description="Rule set to try; the current one when absent.")
    message: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    start: datetime | None = Field(None, description="Recorded messages from here...")
    end: datetime | None = Field(None, description="...to here.")


class SuppressionIn(BaseModel):
    reason: str = "added by API"


def _ruleset(data: dict[str, Any] | str, **stamp: Any) -> RuleSet:
    parsed = yaml.safe_load(data) if isinstance(data, str) else data
    if not isinstance(parsed, dict):
        raise HTTPException(422, "rules must be a mapping (JSON object or YAML).")
    # The server stamps the header (publish_rules sets created_at again), so
    # a posted rule set needs none of it.
    header = {"created_at": datetime.now(timezone.utc).isoformat(), **stamp}
    try:
        return RuleSet.from_dict({**parsed, **header})
    except RuleValidationError as exc:
        raise HTTPException(422, str(exc)) from exc


def relay_router(relay: Relay) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/messages/{message_id}")
    async def message_status(message_id: str) -> dict[str, Any]:
        entry = relay.index.get(message_id)
        if entry is None:
            raise HTTPException(404, f"No message {message_id!r} in the last day.")
        return {"message_id": message_id, **entry}

    @api.get("/v1/rules")
    async def current_rules() -> dict[str, Any]:
        if relay.rules.current is None:
            raise HTTPException(404, "No rule set has been published yet.")
        return relay.rules.versions[relay.rules.current.version]

    @api.get("/v1/rules/versions")
    async def versions() -> list[dict[str, Any]]:
        return [{k: v[k] for k in ("version", "author", "created_at", "reason")}
                for _, v in sorted(relay.rules.versions.items())]

    @api.post("/v1/rules", status_code=201)
    async def publish(body: RulesIn) -> dict[str, int]:
        candidate = _ruleset(body.rules, version=relay.rules.next_version,
                             author=body.author, reason=body.reason)
        version = await relay.publish_rules(candidate.to_dict(), author=body.author,
                                            reason=body.reason)
        return {"version": version}

    @api.post("/v1/rules/restore", status_code=201)
    async def restore(body: RestoreIn) -> dict[str, int]:
        old = relay.rules.versions.get(body.version)
        if old is None:
            raise HTTPException(404, f"There is no rule set version {body.version}.")
        reason = body.reason or f"restore version {body.version}"
        version = await relay.publish_rules(old, author=body.author, reason=reason)
        return {"version": version}

    @api.post("/v1/rules/simulate")
    async def simulate_rules(body: SimulateIn) -> dict[str, Any]:
        # A candidate is numbered as the version it would be if published
        # (rule set versions start at 1; 0 is refused by validation).
        ruleset = _ruleset(body.rules, version=relay.rules.next_version,
                           author="simulation", reason="simulation"
                           ) if body.rules else relay.rules.current
        if ruleset is None:
            raise HTTPException(404, "No rule set to simulate with.")
        records = [m for m in [body.message, *(body.messages or [])] if m]
        if body.start and body.end:
            records += await asyncio.to_thread(
                recorded_messages, relay.settings.bootstrap, body.start, body.end)
        try:
            messages = [Message.from_record(r) for r in records]
        except (TypeError, ValueError) as exc:
            raise HTTPException(422, f"Not a message: {exc}.") from exc
        decisions = simulate(ruleset, messages, relay.health)
        return {"decisions": [d.to_dict() for d in decisions],
                "summary": summarize(decisions), "messages": len(messages)}

    @api.get("/v1/suppressions/{subaccount}")
    async def suppressions(subaccount: str) -> list[dict[str, Any]]:
        return relay.suppressions.for_subaccount(subaccount)

    @api.put("/v1/suppressions/{subaccount}/{address}", status_code=201)
    async def suppress(subaccount: str, address: str, body: SuppressionIn) -> dict[str, str]:
        if "@" not in address:
            raise HTTPException(422, f"{address!r} is not an email address.")
        await relay.set_suppression(subaccount, address,
                                    {"reason": body.reason, "source": "api"})
        return {"subaccount": subaccount, "address": address.lower()}

    @api.delete("/v1/suppressions/{subaccount}/{address}", status_code=204)
    async def unsuppress(subaccount: str, address: str) -> None:
        if relay.suppressions.get(subaccount, address) is None:
            raise HTTPException(404, f"{address} is not suppressed for {subaccount}.")
        await relay.set_suppression(subaccount, address, None)

    @api.get("/v1/relay/stats")
    async def stats() -> dict[str, Any]:
        return {**relay.stats, "retries_forwarded": relay._retry.forwarded}

    return api
