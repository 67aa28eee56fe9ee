"""What every provider stand-in shares: state, failure modes, control routes.

A stand-in is a FastAPI app that answers one ESP's send API the way the
ESP documents it, and refuses anything else in that ESP's error format.
Tests steer it in process (``standin.state.control(...)``) or over HTTP,
so another process can steer it too:

* ``GET /_control``: the current mode, ``retry_after``, ``delay_s`` and the
  most requests seen in flight at once;
* ``POST /_control`` with ``{"mode": ..., "retry_after": s, "delay_s": s}``:
  ``ok`` answers normally, ``fail_503``/``fail_500``/``fail_429``/``fail_400``
  answer every send with that status (``fail_429`` adds ``Retry-After``
  when ``retry_after`` is given), ``slow`` answers normally after
  ``delay_s``; ``delay_s`` also delays any failure mode;
* ``GET /_sent``: ``{"count", "messages"}``, the accepted messages in order;
* ``POST /_reset``: mode ``ok``, no delay, nothing sent; requests still
  being answered are not recorded when they finish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route

Mode = Literal["ok", "fail_503", "fail_500", "fail_429", "fail_400", "slow"]
MODES: tuple[str, ...] = get_args(Mode)
FAILURE_STATUS: dict[str, int] = {
    "fail_503": 503,
    "fail_500": 500,
    "fail_429": 429,
    "fail_400": 400,
}
# What the stand-ins say in a failure mode, in each provider's format.
FAILURE_TEXT: dict[int, str] = {
    503: "Service Unavailable",
    500: "Internal Server Error",
    429: "Too many requests",
    400: "Bad request: the stand-in is in fail_400 mode",
}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclasses.dataclass
class SentMessage:
    """One accepted message, as the stand-in understood the request."""

    provider_message_id: str
    recipients: list[str]
    from_addr: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    raw_mime: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    tags: list[str] = dataclasses.field(default_factory=list)
    request_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: Any = None
    client_port: int | None = None

    def header(self, name: str) -> str | None:
        """A message header's value, looked up without regard to case."""
        wanted = name.lower()
        found = [v for k, v in self.headers.items() if k.lower() == wanted]
        return found[0] if found else None


ErrorFactory = Callable[[int, str], Response]
Handler = Callable[[Request], Awaitable[Response | SentMessage]]
SuccessFactory = Callable[[SentMessage], Response]


class ControlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode
    retry_after: int | None = None
    delay_s: float = 0.0


class StandInState:
    """Mode and sent messages; safe to touch from the test and server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[SentMessage] = []
        self.mode: str = "ok"
        self.retry_after: int | None = None
        self.delay_s = 0.0
        self.peak_in_flight = 0
        # Requests left over from before a reset do not count towards the peak.
        self._generation = 0
        self._in_flight: dict[int, int] = {}

    def control(
        self, mode: Mode, *, retry_after: int | None = None, delay_s: float = 0.0
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Unknown stand-in mode {mode!r}; modes: {MODES}.")
        self.mode, self.retry_after, self.delay_s = mode, retry_after, delay_s

    def reset(self) -> None:
        with self._lock:
            self._sent.clear()
            self.peak_in_flight = 0
            self._generation += 1
        self.control("ok")

    def record(self, message: SentMessage, generation: int) -> None:
        # A request that began before a reset (a timed-out "slow" one, say)
        # must not show up among the next test's messages.
        with self._lock:
            if generation == self._generation:
                self._sent.append(message)

    @property
    def sent(self) -> list[SentMessage]:
        with self._lock:
            return list(self._sent)

    def enter(self) -> int:
        with self._lock:
            now = self._in_flight.get(self._generation, 0) + 1
            self._in_flight[self._generation] = now
            self.peak_in_flight = max(self.peak_in_flight, now)
            return self._generation

    def leave(self, generation: int) -> None:
        with self._lock:
            self._in_flight[generation] -= 1

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "retry_after": self.retry_after,
            "delay_s": self.delay_s,
            "peak_in_flight": self.peak_in_flight,
        }


class StandIn:
    """One provider's stand-in app: its routes, control routes and state."""

    def __init__(
        self,
        name: str,
        *,
        routes: list[tuple[str, str, Handler]],
        error: ErrorFactory,
        success: SuccessFactory,
    ) -> None:
        self.name = name
        self.state = StandInState()
        self._error = error
        self._success = success
        self.app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        self._add_control_routes()
        self._provider_routes = [self._add(m, p, h) for m, p, h in routes]
        self.app.add_api_route("/{rest:path}", self._unrouted, methods=ALL_METHODS)

    def _add(self, method: str, path: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            generation = self.state.enter()
            try:
                return await self._serve(request, handler, generation)
            except ClientDisconnect:
                return Response(status_code=400)
            finally:
                self.state.leave(generation)

        self.app.add_api_route(path, endpoint, methods=[method])
        route = self.app.router.routes[-1]
        assert isinstance(route, Route)
        return route

    async def _serve(
        self, request: Request, handler: Handler, generation: int
    ) -> Response:
        # Read the body first, as a server does, so a slow answer is slow
        # after the whole request arrived (handlers get the cached body).
        await request.body()
        if self.state.delay_s:
            await asyncio.sleep(self.state.delay_s)

        status = FAILURE_STATUS.get(self.state.mode)
        if status is not None:
            response = self._error(status, FAILURE_TEXT[status])
            if status == 429 and self.state.retry_after is not None:
                response.headers["Retry-After"] = str(self.state.retry_after)
            return response

        outcome = await handler(request)
        if isinstance(outcome, Response):
            return outcome
        outcome.request_headers = {k.lower(): v for k, v in request.headers.items()}
        outcome.client_port = request.client.port if request.client else None
        self.state.record(outcome, generation)
        return self._success(outcome)

    async def _unrouted(self, request: Request) -> Response:
        for route in self._provider_routes:
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL:
                return self._error(405, f"Method {request.method} not allowed.")
        return self._error(404, f"No such resource: {request.url.path}.")

    def _add_control_routes(self) -> None:
        state = self.state

        async def get_control() -> dict[str, Any]:
            return state.as_json()

        async def set_control(request: Request) -> Response:
            try:
                wanted = ControlRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            state.control(
                wanted.mode, retry_after=wanted.retry_after, delay_s=wanted.delay_s
            )
            return JSONResponse(state.as_json())

        async def sent() -> dict[str, Any]:
            messages = [dataclasses.asdict(m) for m in state.sent]
            return {"count": len(messages), "messages": messages}

        async def reset() -> dict[str, Any]:
            state.reset()
            return state.as_json()

        self.app.add_api_route("/_control", get_control, methods=["GET"])
        self.app.add_api_route("/_control", set_control, methods=["POST"])
        self.app.add_api_route("/_sent", sent, methods=["GET"])
        self.app.add_api_route("/_reset", reset, methods=["POST"])


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The dotted field path and message of a model's first complaint."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"])
    return field, str(error["msg"])


def is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json"
