"""API keys over HTTP: one FastAPI dependency per scope, shared by every API.

Every endpoint but the webhooks (which ESPs authenticate with their own
signatures) and the health probes takes ``Authorization: Bearer myk_...``.
A missing or unusable key is 401, a key without the endpoint's scope or
for another subaccount is 403, a key over its rate is 429 with
``Retry-After``. Rate limits are counted per process: with N gateways a
key may make up to N times its rate in all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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
        credentials: HTTPAuthorizationCredentials | None = Security(BEARER),
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
