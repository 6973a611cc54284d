"""Shared FastAPI dependencies: the app's state, its engine and audit log, and API-key roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from engine.api import Engine
from engine.audit import AuditLog
from engine.keys import ApiKey
from engine.server.problems import ApiProblem
from engine.server.state import ServerState

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer clr_...")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: clr_...")


def get_state(request: Request) -> ServerState:
    """The running state of the app that received the request (set by create_app)."""
    state: ServerState = request.app.state.clearance
    return state


def get_engine(state: Annotated[ServerState, Depends(get_state)]) -> Engine:
    return state.running_engine()


def get_audit_log(state: Annotated[ServerState, Depends(get_state)]) -> AuditLog:
    return state.audit_log()


def require(role: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits API keys allowed ``role`` (admin is allowed everything)."""

    async def check(
        state: Annotated[ServerState, Depends(get_state)],
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        header: str | None = Depends(_header),
    ) -> ApiKey:
        if not state.settings.auth:
            return ApiKey(0, "no-auth", "admin", "", "")
        raw = bearer.credentials if bearer else header
        if not raw:
            raise ApiProblem(
                401,
                "Unauthorized",
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                kind="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        assert state.keys is not None
        key = state.keys.authenticate(raw)
        if key is None:
            raise ApiProblem(
                401,
                "Unauthorized",
                "the API key is not valid (unknown or revoked)",
                kind="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not key.allows(role):
            raise ApiProblem(
                403,
                "Forbidden",
                f"the key '{key.name}' has the role '{key.role}'; this needs '{role}' (or admin)",
                kind="forbidden",
            )
        return key

    return check


# One dependency per role, built once: FastAPI caches a dependency per request by identity.
validator = require("validator")
auditor = require("auditor")
admin = require("admin")

Validator = Annotated[ApiKey, Depends(validator)]
Auditor = Annotated[ApiKey, Depends(auditor)]
Admin = Annotated[ApiKey, Depends(admin)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StateDep = Annotated[ServerState, Depends(get_state)]
AuditDep = Annotated[AuditLog, Depends(get_audit_log)]
