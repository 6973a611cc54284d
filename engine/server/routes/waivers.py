"""`/v1/waivers`: record a waiver of one gate for one document (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.server.deps import Admin, AuditDep, EngineDep
from engine.server.models import WaiverRequest
from engine.server.problems import problems

router = APIRouter(tags=["audit"])


@router.post("/v1/waivers", status_code=201)
def waive(body: WaiverRequest, key: Admin, audit: AuditDep, engine: EngineDep) -> dict[str, Any]:
    """Waive one gate for one document (admin); later reports show it as `waived`."""
    approver = body.approver or key.name
    with problems(failed="the audit log cannot be read right now", kind="audit-unavailable"):
        known = {g.code for g in engine.ruleset(None).gates}  # the gate must exist
        wid = audit.waive(
            body.gate,
            body.doc_sha256,
            reason=body.reason,
            approver=approver,
            expires=body.expires,
            no_expiry=body.no_expiry,
            known_gates=known,
        )
    return {
        "id": wid,
        "gate": body.gate,
        "doc_sha256": body.doc_sha256.lower(),
        "reason": body.reason,
        "approver": approver,
        "expires": body.expires,
        "no_expiry": body.no_expiry,
        "recorded_by": key.name,
    }
