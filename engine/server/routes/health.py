"""`/healthz`: liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.api import TOOL_VERSION

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness: the engine is loaded and the gates compiled."""
    return {"status": "ok", "version": TOOL_VERSION}
