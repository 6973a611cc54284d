"""Waivers: approved exceptions (one gate, one document, a reason, an approver, an expiry),
each a hash-chained record kept beside the audit log, in the same database, by its own store."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from engine.audit import records as rec
from engine.audit.records import GENESIS, WAIVERS, Tx, _typed, parse_when, row_hash, table_sql
from engine.audit.store import CHAIN_WAIVERS, Database
from engine.errors import UserError
from engine.report import Waiver

# A waiver's reason is read by people and shown in every report it applies to.
MAX_WAIVER_REASON = 2000
MAX_WAIVER_APPROVER = 200

_INSERT = f"INSERT INTO waivers ({', '.join(WAIVERS)}) VALUES ({', '.join('?' * len(WAIVERS))})"


def create_waivers_table(tx: Tx, dialect: str) -> None:
    """The waivers table and its index (inside the caller's schema transaction)."""
    tx.execute(
        table_sql(
            "waivers", WAIVERS, dialect, not_null=("gate", "doc_sha256", "reason", "approver")
        )
    )
    tx.execute(
        "CREATE INDEX IF NOT EXISTS idx_waivers_doc_sha256_gate ON waivers (doc_sha256, gate)"
    )


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tab and newline are text


def check_waiver(
    gate: str,
    *,
    reason: str,
    approver: str,
    expires: str | None,
    no_expiry: bool,
    known_gates: Collection[str] | None,
) -> None:
    """Raise :class:`UserError` for a waiver that must not be recorded (see WaiverStore.waive)."""
    if not reason.strip() or not approver.strip():
        raise UserError("a waiver needs a reason and an approver")
    if len(reason) > MAX_WAIVER_REASON:
        raise UserError(
            f"a waiver's reason is {len(reason):,} characters; at most "
            f"{MAX_WAIVER_REASON:,} (link to a longer justification instead)"
        )
    if len(approver) > MAX_WAIVER_APPROVER:
        raise UserError(
            f"a waiver's approver is {len(approver):,} characters; at most {MAX_WAIVER_APPROVER}"
        )
    for what, text in (("reason", reason), ("approver", approver), ("gate", gate)):
        if _CONTROL.search(text):
            raise UserError(f"a waiver's {what} contains control characters")
    if known_gates is not None and gate not in known_gates:
        from dsl.diagnostics import did_you_mean

        raise UserError(
            f"unknown gate '{gate}': no gate of the loaded ruleset has that code."
            f"{did_you_mean(gate, sorted(known_gates))} (see `clearance modules`)"
        )
    if expires is None and not no_expiry:
        raise UserError(
            "a waiver needs an expiry (--expires YYYY-MM-DD); one that never "
            "expires must say so (--no-expiry)"
        )
    if expires is not None and no_expiry:
        raise UserError("a waiver has an expiry or --no-expiry, not both")


class WaiverStore:
    """Records waivers and reads the active ones (:class:`engine.hooks.WaiverSource`), over the
    audit log's :class:`Database`: the same file or PostgreSQL database, its own chain."""

    def __init__(self, database: Database) -> None:
        self.db_ = database

    @property
    def location(self) -> str:
        return self.db_.location

    def close(self) -> None:
        self.db_.close()

    def __enter__(self) -> WaiverStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def waive(
        self,
        gate: str,
        doc_sha256: str,
        *,
        reason: str,
        approver: str,
        expires: str | None = None,
        no_expiry: bool = False,
        known_gates: Collection[str] | None = None,
    ) -> int:
        """Record a waiver (itself a hash-chained audit record); returns its id.

        Rules (see docs/reliability-audit.md): the gate must be one of ``known_gates`` (the
        loaded ruleset's codes; callers that have a ruleset pass it); the reason is 1 to
        MAX_WAIVER_REASON characters without control characters; an approver is named; and
        the waiver expires (``expires``, a future date) unless ``no_expiry`` says, explicitly,
        that it never does."""
        check_waiver(
            gate,
            reason=reason,
            approver=approver,
            expires=expires,
            no_expiry=no_expiry,
            known_gates=known_gates,
        )
        doc = doc_sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", doc):
            raise UserError(f"'{doc_sha256}' is not a document sha256 (64 hex digits)")
        until = parse_when(expires, end_of_day=True) if expires else None
        if until is not None and until <= rec.now_iso():
            raise UserError(f"waiver expiry {expires} is already in the past")

        def write(tx: Tx) -> int:
            last = tx.execute(
                "SELECT id, row_hash FROM waivers ORDER BY id DESC LIMIT 1"
            ).fetchone()
            new: dict[str, Any] = _typed(
                {
                    "id": (last[0] + 1) if last else 1,
                    "gate": gate,
                    "doc_sha256": doc,
                    "reason": reason,
                    "approver": approver,
                    "created": rec.now_iso(),
                    "expires": until,
                    "prev_hash": last[1] if last else GENESIS,
                },
                WAIVERS,
            )
            new["row_hash"] = row_hash("waivers", new)
            tx.execute(_INSERT, [new.get(c) for c in WAIVERS])
            return int(new["id"])

        return self.db_.write("record a waiver", write, CHAIN_WAIVERS)

    def waivers_for(self, doc_sha256: str) -> dict[str, Waiver]:
        rows = self.db_.query("waivers_for", {"doc": doc_sha256.lower(), "now": rec.now_iso()})
        # Ordered by id within a gate: the latest waiver for a gate is the one that applies.
        return {
            r["gate"]: Waiver(
                reason=r["reason"],
                approver=r["approver"],
                expires=r["expires"],
                created=r["created"],
            )
            for r in rows
        }


def open_waivers(location: str | Path | None = None) -> WaiverStore:
    """The waiver store beside the audit log at ``location`` (default: the configured one,
    ``CLEARANCE_AUDIT_URL`` or the SQLite file); creates the audit schema if it is new."""
    from engine.audit import open_audit_store

    # Opening the audit log creates (or upgrades) the schema the waivers table is part of.
    return WaiverStore(open_audit_store(location).db_)
