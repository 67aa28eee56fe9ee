"""REST over the worker's state: live counts, health and readiness.

The API runs inside the worker process, because the counts live in the
worker's ledger table. With several
workers each one answers for the partitions it holds.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mailyard.access import (
    detail, document_refusals, install_error_handler, require_admin, requires,
    scoped_subaccount,
)
from mailyard.model import EVENT_TYPES
from mailyard.tenancy import ApiKey
from streams.app import Worker
from streams.ledger import query_counts
from streams.tenant_api import tenant_router


def _minute(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return int(ts.timestamp()) // 60


class Readiness(BaseModel):
    ready: bool
    rebalancing: bool = Field(description="A stage is being assigned partitions.")
    stages: dict[str, list[str]] = Field(
        description="Each stage's partitions, as topic[partition].")
    failing: list[str] = Field(
        description="Stages whose last batch failed and is being read again.")
    tenants: bool = Field(description="`mailyard.tenants` was read to its end.")


class CountRow(BaseModel):
    subaccount: str | None
    esp: str
    type: str
    count: int
    minute: str | None = Field(
        None, description="With resolution=minute: the minute's start, UTC.")


class Counts(BaseModel):
    total: int
    rows: list[CountRow]


_NO_KEY: dict[str, Any] = {"security": []}


def create_api(worker: Worker) -> FastAPI:
    api = FastAPI(title="Mailyard worker API", version="0.1.0")
    install_error_handler(api)
    document_refusals(api)
    tenants = worker.tenants

    @api.get("/healthz", summary="Liveness: the process answers", openapi_extra=_NO_KEY)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get(
        "/readyz", summary="Readiness: stages hold their partitions and are not "
        "failing, tenants read",
        responses={200: {"model": Readiness, "description": "Ready."},
                   503: {"model": Readiness, "description": "Not ready."}},
        openapi_extra=_NO_KEY,
    )
    async def readyz() -> JSONResponse:
        tenants_read = worker.tenants_ready.is_set()
        rebalancing = any(stage.rebalancing for stage in worker.stages)
        ready = bool(worker.app.started) and worker.stages_ready and tenants_read
        stages = {
            stage.name: [f"{tp.topic}[{tp.partition}]" for tp in sorted(stage.assignment)]
            for stage in worker.stages
        }
        failing = [stage.name for stage in worker.stages if stage.failing]
        if worker.relay is not None and worker.relay.retry_failing:
            failing.append("retry")
        ready = ready and not failing
        body = {"ready": ready, "rebalancing": rebalancing, "tenants": tenants_read,
                "stages": stages, "failing": failing}
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get(
        "/v1/stats", summary="This worker's record and event counters",
        dependencies=[Depends(require_admin(tenants))],
    )
    async def stats() -> dict[str, int]:
        return dataclasses.asdict(worker.stats)

    @api.get(
        "/v1/counts", summary="Event counts by subaccount, ESP and type",
        description="A subaccount key counts its own subaccount's events only. "
        "This worker answers for the ledger partitions it holds.",
        response_model=Counts, response_model_exclude_unset=True,
        responses={422: detail("A parameter is invalid (FastAPI's list), type is "
                               "not an event type, or end is not after start.")},
    )
    async def counts(
        start: datetime | None = None,
        end: datetime | None = None,
        esp: str | None = None,
        type: str | None = None,  # noqa: A002 - the public parameter name
        subaccount: str | None = None,
        resolution: Annotated[Literal["total", "minute"], Query()] = "total",
        key: ApiKey = Depends(requires(tenants, "events:read")),
    ) -> dict[str, object]:
        # A subaccount key counts its own subaccount's events, always.
        subaccount = scoped_subaccount(key, subaccount)
        if not key.is_admin and subaccount is None:
            raise HTTPException(403, "This key's subaccount is unknown.")
        if type is not None and type not in EVENT_TYPES:
            raise HTTPException(
                422, f"type must be one of {', '.join(EVENT_TYPES)}; got {type!r}."
            )
        if start and end and end <= start:
            raise HTTPException(422, "end must be after start.")
        grouped = query_counts(
            worker.table.items(),
            start_minute=_minute(start),
            end_minute=_minute(end),
            esp=esp,
            type_=type,
            subaccount=subaccount,
            by_minute=resolution == "minute",
        )
        rows = [_row(key, n) for key, n in sorted(grouped.items())]
        return {"total": sum(grouped.values()), "rows": rows}

    if worker.relay is not None:
        from streams.relay_api import relay_router

        api.include_router(relay_router(worker.relay, tenants))
    forget = worker.relay.forget_subaccount if worker.relay is not None else None
    api.include_router(tenant_router(tenants, worker.publish_tenants, forget))
    return api


def _row(key: tuple[str, ...], n: int) -> dict[str, object]:
    sub, esp, etype = key[:3]
    row: dict[str, object] = {
        "subaccount": None if sub == "-" else sub,
        "esp": esp,
        "type": etype,
        "count": n,
    }
    if len(key) == 4:
        minute = datetime.fromtimestamp(int(key[3]) * 60, timezone.utc)
        row["minute"] = minute.isoformat().replace("+00:00", "Z")
    return row
