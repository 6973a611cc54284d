"""`/v1/audit/...`: read the audit log (recent, history, stats, trends) and verify its chains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query

from engine.audit import parse_when
from engine.server.deps import AuditDep, Auditor
from engine.server.problems import problems

router = APIRouter(prefix="/v1/audit", tags=["audit"])
T = TypeVar("T")


def _query(fn: Callable[[], T]) -> T:
    """Run an audit query: a bad parameter is the client's 422; a log that cannot be read, 503."""
    with problems(failed="the audit log cannot be read right now", kind="audit-unavailable"):
        return fn()


def _since(since: str | None) -> str | None:
    return parse_when(since) if since else None


@router.get("/recent")
def audit_recent(
    key: Auditor, audit: AuditDep, limit: int = Query(20, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """The latest validations, newest first."""
    return _query(lambda: audit.recent(limit))


@router.get("/history/{doc}")
def audit_history(
    doc: str, key: Auditor, audit: AuditDep, limit: int = Query(100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    """Every validation of one document (sha256 or a 4+ digit prefix), newest first."""

    def history() -> list[dict[str, Any]]:
        rows = audit.history(doc, limit)
        for row in rows:
            row["not_passed"] = [
                {
                    "gate": f["gate"],
                    "status": f["status"],
                    "severity": f["severity"],
                    "line": f["line"],
                    "waiver_reason": f["waiver_reason"],
                }
                for f in audit.findings(row["id"])
                if f["status"] not in ("pass", "not_applicable")
            ]
        return rows

    return _query(history)


@router.get("/stats")
def audit_stats(
    key: Auditor, audit: AuditDep, since: str | None = None, module: str | None = None
) -> dict[str, Any]:
    """Totals, pass/fail rates and per-gate outcomes since a date."""
    return _query(lambda: audit.stats(since=_since(since), module=module))


@router.get("/gates/top-failing")
def audit_top_failing(
    key: Auditor,
    audit: AuditDep,
    limit: int = Query(10, ge=1, le=1000),
    since: str | None = None,
) -> list[dict[str, Any]]:
    """The gates that fail most often."""
    return _query(lambda: audit.top_failing(limit=limit, since=_since(since)))


@router.get("/trends")
def audit_trends(key: Auditor, audit: AuditDep, since: str | None = None) -> list[dict[str, Any]]:
    """Per-day validations, verdicts, cache hits and mean time."""
    return _query(lambda: audit.trends(since=_since(since)))


@router.get("/verify")
def audit_verify(key: Auditor, audit: AuditDep) -> dict[str, Any]:
    """Walk the hash chains; `ok` false names every edited, deleted or inserted row."""
    r = _query(audit.verify)
    return {
        "ok": r.ok,
        "validations": r.validations,
        "waivers": r.waivers,
        "checkpoints": r.checkpoints,
        "head_id": r.head_id,
        "head_hash": r.head_hash,
        "problems": r.problems,
    }
