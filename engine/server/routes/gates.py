"""`/v1/modules` and `/v1/gates/{code}`: the gate catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.server.deps import EngineDep, Validator
from engine.server.problems import problem_response, problems

router = APIRouter(tags=["gates"])


@router.get("/v1/modules")
def modules(key: Validator, engine: EngineDep) -> list[dict[str, Any]]:
    """Modules and their gates: codes, titles, citations, severities, document types."""
    from engine.catalog import module_info

    return [module_info(m) for m in engine.list_modules()]


@router.get("/v1/gates/{code}", responses={404: problem_response()})
def gate(code: str, key: Validator, engine: EngineDep) -> dict[str, Any]:
    """One gate's metadata and DSL source."""
    from engine.catalog import gate_info

    with problems(failed="the gates cannot be read right now", not_found="unknown-gate"):
        g = engine.gate(code)
    module = next((m for m in engine.list_modules() if m.id == g.module), None)
    return gate_info(g, source=True, module=module)
