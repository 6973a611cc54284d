"""`clearance waive GATE --doc HASH ...`: record an approved exception in the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.audit import AuditLog, audit_db_path
from engine.cli.app import app
from engine.cli.audit import doc_sha256


@app.command()
def waive(
    gate: Annotated[str, typer.Argument(help="gate code, e.g. GDPR-13-1A")],
    doc: Annotated[str, typer.Option("--doc", help="the document's sha256, or its path")],
    reason: Annotated[str, typer.Option("--reason", help="why the gate does not apply")],
    approver: Annotated[str, typer.Option("--approver", help="who approved the exception")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="last day the waiver applies (YYYY-MM-DD, UTC)")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="audit database")] = None,
) -> None:
    """Waive one gate for one document; later reports show it as `waived` with the reason."""
    log = AuditLog(db or audit_db_path())
    try:
        sha = doc_sha256(doc)
        wid = log.waive(gate, sha, reason=reason, approver=approver, expires=expires)
    finally:
        log.close()
    until = f" until {expires}" if expires else ""
    print(f"waiver #{wid}: {gate} waived for {sha[:12]}{until} (approved by {approver})")
