"""Tamper-evident audit log: every validation and its findings, hash-chained, in a SQLite file or
a PostgreSQL database (``CLEARANCE_AUDIT_URL``), behind one interface (:class:`AuditStore`).

- :mod:`engine.audit.records`: columns, row hashes, redaction, rollups (every backend)
- :mod:`engine.audit.store`: :class:`AuditStore`, the interface every command and endpoint uses
- :mod:`engine.audit.sqlite`: :class:`AuditLog`, one SQLite file (the default)
- :mod:`engine.audit.postgres`: :class:`PostgresAuditLog`, many writers on many hosts
- waivers have their own store: :mod:`engine.waivers`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.audit.records import (
    _INSERT_FINDING,
    BUSY_TIMEOUT_S,
    CHECKPOINTS,
    FINDINGS,
    GENESIS,
    QUERIES,
    RESULT_COLUMNS,
    RULESETS,
    SCHEMA_VERSION,
    VALIDATIONS,
    WAIVERS,
    Rollups,
    VerifyResult,
    _Prepared,
    audit_db_path,
    audit_disabled,
    audit_location,
    audit_sync,
    audit_url,
    canonical,
    expand_results,
    finding_row,
    is_plain,
    is_url,
    now_iso,
    parse_when,
    redact,
    result_entry,
    row_hash,
    since_days,
    store_raw_text,
    validation_row,
)
from engine.audit.sqlite import AuditLog, rebuild_rollups
from engine.audit.store import AuditStore

__all__ = [
    "BUSY_TIMEOUT_S",
    "CHECKPOINTS",
    "FINDINGS",
    "GENESIS",
    "MAX_WAIVER_APPROVER",
    "MAX_WAIVER_REASON",
    "QUERIES",
    "RESULT_COLUMNS",
    "RULESETS",
    "SCHEMA_VERSION",
    "VALIDATIONS",
    "WAIVERS",
    "_INSERT_FINDING",
    "AuditLog",
    "AuditStore",
    "Rollups",
    "VerifyResult",
    "_Prepared",
    "audit_db_path",
    "audit_disabled",
    "audit_location",
    "audit_sync",
    "audit_url",
    "canonical",
    "check_waiver",
    "expand_results",
    "finding_row",
    "is_plain",
    "is_url",
    "now_iso",
    "open_audit",
    "open_audit_store",
    "parse_when",
    "rebuild_rollups",
    "redact",
    "result_entry",
    "row_hash",
    "since_days",
    "store_raw_text",
    "validation_row",
]

# Waiver rules moved to engine.waivers (which imports this package): served from there lazily.
_FROM_WAIVERS = {"check_waiver", "MAX_WAIVER_REASON", "MAX_WAIVER_APPROVER"}


def __getattr__(name: str) -> Any:
    if name in _FROM_WAIVERS:
        import engine.waivers

        return getattr(engine.waivers, name)
    raise AttributeError(f"module 'engine.audit' has no attribute {name!r}")


def open_audit_store(location: str | Path | None = None, *, readonly: bool = False) -> AuditStore:
    """The audit log at ``location``: a ``postgresql://`` URL or a SQLite file path (default:
    ``CLEARANCE_AUDIT_URL``, else the SQLite file of :func:`audit_db_path`)."""
    where = audit_location() if location is None else location
    if is_url(where):
        from engine.audit.postgres import PostgresAuditLog

        return PostgresAuditLog(str(where), readonly=readonly)
    return AuditLog(Path(where), readonly=readonly)


def open_audit() -> AuditStore | None:
    """The audit sink the engine should use: ``None`` when ``CLEARANCE_NO_AUDIT=1``. Raises
    :class:`ServiceError` if the log cannot be opened (validation must not run unrecorded)."""
    if audit_disabled():
        return None
    return open_audit_store()
