"""API keys over HTTP: one FastAPI dependency per scope, shared by every API.

Every endpoint but the webhooks (which ESPs authenticate with their own
signatures) and the health probes takes ``Authorization: Bearer myk_...``.
A missing or unusable key is 401, a key without the endpoint's scope or
for another subaccount is 403, a key over its rate is 429 with
``Retry-After``. Rate limits are counted per process: with N gateways a
key may make up to N times its rate in all.

The OpenAPI document says the same: :func:`document_refusals` names each
operation's scope and its key refusals, read from the ``requires``
dependency the route really has, and :func:`refusal` and :func:`detail`
describe the two error bodies the APIs send.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from mailyard.tenancy import AccessError, ApiKey, Scope, TenantDirectory

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A Mailyard API key, `myk_<id>_<secret>`: an admin key, or a "
    "subaccount key with the scope the endpoint names.",
)
Dependency = Callable[..., Coroutine[Any, Any, ApiKey]]


def install_error_handler(api: FastAPI) -> None:
    @api.exception_handler(AccessError)
    async def _access_error(_request: Request, exc: AccessError) -> JSONResponse:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="mailyard"'
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return JSONResponse({"error": exc.detail}, exc.status, headers=headers)


def requires(directory: TenantDirectory, scope: Scope) -> Dependency:
    """A dependency that yields the caller's key once it may use ``scope``."""

    async def dependency(
        # The scope goes into the operation's security requirement as a role.
        credentials: HTTPAuthorizationCredentials | None = Security(
            BEARER, scopes=[scope]
        ),
    ) -> ApiKey:
        key = directory.authenticate(credentials.credentials if credentials else None)

        wait = directory.throttle(key)
        if wait > 0:
            raise AccessError(
                429,
                f"API key {key.key_id} is over its {key.rate_per_s:g} requests/s.",
                retry_after=wait,
            )

        if not (key.is_admin or scope in key.scopes):
            raise AccessError(
                403,
                f"API key {key.key_id} lacks the {scope!r} scope this endpoint needs.",
            )
        return key

    dependency.__name__ = f"requires_{scope.replace(':', '_')}"
    return dependency


def check_own(key: ApiKey, subaccount: str | None) -> None:
    """403 unless ``key`` may act for ``subaccount`` (admins act for all)."""
    if key.is_admin or key.subaccount == subaccount:
        return
    raise AccessError(
        403,
        f"API key {key.key_id} belongs to subaccount {key.subaccount!r}, "
        f"not {subaccount!r}.",
    )


def scoped_subaccount(key: ApiKey, requested: str | None) -> str | None:
    """The subaccount a request is about: a subaccount key's own, always."""
    if key.is_admin:
        return requested
    if requested is not None and requested != key.subaccount:
        check_own(key, requested)
    return key.subaccount


def require_admin(directory: TenantDirectory) -> Dependency:
    return requires(directory, "admin")


# --- the OpenAPI document ----------------------------------------------------


class ErrorBody(BaseModel):
    """A refusal from the gateway, or from any API's key check."""

    model_config = ConfigDict(extra="allow")
    error: str = Field(description="What was wrong, as a sentence, and what to change.")


class DetailBody(BaseModel):
    """A refusal raised inside a worker API endpoint, in FastAPI's own shape."""

    detail: str | list[dict[str, Any]] = Field(
        description="A sentence, or FastAPI's list of invalid inputs (loc, msg, type)."
    )


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}


def refusal(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    """One ``responses=`` entry whose body is ``{"error": "..."}``."""
    response: dict[str, Any] = {"model": ErrorBody, "description": description}
    if retry_after:
        response["headers"] = {"Retry-After": _RETRY_AFTER}
    return response


def detail(description: str) -> dict[str, Any]:
    """One ``responses=`` entry whose body is ``{"detail": ...}`` (HTTPException)."""
    return {"model": DetailBody, "description": description}


def _key_refusals() -> dict[str, dict[str, Any]]:
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    challenge = {
        "description": 'Always `Bearer realm="mailyard"`.',
        "schema": {"type": "string"},
    }
    return {
        "401": {
            "description": "No API key, or one that is malformed, unknown, "
            "expired, revoked or of a deleted subaccount.",
            "headers": {"WWW-Authenticate": challenge},
            "content": body,
        },
        "403": {
            "description": "The key lacks the scope, or acts for another subaccount.",
            "content": body,
        },
        "429": {
            "description": "The key is over its requests per second.",
            "headers": {"Retry-After": _RETRY_AFTER},
            "content": body,
        },
    }


def document_refusals(api: FastAPI) -> None:
    """Add the refusals that many routes share to ``api``'s OpenAPI document.

    Each operation's scope and key refusals are read from the security
    requirement :func:`requires` puts on its route, so the document cannot
    promise a check the route lacks; an operation whose JSON body FastAPI
    parses gets FastAPI's 400 for a body that does not parse. A route's own
    entry for a status wins.
    """
    build = api.openapi

    def openapi() -> dict[str, Any]:
        fresh = api.openapi_schema is None
        schema = build()
        if fresh:
            _describe_refusals(schema)
        return schema

    # FastAPI's documented way to extend the generated document.
    api.openapi = openapi  # type: ignore[method-assign]


def _describe_refusals(schema: dict[str, Any]) -> None:
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    schemas.setdefault("DetailBody", DetailBody.model_json_schema())
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            body_types = operation.get("requestBody", {}).get("content", {})
            if "application/json" in body_types:
                responses.setdefault("400", _UNPARSED_BODY)
            scopes = [
                scope
                for requirement in operation.get("security", [])
                for scope in requirement.get(BEARER.scheme_name, [])
            ]
            if not scopes:
                continue
            line = f"Scope: {', '.join(scopes)}."
            described = operation.get("description")
            operation["description"] = f"{line}\n\n{described}" if described else line
            for status, response in _key_refusals().items():
                responses.setdefault(status, response)


_UNPARSED_BODY = {
    "description": "The body is not JSON (FastAPI's own reply).",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/DetailBody"}}
    },
}
