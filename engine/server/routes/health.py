"""`/healthz` (liveness: the process answers) and `/readyz` (readiness: each dependency checked)."""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from engine.api import TOOL_VERSION, Engine
from engine.server.deps import StateDep

router = APIRouter(tags=["service"])

#: seconds /readyz waits for PostgreSQL to accept a connection before calling the log down
PG_CONNECT_TIMEOUT_S = 3


class Check(BaseModel):
    """One dependency: ``ok``, ``degraded`` (works without it), ``down`` or ``disabled``."""

    status: Literal["ok", "degraded", "down", "disabled"]
    required: bool
    backend: str = ""
    detail: str = ""
    ms: float = 0.0


class Readiness(BaseModel):
    """``ready`` (every dependency ok), ``degraded`` (an optional one is down: still serving)
    or ``unready`` (a required one is down: answered with 503)."""

    status: Literal["ready", "degraded", "unready"]
    version: str
    worker: int = Field(description="process id of the worker that answered")
    checks: dict[str, Check]


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness: the engine is loaded and the gates compiled."""
    return {"status": "ok", "version": TOOL_VERSION}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a required dependency is down"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """Readiness: the audit log (required), the result cache (optional: without it the server
    is degraded but serves), the compiled gates and the semantic provider, each checked now."""
    engine = state.running_engine()
    checks = await anyio.to_thread.run_sync(_checks, engine)
    if any(c.required and c.status == "down" for c in checks.values()):
        status: Literal["ready", "degraded", "unready"] = "unready"
    elif any(c.status in ("down", "degraded") for c in checks.values()):
        status = "degraded"
    else:
        status = "ready"
    body = Readiness(status=status, version=TOOL_VERSION, worker=os.getpid(), checks=checks)
    return JSONResponse(body.model_dump(), status_code=503 if status == "unready" else 200)


def _timed(fn: Any) -> Check:
    t0 = time.perf_counter()
    check: Check = fn()
    check.ms = round((time.perf_counter() - t0) * 1000, 2)
    return check


def _checks(engine: Engine) -> dict[str, Check]:
    return {
        "audit": _timed(lambda: _audit(engine)),
        "cache": _timed(lambda: _cache(engine)),
        "gates": _timed(lambda: _gates(engine)),
        "provider": _timed(lambda: _provider(engine)),
    }


def _why(exc: BaseException) -> str:
    # the exception's class and first line: never a connection string (URLs are redacted by
    # the stores' own messages) nor a traceback
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def _audit(engine: Engine) -> Check:
    from engine.audit import SCHEMA_VERSION, AuditStore

    sink = getattr(engine.audit, "log", engine.audit)  # GroupCommitAudit wraps the store
    if sink is None:
        return Check(status="disabled", required=False, detail="CLEARANCE_NO_AUDIT is set")
    if not isinstance(sink, AuditStore):
        return Check(status="ok", required=True, backend=type(sink).__name__)
    backend = sink.backend
    query = "SELECT value FROM meta WHERE key = 'schema_version'"
    try:
        if backend == "postgres":
            # A connection of its own, not one from the pool: a pool busy with writes (or
            # waiting 30 s for a dead server) would make the probe hang; this one fails fast.
            import psycopg

            with psycopg.connect(
                sink.db_.url,  # type: ignore[attr-defined]
                autocommit=True,
                connect_timeout=PG_CONNECT_TIMEOUT_S,
            ) as conn:
                row = conn.execute(query).fetchone()
        else:
            row = sink.db_.read("read its schema version", lambda tx: tx.execute(query).fetchone())
    except Exception as exc:  # unreachable server, locked or damaged file
        return Check(status="down", required=True, backend=backend, detail=_why(exc))
    stored = str(row[0]) if row else "none"
    if stored != str(SCHEMA_VERSION):
        return Check(
            status="down",
            required=True,
            backend=backend,
            detail=f"schema version {stored}, this Clearance writes {SCHEMA_VERSION}",
        )
    return Check(status="ok", required=True, backend=backend, detail=f"schema {stored}")


def _cache(engine: Engine) -> Check:
    cache = engine.cache
    if cache is None:
        return Check(status="disabled", required=False, detail="no result cache")
    from engine.cache_redis import RedisCache  # redis itself is imported only by a RedisCache

    if isinstance(cache, RedisCache):
        client = cache._client
        if client is None:
            return Check(
                status="degraded", required=False, backend="redis", detail="; ".join(cache.warnings)
            )
        try:
            # a PING of our own, not the cache's state: it tells when Redis is back before the
            # cache's retry interval lets a validation try it again
            client.ping()
        except Exception as exc:
            return Check(
                status="degraded",
                required=False,
                backend="redis",
                detail=f"{_why(exc)}; validations run uncached",
            )
        return Check(status="ok", required=False, backend="redis")
    warnings = list(getattr(cache, "warnings", []) or [])
    if warnings:
        return Check(status="degraded", required=False, backend="disk", detail="; ".join(warnings))
    return Check(status="ok", required=False, backend="disk")


def _gates(engine: Engine) -> Check:
    try:
        n = len(engine.ruleset(None).gates)
    except Exception as exc:  # gate files with errors
        return Check(status="down", required=True, detail=_why(exc))
    return Check(status="ok", required=True, detail=f"{n} gates compiled")


def _provider(engine: Engine) -> Check:
    try:
        provider = engine.provider
    except Exception as exc:
        return Check(status="down", required=True, detail=_why(exc))
    what = f"{provider.name} {provider.model}".strip()
    return Check(status="ok", required=True, backend=provider.name, detail=what)
