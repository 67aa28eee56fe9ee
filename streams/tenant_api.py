"""REST for subaccounts, API keys and webhook credentials.

Admin keys manage everything here; a subaccount key may read its own
subaccount record. Every change is a record on ``mailyard.tenants``,
confirmed by the broker before the reply, and applied to this worker's
directory at once; other processes see it within their reader's poll.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, ConfigDict, Field

from connectors.registry import esp_names
from connectors.webhook_auth import validate_config
from mailyard import tenant_ops
from mailyard.access import check_own, detail, require_admin, requires
from mailyard.tenancy import ApiKey, TenantDirectory

Publish = Callable[[list[tenant_ops.TenantRecord]], Awaitable[None]]


class SubaccountIn(BaseModel):
    name: str = Field(description="1-64 letters, digits, '.', '_' or '-'.")
    pinned_destination: str | None = Field(
        None, description="Send all of its mail through this destination; "
        "null hands its mail to the Rule Engine.")
    webhook_auth: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per ESP, how its webhooks are verified.")


class SubaccountPatch(BaseModel):
    status: Literal["active", "suspended"] | None = None
    pinned_destination: str | None = Field(
        "", description="A destination name, null for the Rule Engine; "
        "absent leaves it as it is.")
    webhook_auth: dict[str, dict[str, Any] | None] | None = Field(
        None, description="Per ESP: new credentials, or null to remove them.")


class KeyIn(BaseModel):
    subaccount: str | None = Field(None, description="null makes an admin key.")
    scopes: list[str] = Field(default_factory=list)
    name: str = ""
    rate_per_s: float | None = Field(None, gt=0)
    expires_at: float | None = Field(None, description="Unix time it stops working.")


class RotateIn(BaseModel):
    overlap_s: float = Field(3600.0, ge=0, description="How long the old key still works.")


class SubaccountOut(BaseModel):
    # Fields added to Subaccount.public() later are passed on, not dropped.
    model_config = ConfigDict(extra="allow")

    name: str
    status: Literal["active", "suspended"]
    pinned_destination: str | None
    webhook_auth: list[str] = Field(description="ESPs with webhook auth set; "
                                    "their secrets are never shown.")
    created_at: float
    updated_at: float


class KeyOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    key_id: str
    subaccount: str | None = Field(description="null for an admin key.")
    scopes: list[str]
    name: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    rate_per_s: float


class NewKeyOut(KeyOut):
    key: str = Field(description="The key's text, `myk_<id>_<secret>`: shown once.")


class RotatedKeyOut(NewKeyOut):
    replaces: str = Field(description="The old key, which works until its expires_at.")


class ConfiguredOut(BaseModel):
    configured: list[str] = Field(description="ESPs with installation webhook auth.")


# Documented as an enum; any other name is answered 422.
EspName = Annotated[str, Path(json_schema_extra={"enum": esp_names()})]
_INVALID = detail("The request is invalid: FastAPI's list of fields, or a sentence.")
Responses = dict[int | str, dict[str, Any]]
_UNKNOWN_SUBACCOUNT: Responses = {404: detail("There is no such subaccount.")}
_UNKNOWN_KEY: Responses = {
    404: detail("There is no such API key (or, creating one, subaccount).")
}


def _checked_auth(auth: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    known = set(esp_names())
    checked: dict[str, Any] = {}
    for esp, config in auth.items():
        if esp not in known:
            raise HTTPException(422, f"webhook_auth names unknown ESP {esp!r}.")
        try:
            checked[esp] = None if config is None else validate_config(esp, config)
        except ValueError as exc:
            raise HTTPException(422, f"webhook_auth.{esp}: {exc}") from exc
    return checked


def _translate(exc: Exception) -> HTTPException:
    status = getattr(exc, "status", 422)
    return HTTPException(status, str(exc))


def tenant_router(
    directory: TenantDirectory,
    send: Publish,
    forget: Callable[[str], Awaitable[None]] | None = None,
) -> APIRouter:
    """The router; ``forget(name)`` drops what other stores hold for a deleted subaccount."""
    api = APIRouter(tags=["subaccounts and keys"])
    admin = Depends(require_admin(directory))
    reader = Depends(requires(directory, "events:read"))

    async def publish(records: list[tenant_ops.TenantRecord]) -> None:
        await send(records)
        for key, value in records:
            directory.apply(key.decode(), value)

    @api.post(
        "/v1/subaccounts", status_code=201, summary="Create a subaccount",
        response_model=SubaccountOut, dependencies=[admin],
        responses={409: detail("The subaccount exists already."), 422: _INVALID},
    )
    async def create_subaccount(body: SubaccountIn) -> dict[str, Any]:
        try:
            records, sub = tenant_ops.create_subaccount(
                directory, body.name, pinned_destination=body.pinned_destination,
                webhook_auth=_checked_auth(dict(body.webhook_auth)),
            )
        except (ValueError, LookupError) as exc:
            raise _translate(exc) from exc
        await publish(records)
        return sub.public()

    @api.get(
        "/v1/subaccounts", summary="List subaccounts (a subaccount key: its own)",
        response_model=list[SubaccountOut],
    )
    async def list_subaccounts(key: ApiKey = reader) -> list[dict[str, Any]]:
        return [s.public() for name, s in sorted(directory.subaccounts.items())
                if key.is_admin or name == key.subaccount]

    @api.get(
        "/v1/subaccounts/{name}", summary="Read a subaccount",
        response_model=SubaccountOut, responses=_UNKNOWN_SUBACCOUNT,
    )
    async def get_subaccount(name: str, key: ApiKey = reader) -> dict[str, Any]:
        check_own(key, name)
        sub = directory.subaccounts.get(name)
        if sub is None:
            raise HTTPException(404, f"There is no subaccount {name!r}.")
        return sub.public()

    @api.patch(
        "/v1/subaccounts/{name}",
        summary="Suspend, resume, pin or change a subaccount's webhook auth",
        response_model=SubaccountOut, dependencies=[admin],
        responses={**_UNKNOWN_SUBACCOUNT, 422: _INVALID},
    )
    async def update_subaccount(name: str, body: SubaccountPatch) -> dict[str, Any]:
        changes: dict[str, Any] = {"status": body.status}
        if "pinned_destination" in body.model_fields_set:
            changes["pinned_destination"] = body.pinned_destination
        if body.webhook_auth is not None:
            changes["webhook_auth"] = _checked_auth(body.webhook_auth)
        try:
            records, sub = tenant_ops.update_subaccount(directory, name, **changes)
        except (ValueError, LookupError) as exc:
            raise _translate(exc) from exc
        await publish(records)
        return sub.public()

    @api.delete(
        "/v1/subaccounts/{name}", status_code=204,
        summary="Delete a subaccount and its keys", dependencies=[admin],
        responses=_UNKNOWN_SUBACCOUNT,
    )
    async def delete_subaccount(name: str) -> None:
        try:
            records = tenant_ops.delete_subaccount(directory, name)
        except LookupError as exc:
            raise _translate(exc) from exc
        await publish(records)
        # A later subaccount of the same name must not inherit its rules.
        if forget is not None:
            await forget(name)

    @api.post(
        "/v1/keys", status_code=201, summary="Create an API key",
        response_model=NewKeyOut, dependencies=[admin],
        responses={**_UNKNOWN_KEY, 422: _INVALID},
    )
    async def create_key(body: KeyIn) -> dict[str, Any]:
        try:
            records, key, text = tenant_ops.create_key(
                directory, body.subaccount, body.scopes, name=body.name,
                rate_per_s=body.rate_per_s, expires_at=body.expires_at,
            )
        except (ValueError, LookupError) as exc:
            raise _translate(exc) from exc
        await publish(records)
        return {**key.public(), "key": text}

    @api.get(
        "/v1/keys", summary="List API keys, without secrets",
        response_model=list[KeyOut], dependencies=[admin],
    )
    async def list_keys(subaccount: str | None = None) -> list[dict[str, Any]]:
        keys = directory.keys.values()
        return [k.public() for k in sorted(keys, key=lambda k: k.created_at)
                if subaccount is None or k.subaccount == subaccount]

    @api.post(
        "/v1/keys/{key_id}/rotate", status_code=201,
        summary="Replace a key; the old one works for overlap_s more",
        response_model=RotatedKeyOut, dependencies=[admin],
        responses={**_UNKNOWN_KEY, 409: detail("The key has expired or was revoked."),
                   422: _INVALID},
    )
    async def rotate_key(key_id: str, body: RotateIn) -> dict[str, Any]:
        try:
            records, key, text = tenant_ops.rotate_key(
                directory, key_id, overlap_s=body.overlap_s)
        except (ValueError, LookupError) as exc:
            raise _translate(exc) from exc
        await publish(records)
        return {**key.public(), "key": text, "replaces": key_id}

    @api.delete(
        "/v1/keys/{key_id}", summary="Revoke an API key",
        response_model=KeyOut, dependencies=[admin], responses=_UNKNOWN_KEY,
    )
    async def revoke_key(key_id: str) -> dict[str, Any]:
        try:
            records, key = tenant_ops.revoke_key(directory, key_id)
        except LookupError as exc:
            raise _translate(exc) from exc
        await publish(records)
        return key.public()

    @api.get(
        "/v1/webhook-auth", summary="ESPs with installation webhook auth",
        response_model=ConfiguredOut, dependencies=[admin],
    )
    async def installation_webhook_auth() -> dict[str, list[str]]:
        return {"configured": sorted(directory.installation.get("webhook_auth", {}))}

    @api.put(
        "/v1/webhook-auth/{esp}", summary="Set how /webhooks/{esp} checks webhooks",
        response_model=ConfiguredOut, dependencies=[admin],
        responses={422: _INVALID},
    )
    async def set_installation_webhook_auth(
        esp: EspName, config: dict[str, Any]
    ) -> dict[str, list[str]]:
        checked = _checked_auth({esp: config})[esp]
        await publish(tenant_ops.set_installation_webhook_auth(directory, esp, checked))
        return {"configured": sorted(directory.installation["webhook_auth"])}

    return api
