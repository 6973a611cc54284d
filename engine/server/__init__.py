"""HTTP API (FastAPI): validate documents, read gates and the audit log, with API keys and limits.

``app`` composes the routers (``routes/``: one module per resource) with the shared pieces:
``deps`` (state, engine, audit log and API-key roles as FastAPI dependencies), ``problems``
(RFC 9457 errors, and where Clearance's errors become HTTP statuses), ``middleware`` (body limit,
last-resort 500), ``group_commit`` (the audit sink of a busy server) and ``state`` (settings)."""

from engine.server.app import app_from_env, create_app
from engine.server.group_commit import GroupCommitAudit
from engine.server.models import ValidateRequest, WaiverRequest
from engine.server.problems import ApiProblem, Problem
from engine.server.state import Settings

__all__ = [
    "ApiProblem",
    "GroupCommitAudit",
    "Problem",
    "Settings",
    "ValidateRequest",
    "WaiverRequest",
    "app_from_env",
    "create_app",
]
