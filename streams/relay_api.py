"""REST for the Rule Engine: rules, simulation, suppressions, message status.

The installation's rules (``/v1/rules*``) are for admin keys. A
subaccount's own rules (``/v1/subaccounts/{name}/rules*``, same shapes) are
for keys with ``rules:manage`` on that subaccount, and admin keys.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import yaml
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from mailyard.access import check_own, detail, require_admin, requires
from mailyard.tenancy import ApiKey, TenantDirectory
from streams.recorded import recorded_messages
from streams.relay import Relay
from streams.rules import (
    Message, RuleSet, RuleValidationError, SubaccountRules, simulate,
    summarize,
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


def _parsed(data: dict[str, Any] | str) -> Any:
    """A posted rule set: JSON as it came, or YAML text parsed (422 if it is not)."""
    if not isinstance(data, str):
        return data
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise HTTPException(422, f"rules is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise HTTPException(422, "rules nests too deeply.") from exc


def _ruleset(data: dict[str, Any] | str, **stamp: Any) -> RuleSet:
    parsed = _parsed(data)
    if not isinstance(parsed, dict):
        raise HTTPException(422, "rules must be a mapping (JSON object or YAML).")
    # The server stamps the header (publish_rules sets created_at again), so
    # a posted rule set needs none of it.
    header = {"created_at": datetime.now(timezone.utc).isoformat(), **stamp}
    try:
        return RuleSet.from_dict({**parsed, **header})
    except RuleValidationError as exc:
        raise HTTPException(422, str(exc)) from exc


def _own_rules_data(data: dict[str, Any] | str) -> dict[str, Any]:
    """A posted subaccount rule set as a mapping; YAML text may be a bare list."""
    parsed = _parsed(data)
    if isinstance(parsed, list):
        parsed = {"rules": parsed}
    if not isinstance(parsed, dict):
        raise HTTPException(422, "rules must be a mapping with a rules list, or a list.")
    return parsed


def _installation(relay: Relay) -> RuleSet:
    """The installation's current rule set, whose destinations own rules name."""
    if relay.rules.current is None:
        raise HTTPException(409, "No installation rule set is published yet; a "
                            "subaccount's rules name its destinations (POST /v1/rules).")
    return relay.rules.current


def _candidate(relay: Relay, name: str, data: dict[str, Any]) -> SubaccountRules:
    """``data`` as ``name``'s next version would be, checked but not published."""
    installation = _installation(relay)
    header = {"subaccount": name, "version": relay.rules.next_subaccount_version(name),
              "author": "simulation", "reason": "simulation",
              "created_at": datetime.now(timezone.utc).isoformat()}
    try:
        return SubaccountRules.from_dict({**data, **header}, installation.destinations)
    except RuleValidationError as exc:
        raise HTTPException(422, str(exc)) from exc


_INVALID = detail("The request is invalid: FastAPI's list of fields, or a sentence "
                  "naming the rule and field.")
_NO_INSTALLATION_RULES = detail("No installation rule set is published yet.")
_UNKNOWN_SUBACCOUNT = detail("There is no such subaccount.")


def relay_router(relay: Relay, tenants: TenantDirectory) -> APIRouter:
    api = APIRouter()
    admin = Depends(require_admin(tenants))
    reader = Depends(requires(tenants, "events:read"))
    suppressor = Depends(requires(tenants, "suppressions:manage"))
    rules_manager = Depends(requires(tenants, "rules:manage"))

    @api.get(
        "/v1/messages/{message_id}", summary="A message's decisions and deliveries",
        responses={404: detail("No such message of this key's in the last day.")},
    )
    async def message_status(message_id: str, key: ApiKey = reader) -> dict[str, Any]:
        entry = relay.index.get(message_id)
        # Another subaccount's message is answered as if it did not exist.
        if entry is None or not (key.is_admin or relay.index.owner(message_id) == key.subaccount):
            raise HTTPException(404, f"No message {message_id!r} in the last day.")
        return {"message_id": message_id, **entry}

    @api.get(
        "/v1/rules", summary="The current rule set", dependencies=[admin],
        responses={404: detail("No rule set has been published yet.")},
    )
    async def current_rules() -> dict[str, Any]:
        if relay.rules.current is None:
            raise HTTPException(404, "No rule set has been published yet.")
        return relay.rules.versions[relay.rules.current.version]

    @api.get(
        "/v1/rules/versions", summary="Every rule set version's header",
        dependencies=[admin],
    )
    async def versions() -> list[dict[str, Any]]:
        return [{k: v[k] for k in ("version", "author", "created_at", "reason")}
                for _, v in sorted(relay.rules.versions.items())]

    @api.post(
        "/v1/rules", status_code=201, summary="Validate and publish a rule set",
        dependencies=[admin], responses={422: _INVALID},
    )
    async def publish(body: RulesIn) -> dict[str, int]:
        candidate = _ruleset(body.rules, version=relay.rules.next_version,
                             author=body.author, reason=body.reason)
        version = await relay.publish_rules(candidate.to_dict(), author=body.author,
                                            reason=body.reason)
        return {"version": version}

    @api.post(
        "/v1/rules/restore", status_code=201,
        summary="Publish an earlier rule set version again", dependencies=[admin],
        responses={404: detail("There is no such version."), 422: _INVALID},
    )
    async def restore(body: RestoreIn) -> dict[str, int]:
        old = relay.rules.versions.get(body.version)
        if old is None:
            raise HTTPException(404, f"There is no rule set version {body.version}.")
        reason = body.reason or f"restore version {body.version}"
        version = await relay.publish_rules(old, author=body.author, reason=reason)
        return {"version": version}

    @api.post(
        "/v1/rules/simulate", summary="Decide messages with a rule set, sending none",
        dependencies=[admin],
        responses={404: detail("No rule set given or published."), 422: _INVALID},
    )
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

    def known(key: ApiKey, name: str) -> None:
        check_own(key, name)
        if name not in tenants.subaccounts:
            raise HTTPException(404, f"There is no subaccount {name!r}.")

    async def publish_own(name: str, data: dict[str, Any], author: str,
                          reason: str) -> dict[str, int]:
        _installation(relay)
        try:
            version = await relay.publish_subaccount_rules(
                name, data, author=author, reason=reason)
        except RuleValidationError as exc:
            raise HTTPException(422, str(exc)) from exc
        return {"version": version}

    @api.get(
        "/v1/subaccounts/{name}/rules", summary="A subaccount's own rules",
        responses={404: detail("No such subaccount, or it has no rules of its own.")},
    )
    async def own_rules(name: str, key: ApiKey = rules_manager) -> dict[str, Any]:
        known(key, name)
        data = relay.rules.subaccount_rules(name)
        if data is None:
            raise HTTPException(404, f"Subaccount {name} has no rules of its own; "
                                "the installation's rules decide its mail.")
        return data

    @api.get(
        "/v1/subaccounts/{name}/rules/versions",
        summary="Every version's header of a subaccount's own rules",
        responses={404: _UNKNOWN_SUBACCOUNT},
    )
    async def own_versions(name: str, key: ApiKey = rules_manager) -> list[dict[str, Any]]:
        known(key, name)
        found = relay.rules.subaccount_versions.get(name, {})
        return [{k: v.get(k) for k in ("version", "author", "created_at", "reason")}
                for _, v in sorted(found.items())]

    @api.post(
        "/v1/subaccounts/{name}/rules", status_code=201,
        summary="Validate and publish a subaccount's own rules",
        responses={404: _UNKNOWN_SUBACCOUNT, 409: _NO_INSTALLATION_RULES,
                   422: _INVALID},
    )
    async def publish_own_rules(
        name: str, body: RulesIn, key: ApiKey = rules_manager
    ) -> dict[str, int]:
        known(key, name)
        return await publish_own(name, _own_rules_data(body.rules), body.author,
                                 body.reason)

    @api.post(
        "/v1/subaccounts/{name}/rules/restore", status_code=201,
        summary="Publish an earlier version of a subaccount's rules again",
        responses={404: detail("No such subaccount or version."),
                   409: _NO_INSTALLATION_RULES, 422: _INVALID},
    )
    async def restore_own_rules(
        name: str, body: RestoreIn, key: ApiKey = rules_manager
    ) -> dict[str, int]:
        known(key, name)
        old = relay.rules.subaccount_versions.get(name, {}).get(body.version)
        if old is None:
            raise HTTPException(404, f"Subaccount {name} has no rules version "
                                f"{body.version}.")
        reason = body.reason or f"restore version {body.version}"
        return await publish_own(name, {"rules": old.get("rules")}, body.author, reason)

    @api.post(
        "/v1/subaccounts/{name}/rules/simulate",
        summary="Decide a subaccount's messages with its rules, sending none",
        responses={404: _UNKNOWN_SUBACCOUNT, 409: _NO_INSTALLATION_RULES,
                   422: _INVALID},
    )
    async def simulate_own_rules(
        name: str, body: SimulateIn, key: ApiKey = rules_manager
    ) -> dict[str, Any]:
        known(key, name)
        installation = _installation(relay)
        live = relay.rules.subaccount_rules(name)
        data = _own_rules_data(body.rules) if body.rules else live
        # Without rules of its own, its mail is simulated on the installation's.
        own = None if data is None else _candidate(relay, name, data)
        # Only this subaccount's messages: given ones are taken as its own.
        records = [{**m, "subaccount": name}
                   for m in [body.message, *(body.messages or [])] if m]
        if body.start and body.end:
            recorded = await asyncio.to_thread(
                recorded_messages, relay.settings.bootstrap, body.start, body.end)
            records += [r for r in recorded if r.get("subaccount") == name]
        try:
            messages = [Message.from_record(r) for r in records]
        except (TypeError, ValueError) as exc:
            raise HTTPException(422, f"Not a message: {exc}.") from exc
        decisions = simulate(installation, messages, relay.health, own=own)
        return {"decisions": [d.to_dict() for d in decisions],
                "summary": summarize(decisions), "messages": len(messages)}

    @api.get("/v1/suppressions/{subaccount}", summary="A subaccount's suppressions")
    async def suppressions(subaccount: str, key: ApiKey = suppressor) -> list[dict[str, Any]]:
        check_own(key, subaccount)
        return relay.suppressions.for_subaccount(subaccount)

    @api.put(
        "/v1/suppressions/{subaccount}/{address}", status_code=201,
        summary="Suppress an address for a subaccount", responses={422: _INVALID},
    )
    async def suppress(
        subaccount: str, address: str, body: SuppressionIn, key: ApiKey = suppressor
    ) -> dict[str, str]:
        check_own(key, subaccount)
        if "@" not in address:
            raise HTTPException(422, f"{address!r} is not an email address.")
        await relay.set_suppression(subaccount, address,
                                    {"reason": body.reason, "source": "api"})
        return {"subaccount": subaccount, "address": address.lower()}

    @api.delete(
        "/v1/suppressions/{subaccount}/{address}", status_code=204,
        summary="Lift a suppression",
        responses={404: detail("The address is not suppressed for the subaccount.")},
    )
    async def unsuppress(subaccount: str, address: str, key: ApiKey = suppressor) -> None:
        check_own(key, subaccount)
        if relay.suppressions.get(subaccount, address) is None:
            raise HTTPException(404, f"{address} is not suppressed for {subaccount}.")
        await relay.set_suppression(subaccount, address, None)

    @api.get(
        "/v1/relay/stats", summary="This worker's routing and dispatch counters",
        dependencies=[admin],
    )
    async def stats() -> dict[str, Any]:
        return {**relay.stats, "retries_forwarded": relay._retry.forwarded}

    return api
