"""The HTTP API application: one FastAPI app composed of a router per resource, over one engine."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from engine.api import TOOL_VERSION, Engine
from engine.keys import KeyStore
from engine.server.middleware import BodyLimit, CatchAll, WorkerHeader
from engine.server.problems import install_error_handlers, problem_response
from engine.server.routes import audit, gates, health, validate, waivers
from engine.server.state import ServerState, Settings

log = logging.getLogger("clearance.server")


def create_app(
    engine: Engine | None = None,
    *,
    keys: KeyStore | None = None,
    settings: Settings | None = None,
    gate_paths: list[str] | None = None,
) -> FastAPI:
    """The HTTP API over one :class:`Engine` (built at startup when not given)."""
    settings = settings or Settings()
    state = ServerState(engine, keys, settings, list(gate_paths or []))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(state.start)
        if not settings.auth:
            log.warning("!" * 72)
            log.warning(
                "AUTHENTICATION IS DISABLED (--no-auth): anyone who can reach this "
                "server may validate, read the audit log and record waivers. "
                "For local development only."
            )
            log.warning("!" * 72)
        yield
        await anyio.to_thread.run_sync(state.stop)

    # /docs and /redoc serve Swagger UI and ReDoc from the package, not from a CDN: they work
    # offline and behind a closed firewall
    app = FastAPIOffline(
        title="Clearance",
        version=TOOL_VERSION,
        lifespan=lifespan,
        description="Validate documents against compliance gates. Authenticate with "
        "`Authorization: Bearer <key>` or `X-API-Key: <key>` (`clearance keys "
        "create`). Errors are RFC 9457 problem documents.",
        responses={k: problem_response() for k in (401, 403, 413, 422, 500)},
    )
    app.state.clearance = state  # what the routes' dependencies (engine.server.deps) read
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(WorkerHeader)
    app.add_middleware(CatchAll)  # added last: wraps everything but Starlette's last resort
    install_error_handlers(app)
    # in this order: it is the order of the paths in the OpenAPI document
    for resource in (health, validate, gates, audit, waivers):
        app.include_router(resource.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process builds its own app and engine)."""
    gate_paths = [p for p in os.environ.get("CLEARANCE_SERVE_GATES", "").split(os.pathsep) if p]
    return create_app(settings=Settings.from_env(), gate_paths=gate_paths)
