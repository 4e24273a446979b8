"""The HTTP face every service shares: lifespan that runs the broker, health, readiness, metrics.

`/health` (is the process alive) and `/ready` (is it connected and able to work) are open so that
supervisors and orchestrators can probe them; they reveal nothing but a status. The API's
description is open too (`/openapi.json`, `/docs`, `/redoc`: servicekit/docs_ui.py). Every other
route, `/metrics` included, requires an API key bound to a role (`X-API-Key: <key>`, or
`Authorization: Bearer <key>` as Prometheus sends it from a credentials file).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.envelope import Event
from servicekit import fetch_pace, heap
from servicekit.auth import ApiKeyRegistry, Principal, Role, declare_roles, require_roles
from servicekit.consumer import Subscriptions
from servicekit.docs_ui import install_docs
from servicekit.errors import error_responses, install_error_mapping
from servicekit.metrics import HTTP_SECONDS, SERVICE_UP
from servicekit.settings import ServiceSettings
from servicekit.standby import Standby
from servicekit.tasks import BackgroundTasks, retrying

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
    **error_responses(),
}
Hook = Callable[[], Awaitable[None]]


def create_service_app(
    settings: ServiceSettings,
    broker: KafkaBroker | None,
    *,
    title: str,
    subscriptions: Subscriptions | None = None,
    publishes: tuple[type[Event], ...] = (),
    readiness_checks: dict[str, ReadinessCheck] | None = None,
    on_startup: list[Hook] | None = None,
    before_broker_stops: list[Hook] | None = None,
    on_shutdown: list[Hook] | None = None,
    tasks: BackgroundTasks | None = None,
    standby: Standby | None = None,
) -> FastAPI:
    """A FastAPI app whose lifespan connects the broker (subscribers start consuming) and runs hooks.

    `subscriptions` and `publishes` describe the service's side of the bus; the AsyncAPI export
    reads them from `app.state`. `tasks` start once the broker is connected and are cancelled
    before it stops. With `standby`, subscribers and tasks start only once this instance holds the
    service's active lease (servicekit/standby.py); until then it answers HTTP and `/ready` says
    `"role": "standby"`."""
    checks: dict[str, ReadinessCheck] = dict(readiness_checks or {})
    if broker is not None:
        checks.setdefault("kafka", lambda: broker.ping(timeout=2.0))
    service = settings.service_name
    api_keys = ApiKeyRegistry.load(
        settings.api_keys_file,
        settings.api_keys_json.get_secret_value() if settings.api_keys_json else None,
        production=settings.environment == "production",
    )

    def stop_pacing() -> None:
        if subscriptions is not None:
            fetch_pace.stop_all([s.pace for s in subscriptions.registered])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for hook in on_startup or []:
            await hook()
        # What the start loaded (models, libraries, the app) stays for good: moved out of the
        # collector's generations, it is no longer walked by every full collection, which the garbage
        # of each decoded batch triggers (ingest measured a third of a structured record's CPU). Only
        # in a service's own process (servicekit/heap.py).
        heap.settle()
        if broker is not None:
            # A service started while the broker is away (a restart, a failover) waits for it
            # instead of exiting: nothing restarts an exited service on a developer's machine.
            await retrying(
                broker.connect,
                what="connecting to Kafka",
                max_wait_s=5,
                give_up_after_s=settings.kafka_connect_wait_s,
            )

        async def consume() -> None:
            if standby is not None:
                await standby.wait_until_active()
            if broker is not None:
                await broker.start()  # subscribers start only once the broker answers
            if subscriptions is not None:
                fetch_pace.start_all(
                    [s.pace for s in subscriptions.registered],
                    settings.quiet_fetch_wait_ms,
                    settings.busy_fetch_wait_ms,
                )
            if tasks is not None:
                await tasks.start()

        async def stop_consuming() -> None:  # a takeover that failed half-way: no subscriber runs on
            stop_pacing()
            if tasks is not None:
                await tasks.stop()
            if broker is not None:
                await broker.stop()

        activating = (
            None if standby is None else asyncio.create_task(_activate(consume, stop_consuming, standby))
        )
        if activating is None:
            await consume()
        log.info("%s started (%d API keys loaded)", service, len(api_keys))
        try:
            yield
        finally:
            SERVICE_UP.labels(service).set(0)
            stop_pacing()
            if activating is not None:
                activating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await activating
            if tasks is not None:
                await tasks.stop()
            for hook in before_broker_stops or []:  # e.g. flush queued events while still connected
                await hook()
            if broker is not None:
                await broker.stop()
            if standby is not None:
                standby.release()
            for hook in on_shutdown or []:
                await hook()

    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None)
    install_docs(app, title)  # offline: the assets are served by the service itself
    app.state.api_keys = api_keys
    app.state.settings = settings
    app.state.broker = broker
    app.state.subscriptions = subscriptions
    app.state.tasks = tasks
    app.state.standby = standby
    if broker is not None:
        for event_type in publishes:  # declared so FastStream's AsyncAPI lists what the service sends
            broker.publisher(
                event_type.topic,
                schema=event_type,
                title=f"{service}:{event_type.topic}:send",
                description=f"{service} publishes {event_type.__name__}.",
            )
    app.add_middleware(RequestMetrics, service=service)
    install_error_mapping(app)

    @app.get("/health", tags=["ops"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(
        "/ready",
        tags=["ops"],
        summary="Readiness: dependencies reachable",
        responses={503: {"description": "not ready: the same body, a check failed"}},
    )
    async def ready() -> JSONResponse:
        results = {name: await _safe(check) for name, check in checks.items()}
        body: dict[str, Any] = {"checks": results}
        if subscriptions is not None and subscriptions.outages.current:
            # Consumers are waiting for these (servicekit/outages.py): say which, since when, and why.
            body["unavailable"] = subscriptions.outages.describe()
        if standby is not None:  # a standby is ready: to take over
            body["role"] = standby.role
        ok = all(results.values()) and "unavailable" not in body and body.get("role") != "failed"
        SERVICE_UP.labels(service).set(1 if ok else 0)
        return JSONResponse({"ready": ok, **body}, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (ops or admin key)",
        # As content, not `response_class`: FastAPI would file the JSON errors under text/plain too.
        responses=METRICS_RESPONSES,
    )
    async def metrics(_: Annotated[Principal, Depends(require_roles(Role.OPS))]) -> Response:
        if subscriptions is not None:
            await subscriptions.record_lag()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    declare_roles(app)  # wraps app.openapi; the document is built on first request, routes and all
    return app


async def _activate(consume: Hook, stop_consuming: Hook, standby: Standby) -> None:
    """A standby's way to consuming, in the background. A failure on it stops whatever it started
    (a subscriber of several) and gives the lease up, so that another instance takes over alone; it
    shows in `/ready` (role `failed`) until this one is restarted."""
    try:
        await consume()
    except asyncio.CancelledError:
        raise
    except Exception:
        standby.role = "failed"
        try:
            await stop_consuming()
        except Exception:
            log.warning("%s: stopping after a failed takeover failed too", standby.service, exc_info=True)
        standby.release()
        log.exception(
            "%s could not start consuming after taking the active lease; gave it up (restart this instance)",
            standby.service,
        )


async def _safe(check: ReadinessCheck) -> bool:
    try:
        return bool(await check())
    except Exception:  # a failing probe means "not ready", never a 500
        log.warning("readiness check failed", exc_info=True)
        return False


class RequestMetrics:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the serving hot path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_SECONDS.labels(self.service, path, str(status["code"])).observe(
                time.perf_counter() - started
            )
