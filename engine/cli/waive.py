"""`clearance waive GATE --doc HASH ...`: record an approved exception in the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli._common import make_engine
from engine.cli.app import app
from engine.cli.audit import doc_sha256

#: engine.audit.MAX_WAIVER_REASON, for the help text: engine.audit (SQLite, the report
#: models) is imported only when a waiver is recorded; tests/test_cli.py keeps the two equal
MAX_WAIVER_REASON = 2000


@app.command()
def waive(
    gate: Annotated[str, typer.Argument(help="gate code, e.g. GDPR-13-1A")],
    doc: Annotated[str, typer.Option("--doc", help="the document's sha256, or its path")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help=f"why the gate does not apply (at most {MAX_WAIVER_REASON:,} characters)",
        ),
    ],
    approver: Annotated[str, typer.Option("--approver", help="who approved the exception")],
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="last day the waiver applies (YYYY-MM-DD, UTC); required unless --no-expiry",
        ),
    ] = None,
    no_expiry: Annotated[
        bool,
        typer.Option(
            "--no-expiry", help="the waiver never expires (recorded as such, with its approver)"
        ),
    ] = False,
    gates: Annotated[
        list[Path] | None,
        typer.Option(
            "--gates", "-g", help="extra gate file or module folder that defines GATE (repeatable)"
        ),
    ] = None,
    db: Annotated[Path | None, typer.Option("--db", help="audit database")] = None,
) -> None:
    """Waive one gate for one document; later reports show it as `waived` with the reason."""
    from engine.audit import AuditLog, audit_db_path, check_waiver

    # The cheap checks first, so a bad waiver is refused before the gates are compiled.
    check_waiver(
        gate,
        reason=reason,
        approver=approver,
        expires=expires,
        no_expiry=no_expiry,
        known_gates=None,
    )
    # A waiver names a gate of the ruleset validations run with: built-in modules plus --gates.
    known = {g.code for g in make_engine(gates, cache=None, audit=None).ruleset(None).gates}
    log = AuditLog(db or audit_db_path())
    try:
        sha = doc_sha256(doc)
        wid = log.waive(
            gate,
            sha,
            reason=reason,
            approver=approver,
            expires=expires,
            no_expiry=no_expiry,
            known_gates=known,
        )
    finally:
        log.close()
    until = f" until {expires}" if expires else " with no expiry"
    print(f"waiver #{wid}: {gate} waived for {sha[:12]}{until} (approved by {approver})")
