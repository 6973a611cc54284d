"""Tamper-evident audit log: every validation, its findings and waivers, hash-chained in SQLite."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import threading
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import sqlite_utils
else:

    class _LazySqliteUtils:
        """sqlite-utils, imported on first use: it costs ~0.15 s to import, and importing this
        module (for a path, a date parser, CLEARANCE_NO_AUDIT) must not pay for it."""

        def __getattr__(self, name: str) -> Any:
            import sqlite_utils

            return getattr(sqlite_utils, name)

    sqlite_utils = _LazySqliteUtils()

from engine.errors import ClearanceError, UserError
from engine.hooks import GateSource
from engine.report import GateResult, Report, Severity, Span, Status, Waiver

GENESIS = "0" * 64
# 2: pass / not-applicable results kept compactly in validations.results; 3: rulesets rows
# hash-chained, each validation names the rulesets head it was written with (ruleset_head), and
# the per-day rollups are checked against the records by verify (rebuilt once on upgrade).
SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 30.0

# Column types are fixed (not inferred) so a value hashes the same when written as when read
# back: an int written to a REAL column comes back as a float, and would change the hash.
VALIDATIONS: dict[str, type] = {
    "id": int,
    "time": str,
    "principal": str,
    "tool_version": str,
    "schema_version": str,
    "doc_sha256": str,
    "doc_name": str,
    "doc_size": int,
    "doc_type": str,
    "modules": str,
    "ruleset": str,
    "verdict": str,
    "exit_code": int,
    "gates": int,
    "passed": int,
    "failed": int,
    "indeterminate": int,
    "not_applicable": int,
    "waived": int,
    "blocking": int,
    "sev_info": int,
    "sev_low": int,
    "sev_medium": int,
    "sev_high": int,
    "sev_critical": int,
    "duration_ms": float,
    "cache_hit": int,
    "llm_calls": int,
    "llm_input_tokens": int,
    "llm_output_tokens": int,
    "prev_hash": str,
    "row_hash": str,
    # The rulesets chain's head when this row was written: the gate sources are covered by
    # the validations chain (schema 3; NULL on older rows).
    "ruleset_head": str,
    # Last, so queries that leave it out never read its overflow pages; see RESULT_COLUMNS.
    "results": str,
}
FINDINGS: dict[str, type] = {
    "id": int,
    "validation_id": int,
    "seq": int,
    "gate": str,
    "gate_version": str,
    "module": str,
    "status": str,
    "severity": str,
    "blocking": int,
    "span_start": int,
    "span_end": int,
    "line": int,
    "col": int,
    "check_kind": str,
    "check_desc": str,
    "spans": str,
    "provider": str,
    "model": str,
    "prompt_version": str,
    "confidence": float,
    "semantic": str,
    "waiver_reason": str,
    "waiver_approver": str,
}
WAIVERS: dict[str, type] = {
    "id": int,
    "gate": str,
    "doc_sha256": str,
    "reason": str,
    "approver": str,
    "created": str,
    "expires": str,
    "prev_hash": str,
    "row_hash": str,
}
CHECKPOINTS: dict[str, type] = {
    "id": int,
    "time": str,
    "chain": str,
    "before": str,
    "last_id": int,
    "last_hash": str,
    "pruned": int,
    "prev_hash": str,
    "row_hash": str,
}
# Each (gate, version) once, in a hash chain of its own (id order) whose head every later
# validation row carries: editing a source, or deleting or adding a row, breaks a link.
RULESETS: dict[str, type] = {
    "id": int,
    "gate": str,
    "version": str,
    "module": str,
    "source": str,
    "prev_hash": str,
    "row_hash": str,
}
# A gate result with nothing to say beyond its outcome (pass or not applicable, not blocking, no
# span, no semantic answer, no waiver) is not a findings row but one entry of its validation's
# ``results`` column, a JSON array of arrays with these columns (the findings columns it would
# have had; all the others would be NULL). Most of a report's 80-odd results are such, and
# writing them as rows was most of the cost of an audit record.
RESULT_COLUMNS = ("seq", "gate", "gate_version", "module", "status", "severity", "blocking")
# What each row's hash covers, in this order: every column but row_hash (prev_hash included);
# a validation's findings add every column but their surrogate key and the link to the parent,
# and then its ``results`` text as stored (absent for rows written before schema 2) and its
# ``ruleset_head`` (absent before schema 3).
_HASHED = {
    name: [c for c in cols if c not in ("row_hash", "results", "ruleset_head")]
    for name, cols in (
        ("validations", VALIDATIONS),
        ("waivers", WAIVERS),
        ("checkpoints", CHECKPOINTS),
        ("rulesets", RULESETS),
    )
}
_FINDING_HASHED = [c for c in FINDINGS if c not in ("id", "validation_id")]
_FINDING_COLS = ["validation_id", *_FINDING_HASHED]
_INSERT_VALIDATION = (
    f"INSERT INTO validations ({', '.join(VALIDATIONS)}) "
    f"VALUES ({', '.join('?' * len(VALIDATIONS))})"
)
_INSERT_FINDING = (
    f"INSERT INTO findings ({', '.join(_FINDING_COLS)}) "
    f"VALUES ({', '.join('?' * len(_FINDING_COLS))})"
)
_INSERT_SOURCE = (
    f"INSERT INTO rulesets ({', '.join(RULESETS)}) VALUES ({', '.join('?' * len(RULESETS))})"
)
# Listing validations never needs the (kilobytes long) results column, nor ruleset_head (which
# an upgraded log stores after it).
_LISTED = ", ".join(c for c in VALIDATIONS if c not in ("results", "ruleset_head"))
# A waiver's reason is read by people and shown in every report it applies to.
MAX_WAIVER_REASON = 2000
MAX_WAIVER_APPROVER = 200

# Rollups are derived, per-day totals kept in the same transaction as each record, so that
# auditors' questions over 100,000s of validations and millions of findings stay fast.
_ROLLUPS = """
CREATE TABLE IF NOT EXISTS daily (
  day TEXT PRIMARY KEY, validations INTEGER NOT NULL, passed INTEGER NOT NULL,
  failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL, cache_hits INTEGER NOT NULL,
  duration_ms REAL NOT NULL, llm_calls INTEGER NOT NULL, llm_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS daily_modules (
  day TEXT NOT NULL, module TEXT NOT NULL, validations INTEGER NOT NULL,
  passed INTEGER NOT NULL, failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL,
  PRIMARY KEY (module, day));
CREATE TABLE IF NOT EXISTS daily_gates (
  day TEXT NOT NULL, gate TEXT NOT NULL, module TEXT NOT NULL, evaluated INTEGER NOT NULL,
  passed INTEGER NOT NULL, failed INTEGER NOT NULL, indeterminate INTEGER NOT NULL,
  waived INTEGER NOT NULL, not_applicable INTEGER NOT NULL,
  PRIMARY KEY (day, gate));
CREATE INDEX IF NOT EXISTS idx_daily_gates_module ON daily_gates (module, day);
"""

_INDEXES: list[tuple[str, list[str]]] = [
    ("validations", ["time"]),
    ("validations", ["doc_sha256", "time"]),
    ("findings", ["validation_id", "seq"]),
    ("waivers", ["doc_sha256", "gate"]),
    ("checkpoints", ["chain", "id"]),
    ("rulesets", ["id"]),
]

# Every auditor query, named, so tests can check each one's plan uses an index.
QUERIES: dict[str, str] = {
    "recent": f"SELECT {_LISTED} FROM validations ORDER BY time DESC, id DESC LIMIT :limit",
    "history": (
        f"SELECT {_LISTED} FROM validations WHERE doc_sha256 >= :lo AND doc_sha256 < :hi "
        "ORDER BY doc_sha256, time DESC LIMIT :limit"
    ),
    "findings_of": "SELECT * FROM findings WHERE validation_id = :id ORDER BY seq",
    "results_of": "SELECT results FROM validations WHERE id = :id",
    "stats": (
        "SELECT coalesce(sum(validations), 0) AS validations, coalesce(sum(passed), 0) AS passed,"
        " coalesce(sum(failed), 0) AS failed, coalesce(sum(indeterminate), 0) AS indeterminate,"
        " coalesce(sum(cache_hits), 0) AS cache_hits, coalesce(sum(duration_ms), 0) AS duration_ms,"
        " coalesce(sum(llm_calls), 0) AS llm_calls, coalesce(sum(llm_tokens), 0) AS llm_tokens"
        " FROM daily WHERE day >= :since"
    ),
    "stats_module": (
        "SELECT coalesce(sum(validations), 0) AS validations, coalesce(sum(passed), 0) AS passed,"
        " coalesce(sum(failed), 0) AS failed, coalesce(sum(indeterminate), 0) AS indeterminate"
        " FROM daily_modules WHERE module = :module AND day >= :since"
    ),
    "by_gate": (
        "SELECT gate, module, sum(evaluated) AS evaluated, sum(passed) AS passed,"
        " sum(failed) AS failed, sum(indeterminate) AS indeterminate, sum(waived) AS waived,"
        " sum(not_applicable) AS not_applicable"
        " FROM daily_gates WHERE day >= :since GROUP BY gate ORDER BY gate"
    ),
    "by_gate_module": (
        "SELECT gate, module, sum(evaluated) AS evaluated, sum(passed) AS passed,"
        " sum(failed) AS failed, sum(indeterminate) AS indeterminate, sum(waived) AS waived,"
        " sum(not_applicable) AS not_applicable"
        " FROM daily_gates WHERE module = :module AND day >= :since GROUP BY gate ORDER BY gate"
    ),
    "top_failing": (
        "SELECT gate, module, sum(failed) AS failed, sum(evaluated) AS evaluated,"
        " round(100.0 * sum(failed) / max(sum(evaluated), 1), 1) AS fail_pct"
        " FROM daily_gates WHERE day >= :since GROUP BY gate HAVING sum(failed) > 0"
        " ORDER BY failed DESC, gate LIMIT :limit"
    ),
    "trends": (
        "SELECT day, validations, passed, failed, indeterminate, cache_hits,"
        " round(duration_ms / max(validations, 1), 1) AS avg_ms FROM daily"
        " WHERE day >= :since ORDER BY day"
    ),
    "waivers_for": (
        "SELECT * FROM waivers WHERE doc_sha256 = :doc"
        " AND (expires IS NULL OR expires > :now) ORDER BY gate, id"
    ),
    "head": ("SELECT id, row_hash FROM validations WHERE id = (SELECT max(id) FROM validations)"),
    "last_checkpoint": ("SELECT * FROM checkpoints WHERE chain = :chain ORDER BY id DESC LIMIT 1"),
}

_SHA_PREFIX = re.compile(r"^[0-9a-fA-F]{4,64}$")


# -- settings ------------------------------------------------------------------------------


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def audit_db_path() -> Path:
    """``CLEARANCE_AUDIT_DB``, else ``$CLEARANCE_HOME/audit.db``, else the user data directory."""
    if explicit := os.environ.get("CLEARANCE_AUDIT_DB"):
        return Path(explicit).expanduser()
    if home := os.environ.get("CLEARANCE_HOME"):
        return Path(home).expanduser() / "audit.db"
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "clearance" / "audit.db"


def audit_disabled() -> bool:
    return _env_flag("CLEARANCE_NO_AUDIT")


def store_raw_text() -> bool:
    return _env_flag("CLEARANCE_STORE_RAW_TEXT")


def audit_sync() -> str:
    """``CLEARANCE_AUDIT_SYNC``: ``full`` (default: a recorded validation survives a power cut)
    or ``normal`` (WAL: survives a crash of the process, not of the machine; no fsync per
    commit)."""
    value = os.environ.get("CLEARANCE_AUDIT_SYNC", "full").strip().lower() or "full"
    if value not in ("full", "normal"):
        raise ClearanceError(f"CLEARANCE_AUDIT_SYNC={value!r}: expected 'full' or 'normal'")
    return value


# -- hashing -------------------------------------------------------------------------------


def _coerce(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is str:
        return str(value)
    return kind(value)


def _typed(row: dict[str, Any], columns: dict[str, type]) -> dict[str, Any]:
    return {k: _coerce(row.get(k), t) for k, t in columns.items() if k in row}


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(
    table: str,
    row: dict[str, Any],
    findings: Iterable[dict[str, Any] | tuple[Any, ...]] | None = None,
) -> str:
    """sha256 over canonical JSON ``[table, [values...], [[finding values...], ...]]``: the row's
    columns in schema order (``prev_hash`` included), then its findings' (dicts, or tuples in
    ``_FINDING_HASHED`` order), then a validation's ``results`` text when it has one. Arrays,
    not objects: hashing 100,000s of rows stays fast."""
    payload: list[Any] = [table, [row.get(c) for c in _HASHED[table]]]
    if findings is not None:
        payload.append(
            [
                [f.get(c) for c in _FINDING_HASHED] if isinstance(f, dict) else list(f)
                for f in findings
            ]
        )
    # Only when present, so rows written before the column existed hash as they did; on a newer
    # row, blanking it changes the hash like any other edit.
    if (results := row.get("results")) is not None:
        payload.append(results)
    if (head := row.get("ruleset_head")) is not None:
        payload.append(["ruleset_head", head])
    return hashlib.sha256(canonical(payload)).hexdigest()


# -- redaction -----------------------------------------------------------------------------

_LABEL = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MASKED = re.compile(r"[*…•]")  # *, … and • are what the detectors mask with


def redact(detail: str | None, kind: str) -> str | None:
    """What of a span's detail may be stored. An entity type (``US_SSN``) is kept; a value after
    it is kept only if a PII/secret detector already masked it (``AKIA…[20 chars]``); anything
    else, such as a regex or phrase match (document text), is masked to its shape."""
    if detail is None or store_raw_text():
        return detail
    from gates.pii import mask

    label, _, value = detail.partition(" ")
    if not _LABEL.match(label):
        return mask(detail)
    if not value or (kind in ("pii", "secret") and _MASKED.search(value)):
        return detail
    return f"{label} {mask(value)}"


def _span_json(s: Span) -> dict[str, Any]:
    return {
        "start": s.start,
        "end": s.end,
        "line": s.line,
        "col": s.col,
        "page": s.page,
        "kind": s.kind,
        "check": s.check,
        "detail": redact(s.detail, s.kind),
    }


def finding_row(seq: int, g: GateResult) -> dict[str, Any]:
    first = g.spans[0] if g.spans else None
    sem = g.semantic[0] if g.semantic else None
    raw = store_raw_text()
    semantic = [
        {
            "question": a.question,
            "verdict": a.verdict,
            "confidence": a.confidence,
            "provider": a.provider,
            "model": a.model,
            "prompt_version": a.prompt_version,
            "cached": a.cached,
            "rationale": a.rationale if raw else None,
            "evidence": [_span_json(s) for s in a.evidence],
        }
        for a in g.semantic
    ]
    row = {
        "seq": seq,
        "gate": g.gate,
        "gate_version": g.version,
        "module": g.module,
        "status": g.status.value,
        "severity": g.severity.value,
        "blocking": int(g.blocking),
        "span_start": first.start if first else None,
        "span_end": first.end if first else None,
        "line": first.line if first else None,
        "col": first.col if first else None,
        "check_kind": first.kind if first else (sem and "semantic"),
        "check_desc": first.check if first else None,
        "spans": json.dumps([_span_json(s) for s in g.spans]) if g.spans else None,
        "provider": sem.provider if sem else None,
        "model": sem.model if sem else None,
        "prompt_version": sem.prompt_version if sem else None,
        "confidence": sem.confidence if sem else None,
        "semantic": json.dumps(semantic) if semantic else None,
        "waiver_reason": g.waiver.reason if g.waiver else None,
        "waiver_approver": g.waiver.approver if g.waiver else None,
    }
    return _typed(row, FINDINGS)


_PLAIN = (Status.pass_, Status.not_applicable)


def is_plain(g: GateResult) -> bool:
    """A result whose outcome is all there is to say: stored compactly (see RESULT_COLUMNS)."""
    return (
        g.status in _PLAIN
        and not g.blocking
        and not g.spans
        and not g.semantic
        and g.waiver is None
    )


def result_entry(seq: int, g: GateResult) -> list[Any]:
    """A plain result as one ``results`` entry, typed as its findings row would be."""
    return [seq, str(g.gate), str(g.version), str(g.module), g.status.value, g.severity.value, 0]


def expand_results(validation_id: int, results: str | None) -> list[dict[str, Any]]:
    """A ``results`` column as findings-shaped dicts (every findings column; id None)."""
    if not results:
        return []
    blank = dict.fromkeys(FINDINGS)
    try:
        return [
            {
                **blank,
                "validation_id": validation_id,
                **dict(zip(RESULT_COLUMNS, entry, strict=True)),
            }
            for entry in json.loads(results)
        ]
    except (ValueError, TypeError):  # only an edit makes it so; verify names the row
        raise ClearanceError(
            f"validation #{validation_id}: its results column is not what the "
            "log writes (edited?); run `clearance audit verify`"
        ) from None


def validation_row(report: Report, principal: str) -> dict[str, Any]:
    s = report.summary
    sev = {f"sev_{level.value}": int(s.by_severity.get(level.value, 0)) for level in Severity}
    row = {
        "principal": principal,
        "tool_version": report.tool_version,
        "schema_version": report.schema_version,
        "doc_sha256": report.document.sha256,
        "doc_name": report.document.name,
        "doc_size": report.document.size,
        "doc_type": report.document.doc_type,
        "modules": json.dumps([f"{m.id}@{m.version}" for m in report.modules]),
        "ruleset": report.ruleset,
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "gates": s.gates,
        "passed": s.passed,
        "failed": s.failed,
        "indeterminate": s.indeterminate,
        "not_applicable": s.not_applicable,
        "waived": s.waived,
        "blocking": s.blocking,
        **sev,
        "duration_ms": report.ms,
        "cache_hit": int(report.cache_hit),
        "llm_calls": report.llm.calls,
        "llm_input_tokens": report.llm.input_tokens,
        "llm_output_tokens": report.llm.output_tokens,
    }
    return _typed(row, VALIDATIONS)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_when(text: str, *, end_of_day: bool = False) -> str:
    """A user's DATE or DATETIME as the UTC ISO string the log stores (``...Z``)."""
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            moment = datetime.combine(d, time.max if end_of_day else time.min, UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise UserError(
            f"'{text}' is not a date (expected YYYY-MM-DD or an ISO datetime)"
        ) from None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# -- waivers --------------------------------------------------------------------------------

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
    """Raise :class:`UserError` for a waiver the log must not record (see AuditLog.waive)."""
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


# -- verification result -------------------------------------------------------------------


@dataclass
class VerifyResult:
    validations: int = 0
    waivers: int = 0
    checkpoints: int = 0
    rulesets: int = 0
    head_id: int | None = None
    head_hash: str | None = None
    #: the last validation that verified before the first problem (None: none did, or the
    #: chain starts at a checkpoint and that is all there is)
    last_good_id: int | None = None
    last_good_hash: str | None = None
    #: one line per row that does not match, first problem first: "validations #12: ..."
    problems: list[str] = field(default_factory=list)
    #: per-day figures computed from the rows read (not from the rollup tables); what a report
    #: shows when the log does not verify
    derived: Rollups | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        """The result as the CLI's and the API's JSON."""
        return {
            "ok": self.ok,
            "validations": self.validations,
            "waivers": self.waivers,
            "checkpoints": self.checkpoints,
            "rulesets": self.rulesets,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "last_good_id": self.last_good_id,
            "last_good_hash": self.last_good_hash,
            "problems": self.problems,
        }


#: verdicts the rollups count as undecided: a document whose type could not be told (review)
#: is counted with the validations a person must look at, never as passed
_UNDECIDED = ("indeterminate", "review")
_DAILY_COLS = (
    "validations",
    "passed",
    "failed",
    "indeterminate",
    "cache_hits",
    "duration_ms",
    "llm_calls",
    "llm_tokens",
)
_MODULE_COLS = ("validations", "passed", "failed", "indeterminate")
_GATE_COLS = ("evaluated", "passed", "failed", "indeterminate", "waived", "not_applicable")


@dataclass
class Rollups:
    """The three per-day rollup tables, recomputed from validation rows as verify reads them."""

    daily: dict[str, list[Any]] = field(default_factory=dict)  # day -> _DAILY_COLS
    modules: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (day, module)
    # (day, gate, module, status) -> results; folded into ``gates`` by finish()
    outcomes: dict[tuple[Any, Any, Any, Any], int] = field(default_factory=dict)
    gates: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (day, gate)
    gate_modules: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    _module_ids: dict[Any, frozenset[str]] = field(default_factory=dict)

    def add(self, row: dict[str, Any], findings: list[tuple[Any, ...]]) -> None:
        """One validation row as stored, and its findings rows (``_FINDING_HASHED`` tuples)."""
        day, verdict = str(row.get("time") or "")[:10], row.get("verdict")
        outcome = (int(verdict == "pass"), int(verdict == "fail"), int(verdict in _UNDECIDED))
        d = self.daily.get(day)
        if d is None:
            d = self.daily[day] = [0, 0, 0, 0, 0, 0.0, 0, 0]
        values = (
            1,
            *outcome,
            _int(row.get("cache_hit")),
            _num(row.get("duration_ms")),
            _int(row.get("llm_calls")),
            _int(row.get("llm_input_tokens")) + _int(row.get("llm_output_tokens")),
        )
        for k, v in enumerate(values):
            d[k] += v
        for m in self._modules_of(row.get("modules")):
            c = self.modules.get((day, m))
            if c is None:
                c = self.modules[day, m] = [0, 0, 0, 0]
            for k, v in enumerate((1, *outcome)):
                c[k] += v
        counts = self.outcomes
        for f in findings:
            key = (day, f[_FIND_GATE], f[_FIND_MODULE], f[_FIND_STATUS])
            counts[key] = counts.get(key, 0) + 1
        if results := row.get("results"):
            # An edited column fails to parse: the row's hash already says so.
            with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
                for e in json.loads(results):
                    key = (day, e[_RES_GATE], e[_RES_MODULE], e[_RES_STATUS])
                    counts[key] = counts.get(key, 0) + 1

    def _modules_of(self, text: Any) -> frozenset[str]:
        # Most validations name the same few module lists: parse each once.
        ids = self._module_ids.get(text)
        if ids is None:
            try:
                ids = frozenset(str(m).split("@", 1)[0] for m in json.loads(text or "[]"))
            except (ValueError, TypeError):
                ids = frozenset()  # an edited column; the row's hash says so
            self._module_ids[text] = ids
        return ids

    def finish(self) -> Rollups:
        """Fold the per-status counts into per-(day, gate) rows."""
        for (day, gate, module, status), n in self.outcomes.items():
            key = (day, str(gate))
            g = self.gates.get(key)
            if g is None:
                g = self.gates[key] = [0] * len(_GATE_COLS)
            g[0] += n
            if (i := _GATE_STATUS.get(str(status))) is not None:
                g[1 + i] += n
            self.gate_modules.setdefault(key, set()).add(str(module))
        self.outcomes = {}
        self._module_ids = {}
        return self

    def stats(self, since: str | None = None) -> dict[str, Any]:
        """What :meth:`AuditLog.stats` returns, from these figures."""
        day = since[:10] if since else ""
        totals = dict.fromkeys(_DAILY_COLS, 0)
        for d, v in self.daily.items():
            if d >= day:
                for k, x in zip(_DAILY_COLS, v, strict=True):
                    totals[k] += x
        n = totals["validations"]
        totals["pass_rate"] = round(totals["passed"] / n, 4) if n else None
        totals["fail_rate"] = round(totals["failed"] / n, 4) if n else None
        return {"since": day or None, "module": None, **totals}

    def trends(self, since: str | None = None) -> list[dict[str, Any]]:
        day = since[:10] if since else ""
        return [
            {
                "day": d,
                **dict(zip(_DAILY_COLS, v, strict=True)),
                "avg_ms": round(v[5] / max(v[0], 1), 1),
            }
            for d, v in sorted(self.daily.items())
            if d >= day
        ]

    def top_failing(self, limit: int = 10, since: str | None = None) -> list[dict[str, Any]]:
        day = since[:10] if since else ""
        per: dict[str, list[Any]] = {}
        for (d, gate), v in self.gates.items():
            if d >= day:
                t = per.setdefault(gate, [min(self.gate_modules[d, gate]), 0, 0])
                t[1] += v[2]
                t[2] += v[0]
        rows = [
            {
                "gate": g,
                "module": m,
                "failed": f,
                "evaluated": e,
                "fail_pct": round(100.0 * f / max(e, 1), 1),
            }
            for g, (m, f, e) in per.items()
            if f > 0
        ]
        rows.sort(key=lambda r: (-r["failed"], r["gate"]))
        return rows[:limit]


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


# -- the log -------------------------------------------------------------------------------


@dataclass
class _Prepared:
    """One validation, made ready to write before the write lock is taken: only its id, time
    and the hashes (which need the chain head) are left for inside the transaction."""

    row: dict[str, Any]
    findings: list[tuple[Any, ...]]  # detailed results, in _FINDING_HASHED order
    results: str  # plain results (RESULT_COLUMNS entries), JSON
    statuses: list[tuple[str, str, str]]  # (gate, module, status) of every result, for rollups
    modules: list[str]
    sources: list[GateSource]
    stamped: dict[str, Any] | None = None  # the row as written

    @classmethod
    def of(cls, report: Report, principal: str, gates: list[GateSource]) -> _Prepared:
        findings, plain = [], []
        for i, g in enumerate(report.gates):
            if is_plain(g):
                plain.append(result_entry(i, g))
            else:
                f = finding_row(i, g)
                findings.append(tuple(f.get(c) for c in _FINDING_HASHED))
        return cls(
            row=validation_row(report, principal),
            findings=findings,
            results=json.dumps(plain, separators=(",", ":"), ensure_ascii=False),
            statuses=[(g.gate, g.module, g.status.value) for g in report.gates],
            modules=sorted({m.id for m in report.modules}),
            sources=list(gates),
        )


class AuditLog:
    """:class:`engine.hooks.AuditSink` on one SQLite file (WAL, ``synchronous=FULL`` unless
    ``CLEARANCE_AUDIT_SYNC=normal``).

    Safe to share between threads (one connection per thread) and processes (every write takes
    the previous hash inside ``BEGIN IMMEDIATE``, so the chain cannot fork). Any failure to
    write raises :class:`ClearanceError`: a validation is never silently left off the record.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        readonly: bool = False,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path) if path is not None else audit_db_path()
        self.readonly = readonly
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._sources: set[tuple[str, str]] = set()  # (gate, version) committed by this object
        if readonly:
            if not self.path.exists():
                raise UserError(f"no audit log at {self.path} (set CLEARANCE_AUDIT_DB or --db)")
        else:
            self._guard("open", self._init_schema)

    # -- connections ------------------------------------------------------------------------

    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            if self.readonly:
                conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro",
                    uri=True,
                    timeout=self.timeout,
                    check_same_thread=False,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Each connection is used by its own thread only; close() may run elsewhere.
                conn = sqlite3.connect(
                    str(self.path), timeout=self.timeout, check_same_thread=False
                )
                # FULL: a recorded validation survives a power cut (an fsync per commit);
                # NORMAL, if asked for, only a crash of the process (WAL).
                conn.execute(f"PRAGMA synchronous={audit_sync().upper()}")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            db = sqlite_utils.Database(conn)
            self._local.db = db
            with self._lock:
                self._all.append(conn)
        return db

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _guard(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn``; turn storage failures into one clear :class:`ClearanceError`."""
        try:
            return fn(*args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            raise ClearanceError(f"audit log {self.path}: cannot {what}: {_explain(exc)}") from exc

    def _transaction(self, fn: Any) -> Any:
        db = self.db()
        # IMMEDIATE takes the write lock before reading the chain head: no two writers can
        # both extend the same head.
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    def _init_schema(self) -> None:
        db = self.db()
        if db.journal_mode != "wal":
            db.enable_wal()

        def create(db: sqlite_utils.Database) -> None:
            db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
            stored = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            upgrading = stored is not None and _int_or(stored[0], SCHEMA_VERSION) < SCHEMA_VERSION
            db.table("validations").create(
                VALIDATIONS,
                pk="id",
                if_not_exists=True,
                not_null=["time", "doc_sha256", "prev_hash", "row_hash"],
            )
            columns = {r[1] for r in db.execute("PRAGMA table_info(validations)")}
            # Older logs gain the new columns; their rows keep verifying (a column a row was
            # written without is left out of its hash).
            if "results" not in columns:  # schema 1
                db.execute("ALTER TABLE validations ADD COLUMN results TEXT")
            if "ruleset_head" not in columns:  # schema 1 and 2
                db.execute("ALTER TABLE validations ADD COLUMN ruleset_head TEXT")
            db.table("findings").create(
                FINDINGS,
                pk="id",
                if_not_exists=True,
                foreign_keys=[("validation_id", "validations", "id")],
                not_null=["validation_id", "gate", "status"],
            )
            db.table("waivers").create(
                WAIVERS,
                pk="id",
                if_not_exists=True,
                not_null=["gate", "doc_sha256", "reason", "approver"],
            )
            db.table("checkpoints").create(CHECKPOINTS, pk="id", if_not_exists=True)
            db.table("rulesets").create(RULESETS, pk=("gate", "version"), if_not_exists=True)
            if "row_hash" not in {r[1] for r in db.execute("PRAGMA table_info(rulesets)")}:
                _chain_legacy_rulesets(db)
            for table, cols in _INDEXES:
                db.table(table).create_index(cols, if_not_exists=True)
            db.executescript(_ROLLUPS)
            if upgrading:
                # Rollups were never checked before schema 3: rebuild them from the records
                # once, so verify compares like with like from now on.
                rebuild_rollups(db)
            if stored is None or upgrading:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    [str(SCHEMA_VERSION)],
                )

        self._transaction(create)

    # -- writing ----------------------------------------------------------------------------

    def record(self, report: Report, *, principal: str, gates: list[GateSource]) -> int:
        if self.readonly:
            raise ClearanceError(f"audit log {self.path} was opened read-only")
        prepared = [_Prepared.of(report, principal, gates)]
        return self._guard("record a validation", self._write, prepared)[0]

    def record_many(self, items: list[tuple[Report, str, list[GateSource]]]) -> list[int]:
        """Record several validations (report, principal, gate sources) in ONE transaction: one
        fsync for all, for a busy server's group commit. All are written, or none and it raises."""
        if self.readonly:
            raise ClearanceError(f"audit log {self.path} was opened read-only")
        if not items:
            return []
        prepared = [_Prepared.of(r, p, g) for r, p, g in items]
        return self._guard(f"record {len(items)} validations", self._write, prepared)

    def _write(self, prepared: list[_Prepared]) -> list[int]:
        # Gate sources this object already committed are not sent again (rulesets keeps each
        # (gate, version) once); a process validating many documents writes them once.
        with self._lock:
            known = set(self._sources)
        sources: dict[tuple[str, str], GateSource] = {}
        for p in prepared:
            for g in p.sources:
                if (g.code, g.version) not in known:
                    sources.setdefault((g.code, g.version), g)

        def write(db: sqlite_utils.Database) -> list[int]:
            conn = db.conn
            ruleset_head = _add_sources(conn, sources.values())
            head_id, prev = self._head(db)
            ids: list[int] = []
            rows: list[tuple[Any, ...]] = []
            finding_rows: list[tuple[Any, ...]] = []
            for p in prepared:
                head_id += 1
                row = {
                    **p.row,
                    "id": head_id,
                    "time": now_iso(),
                    "prev_hash": prev,
                    "ruleset_head": ruleset_head,
                    "results": p.results,
                }
                row["row_hash"] = prev = row_hash("validations", row, p.findings)
                rows.append(tuple(row[c] for c in VALIDATIONS))
                finding_rows.extend((head_id, *f) for f in p.findings)
                ids.append(head_id)
                p.stamped = row
            conn.executemany(_INSERT_VALIDATION, rows)
            if finding_rows:
                conn.executemany(_INSERT_FINDING, finding_rows)
            _add_rollups(conn, prepared)
            return ids

        ids = self._transaction(write)
        if sources:
            with self._lock:
                self._sources |= set(sources)
        return ids

    def _head(self, db: sqlite_utils.Database) -> tuple[int, str]:
        last = db.execute(QUERIES["head"]).fetchone()
        if last:
            return int(last[0]), str(last[1])
        cp = list(db.query(QUERIES["last_checkpoint"], {"chain": "validations"}))
        if cp:
            return int(cp[0]["last_id"]), str(cp[0]["last_hash"])
        return 0, GENESIS

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
        if until is not None and until <= now_iso():
            raise UserError(f"waiver expiry {expires} is already in the past")

        def write(db: sqlite_utils.Database) -> int:
            last = db.execute(
                "SELECT id, row_hash FROM waivers ORDER BY id DESC LIMIT 1"
            ).fetchone()
            new = _typed(
                {
                    "id": (last[0] + 1) if last else 1,
                    "gate": gate,
                    "doc_sha256": doc,
                    "reason": reason,
                    "approver": approver,
                    "created": now_iso(),
                    "expires": until,
                    "prev_hash": last[1] if last else GENESIS,
                },
                WAIVERS,
            )
            new["row_hash"] = row_hash("waivers", new)
            db.table("waivers").insert(new)
            return int(new["id"])

        return self._guard("record a waiver", self._transaction, write)

    def waivers_for(self, doc_sha256: str) -> dict[str, Waiver]:
        rows = self._guard(
            "read waivers",
            lambda: list(
                self.db().query(
                    QUERIES["waivers_for"], {"doc": doc_sha256.lower(), "now": now_iso()}
                )
            ),
        )
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

    # -- queries ----------------------------------------------------------------------------

    def _query(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self._guard("query", lambda: list(self.db().query(QUERIES[name], params or {})))

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._query("recent", {"limit": limit})

    def history(self, doc: str, limit: int = 100) -> list[dict[str, Any]]:
        """Validations of one document, newest first, by full sha256 or a unique-enough prefix."""
        if not _SHA_PREFIX.match(doc):
            raise UserError(f"'{doc}' is neither a file nor a sha256 (prefix of 4+ hex digits)")
        lo = doc.lower()
        hi = lo + "g"  # every hex string starting with lo sorts below lo + "g"
        return self._query("history", {"lo": lo, "hi": hi, "limit": limit})

    def findings(self, validation_id: int) -> list[dict[str, Any]]:
        """Every gate result of one validation in report order: its findings rows and its plain
        results (see RESULT_COLUMNS) expanded to the same shape (``id`` None)."""
        rows = self._query("findings_of", {"id": validation_id})
        compact = self._query("results_of", {"id": validation_id})
        if compact and compact[0]["results"]:
            rows.extend(expand_results(validation_id, compact[0]["results"]))
            rows.sort(key=lambda f: f["seq"])
        return rows

    def stats(self, since: str | None = None, module: str | None = None) -> dict[str, Any]:
        day = since[:10] if since else ""
        if module:
            totals = self._query("stats_module", {"module": module, "since": day})[0]
            gates = self._query("by_gate_module", {"module": module, "since": day})
        else:
            totals = self._query("stats", {"since": day})[0]
            gates = self._query("by_gate", {"since": day})
        n = totals["validations"]
        totals["pass_rate"] = round(totals["passed"] / n, 4) if n else None
        totals["fail_rate"] = round(totals["failed"] / n, 4) if n else None
        return {"since": day or None, "module": module, **totals, "by_gate": gates}

    def top_failing(self, limit: int = 10, since: str | None = None) -> list[dict[str, Any]]:
        return self._query("top_failing", {"limit": limit, "since": since[:10] if since else ""})

    def trends(self, since: str | None = None) -> list[dict[str, Any]]:
        return self._query("trends", {"since": since[:10] if since else ""})

    def iter_validations(self, with_findings: bool = False) -> Iterator[dict[str, Any]]:
        """Every validation in chain order (for export), streamed."""
        db = self.db()
        rows = db.execute("SELECT * FROM validations ORDER BY id")
        cols = [d[0] for d in rows.description]
        finds = _FindingStream(db) if with_findings else None
        for values in rows:
            row = dict(zip(cols, values, strict=True))
            if finds is not None:
                every = [dict(zip(_FINDING_HASHED, f, strict=True)) for f in finds.take(row["id"])]
                if row.get("results"):
                    every.extend(
                        {c: e[c] for c in _FINDING_HASHED}
                        for e in expand_results(row["id"], row["results"])
                    )
                    every.sort(key=lambda f: f["seq"])
                row["findings"] = every
            yield row

    def export(self, fmt: str, out: TextIO) -> int:
        """Write every validation to ``out`` as CSV, or as JSON with its findings; returns the
        number written. Streamed row by row: 100,000s of validations never sit in memory."""
        if fmt not in ("csv", "json"):
            raise UserError(f"unknown export format '{fmt}' (expected one of: csv, json)")
        return int(self._guard("export", self._export, fmt, out))

    def _export(self, fmt: str, out: TextIO) -> int:
        n = 0
        if fmt == "csv":
            writer: csv.DictWriter | None = None
            for row in self.iter_validations():
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                n += 1
            return n
        out.write("[")
        for row in self.iter_validations(with_findings=True):
            out.write(("," if n else "") + "\n" + json.dumps(row))
            n += 1
        out.write("\n]\n")
        return n

    # -- tamper evidence --------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Walk every hash chain (checkpoints, rulesets, validations with their findings,
        waivers) and check the per-day rollups against the records, in one read snapshot. A
        damaged file (truncated, overwritten) is a failed verification that names the last
        row that verified, not an error."""
        try:
            return self._guard("verify", lambda: self._verify_snapshot(self.db()))
        except ClearanceError as exc:
            if not _is_damage(exc.__cause__):
                raise
            return self._guard("verify", self._verify_damaged, exc.__cause__)

    def _verify_snapshot(self, db: sqlite_utils.Database) -> VerifyResult:
        # One read transaction: rows, findings and rollups from the same moment, however many
        # writers commit meanwhile (each statement would otherwise see its own snapshot).
        db.execute("BEGIN")
        try:
            result = VerifyResult()
            _walk(db, result)
            return result
        finally:
            if db.conn.in_transaction:
                db.execute("ROLLBACK")

    def _verify_damaged(self, cause: BaseException) -> VerifyResult:
        """Read what can still be read, from a copy whose header no longer claims the file's
        original size (SQLite then reads the pages that are there and fails at the first one
        that is not), and report the last row that verified."""
        result = VerifyResult()
        detail = _damage_detail(self.path, cause)
        with tempfile.TemporaryDirectory(prefix="clearance-verify-") as tmp:
            copy = Path(tmp) / "copy.db"
            shutil.copyfile(self.path, copy)
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.exists():
                shutil.copyfile(wal, Path(tmp) / "copy.db-wal")
            _forget_header_size(copy)
            conn = sqlite3.connect(copy)
            try:
                _walk(sqlite_utils.Database(conn), result)
                stopped = "yet every row read verified up to the damage"
            except sqlite3.DatabaseError as exc:
                stopped = f"reading stopped there: {exc}"
            finally:
                conn.close()
        last = (
            f"validations #{result.last_good_id} (row_hash {result.last_good_hash})"
            if result.last_good_id is not None
            else "none"
        )
        result.problems.insert(
            0, f"the database file is damaged ({detail}); {stopped}; last good row: {last}"
        )
        result.derived = None  # figures from part of a file are not figures
        return result

    # -- retention --------------------------------------------------------------------------

    def prune(self, before: str) -> int:
        """Delete validations (and their findings) recorded before ``before``; record a
        checkpoint with the last pruned row's hash so the remaining chain still verifies."""
        cutoff = parse_when(before)
        check = self.verify()
        if not check.ok:
            # Pruning would erase the evidence of tampering along with the rows.
            raise ClearanceError(
                f"audit log {self.path} does not verify; refusing to prune ({check.problems[0]})"
            )

        def write(db: sqlite_utils.Database) -> int:
            last = db.execute(
                "SELECT max(id) FROM validations WHERE time < ?", [cutoff]
            ).fetchone()[0]
            if last is None:
                return 0
            last_hash, first = db.execute(
                "SELECT row_hash, (SELECT min(id) FROM validations) FROM validations WHERE id = ?",
                [last],
            ).fetchone()
            db.execute("DELETE FROM findings WHERE validation_id <= ?", [last])
            db.execute("DELETE FROM validations WHERE id <= ?", [last])
            day = cutoff[:10]
            for table in ("daily", "daily_modules", "daily_gates"):
                db.execute(f"DELETE FROM {table} WHERE day < ?", [day])
            # The cutoff day keeps only what is left of it: rollups always match the records
            # (verify checks that they do).
            rebuild_rollups(db, day=day)
            prev = db.execute(
                "SELECT row_hash FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).fetchone()
            cp_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM checkpoints").fetchone()[0]
            cp = _typed(
                {
                    "id": cp_id,
                    "time": now_iso(),
                    "chain": "validations",
                    "before": cutoff,
                    "last_id": last,
                    "last_hash": last_hash,
                    "pruned": last - first + 1,
                    "prev_hash": prev[0] if prev else GENESIS,
                },
                CHECKPOINTS,
            )
            cp["row_hash"] = row_hash("checkpoints", cp)
            db.table("checkpoints").insert(cp)
            return int(cp["pruned"])

        return self._guard("prune", self._transaction, write)

    def count(self) -> int:
        return self._guard(
            "count", lambda: self.db().execute("SELECT count(*) FROM validations").fetchone()[0]
        )


def _int_or(text: Any, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _rulesets_head(conn: sqlite3.Connection) -> tuple[int, str]:
    last = conn.execute("SELECT id, row_hash FROM rulesets ORDER BY id DESC LIMIT 1").fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def _add_sources(conn: sqlite3.Connection, sources: Iterable[GateSource]) -> str:
    """Append the gate sources not stored yet to the rulesets chain (inside the write
    transaction); returns the chain's head, which the validations written with it carry."""
    head_id, head = _rulesets_head(conn)
    for g in sources:
        if conn.execute(
            "SELECT 1 FROM rulesets WHERE gate = ? AND version = ?", (g.code, g.version)
        ).fetchone():
            continue  # another process stored it first
        head_id += 1
        row = _typed(
            {
                "id": head_id,
                "gate": g.code,
                "version": g.version,
                "module": g.module,
                "source": g.source,
                "prev_hash": head,
            },
            RULESETS,
        )
        row["row_hash"] = head = row_hash("rulesets", row)
        conn.execute(_INSERT_SOURCE, [row[c] for c in RULESETS])
    return head


def _chain_legacy_rulesets(db: sqlite_utils.Database) -> None:
    """Schema 3: give the rows an older log stored their place in the rulesets chain (in the
    order they were written). Whatever they hold now is what the chain vouches for from here."""
    for column in ("id INTEGER", "prev_hash TEXT", "row_hash TEXT"):
        db.execute(f"ALTER TABLE rulesets ADD COLUMN {column}")
    prev = GENESIS
    old = db.execute("SELECT rowid, gate, version, module, source FROM rulesets ORDER BY rowid")
    for n, (rowid, gate, version, module, source) in enumerate(old.fetchall(), start=1):
        row = {
            "id": n,
            "gate": gate,
            "version": version,
            "module": module,
            "source": source,
            "prev_hash": prev,
        }
        prev = row_hash("rulesets", row)
        db.execute(
            "UPDATE rulesets SET id = ?, prev_hash = ?, row_hash = ? WHERE rowid = ?",
            [n, row["prev_hash"], prev, rowid],
        )


def _check_row(
    problems: list[str], table: str, row: dict[str, Any], prev: str, expected: str
) -> None:
    where = f"{table} #{row['id']}"
    if row["prev_hash"] != prev:
        problems.append(
            f"{where}: prev_hash does not match the row before it "
            "(a row was deleted, inserted or reordered)"
        )
    elif row["row_hash"] != expected:
        problems.append(f"{where}: content does not match its row_hash (edited)")


_FIND_GATE, _FIND_MODULE, _FIND_STATUS = (
    _FINDING_HASHED.index(c) for c in ("gate", "module", "status")
)
_RES_GATE, _RES_MODULE, _RES_STATUS = (
    RESULT_COLUMNS.index(c) for c in ("gate", "module", "status")
)


def _walk(db: sqlite_utils.Database, result: VerifyResult) -> None:
    """Check everything the log reports from into ``result``: checkpoints, the rulesets chain,
    validations (with findings, results and the rulesets head they name), waivers, and the
    rollups against figures recomputed from the validations read."""
    problems = result.problems
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"validations", "findings", "waivers", "checkpoints"} <= tables:
        problems.append(
            "the file holds no audit log (its tables are missing): it is empty, "
            "was truncated to nothing, or is another database"
        )
        return
    schema = 0
    if "meta" in tables:
        got = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        schema = _int_or(got[0], 0) if got else 0

    # Checkpoints chain, then rulesets, then validations from the last checkpoint, then waivers.
    last_cp: dict[str, Any] | None = None
    prev = GENESIS
    for cp in db.query("SELECT * FROM checkpoints ORDER BY id"):
        result.checkpoints += 1
        # Rows are hashed as read, not coerced: a value whose type was changed is an edit.
        _check_row(problems, "checkpoints", cp, prev, row_hash("checkpoints", cp))
        prev = cp["row_hash"]
        if cp["chain"] == "validations":
            last_cp = cp

    heads: set[str] | None = None  # every hash in the rulesets chain (schema 3)
    if "rulesets" in tables and "row_hash" in _columns(db, "rulesets"):
        heads = {GENESIS}
        prev = GENESIS
        for r in db.query("SELECT * FROM rulesets ORDER BY id"):
            result.rulesets += 1
            _check_row(problems, "rulesets", r, prev, row_hash("rulesets", r))
            prev = r["row_hash"]
            heads.add(r["row_hash"])

    prev = last_cp["last_hash"] if last_cp else GENESIS
    prev_id = last_cp["last_id"] if last_cp else 0
    if last_cp:  # everything pruned so far: the checkpoint is the head
        result.head_id, result.head_hash = prev_id, prev
    derived = Rollups()
    intact = True  # no validation problem yet: the row read is the last good one
    finds = _FindingStream(db)
    cur = db.execute("SELECT * FROM validations ORDER BY id")
    cols = [d[0] for d in cur.description]
    for values in cur:
        row = dict(zip(cols, values, strict=True))
        before = len(problems)
        result.validations += 1
        findings = finds.take(row["id"])
        expected = row_hash("validations", row, findings)
        if row["id"] > prev_id + 1 and row["prev_hash"] != prev:
            gap = f"#{prev_id + 1}" + (f"..#{row['id'] - 1}" if row["id"] - prev_id > 2 else "")
            problems.append(
                f"validations #{row['id']}: row(s) {gap} before it are missing (deleted)"
            )
            if row["row_hash"] != expected:
                problems.append(
                    f"validations #{row['id']}: content does not match its row_hash (edited)"
                )
        else:
            _check_row(problems, "validations", row, prev, expected)
        head = row.get("ruleset_head")
        if heads is not None and head is not None and head not in heads:
            problems.append(
                f"validations #{row['id']}: the gate sources it was judged by are "
                "not in the rulesets chain (rulesets rows edited or deleted)"
            )
        derived.add(row, findings)
        prev, prev_id = row["row_hash"], row["id"]
        result.head_id, result.head_hash = row["id"], row["row_hash"]
        intact = intact and len(problems) == before
        if intact:
            result.last_good_id, result.last_good_hash = row["id"], row["row_hash"]
    if intact and result.last_good_id is None and last_cp:
        result.last_good_id, result.last_good_hash = prev_id, prev
    for orphan in finds.orphans():
        problems.append(
            f"findings #{orphan}: belongs to no validation (inserted, or its "
            "validation was deleted)"
        )

    prev = GENESIS
    for w in db.query("SELECT * FROM waivers ORDER BY id"):
        result.waivers += 1
        _check_row(problems, "waivers", w, prev, row_hash("waivers", w))
        prev = w["row_hash"]

    result.derived = derived.finish()
    # Logs from before schema 3 are checked once a writer has upgraded them (and rebuilt
    # their rollups): until then a mid-day prune could leave a day out of step.
    if schema >= 3 and {"daily", "daily_modules", "daily_gates"} <= tables:
        _compare_rollups(db, derived, problems)


def _columns(db: sqlite_utils.Database, table: str) -> set[str]:
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def _same(stored: Any, derived: Any) -> bool:
    if isinstance(derived, float):  # a sum of durations, added up in another order
        return isinstance(stored, int | float) and math.isclose(
            stored, derived, rel_tol=1e-9, abs_tol=1e-6
        )
    return type(stored) is type(derived) and stored == derived


def _compare_rollups(db: sqlite_utils.Database, derived: Rollups, problems: list[str]) -> None:
    """One problem per rollup row that differs from the figures recomputed from the records:
    ``audit stats`` and the report read the rollups, so a forged rollup is a forged report."""

    def compare(
        what: str,
        cols: tuple[str, ...],
        stored: dict[Any, list[Any]],
        recomputed: dict[Any, list[Any]],
    ) -> None:
        for key in sorted(set(stored) | set(recomputed), key=str):
            name = " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
            s, d = stored.get(key), recomputed.get(key)
            if s is None:
                problems.append(
                    f"{what} {name}: no rollup row, yet {d[0]} recorded (rollup row deleted)"
                )
            elif d is None:
                problems.append(
                    f"{what} {name}: a rollup row with {cols[0]}={s[0]}, yet "
                    "nothing recorded (rollup row inserted, or its records deleted)"
                )
            elif diff := [
                f"{c}={sv} (records: {dv})"
                for c, sv, dv in zip(cols, s, d, strict=True)
                if not _same(sv, dv)
            ]:
                problems.append(
                    f"{what} {name}: the rollup says {', '.join(diff)} (the "
                    "rollup was edited, or records were deleted)"
                )

    q = db.execute
    compare(
        "daily",
        _DAILY_COLS,
        {r[0]: list(r[1:]) for r in q(f"SELECT day, {', '.join(_DAILY_COLS)} FROM daily")},
        {k: [*v[:5], float(v[5]), *v[6:]] for k, v in derived.daily.items()},
    )
    compare(
        "daily_modules",
        _MODULE_COLS,
        {
            (r[0], r[1]): list(r[2:])
            for r in q(f"SELECT day, module, {', '.join(_MODULE_COLS)} FROM daily_modules")
        },
        derived.modules,
    )
    stored_gates: dict[Any, list[Any]] = {}
    for r in q(f"SELECT day, gate, module, {', '.join(_GATE_COLS)} FROM daily_gates"):
        stored_gates[r[0], r[1]] = list(r[3:])
        modules = derived.gate_modules.get((r[0], r[1]))
        if modules is not None and r[2] not in modules:
            problems.append(
                f"daily_gates {r[0]} {r[1]}: the rollup says module={r[2]} "
                f"(records: {', '.join(sorted(modules))}) (the rollup was edited)"
            )
    compare("daily_gates", _GATE_COLS, stored_gates, derived.gates)


_DAMAGE = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")


def _is_damage(exc: BaseException | None) -> bool:
    """Whether SQLite failed because the file's bytes are wrong (not busy, not permissions)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_DAMAGE) or "malformed" in str(exc) or "not a database" in str(exc)


_MAGIC = b"SQLite format 3\x00"


def _header(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(100)


def _damage_detail(path: Path, cause: BaseException) -> str:
    size = path.stat().st_size
    head = _header(path)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return f"{cause}; the file is {size:,} bytes and has no SQLite header"
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    pages = struct.unpack(">I", head[28:32])[0]
    if head[24:28] == head[92:96] and pages * page > size:
        return f"{cause}; the file is {size:,} bytes, its header says {pages * page:,}: truncated"
    return str(cause)


def _forget_header_size(path: Path) -> None:
    """Make SQLite take a copy's size from the file, not from its header: the header's page
    count only counts while bytes 92-95 equal the change counter at 24-27."""
    head = _header(path)
    if len(head) < 100 or not head.startswith(_MAGIC):
        return
    counter = struct.unpack(">I", head[24:28])[0]
    with path.open("r+b") as fh:
        fh.seek(92)
        fh.write(struct.pack(">I", (counter + 1) & 0xFFFFFFFF))


class _FindingStream:
    """Findings in validation order, consumed alongside validations (a merge join: one pass).
    Yields each finding's hashed columns, as stored, as a tuple in ``_FINDING_HASHED`` order."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        cur = db.execute(
            f"SELECT id, validation_id, {', '.join(_FINDING_HASHED)} FROM findings "
            "ORDER BY validation_id, seq"
        )
        self._rows = iter(cur)
        self._pending: tuple[Any, ...] | None = next(self._rows, None)
        self._orphans: list[int] = []

    def take(self, validation_id: int) -> list[tuple[Any, ...]]:
        out = []
        while self._pending is not None and self._pending[1] <= validation_id:
            if self._pending[1] == validation_id:
                out.append(self._pending[2:])
            else:
                self._orphans.append(self._pending[0])
            self._pending = next(self._rows, None)
        return out

    def orphans(self) -> list[int]:
        while self._pending is not None:
            self._orphans.append(self._pending[0])
            self._pending = next(self._rows, None)
        return self._orphans


_UPSERT_DAILY = (
    "INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day) DO UPDATE SET "
    "validations = validations + excluded.validations, passed = passed + excluded.passed, "
    "failed = failed + excluded.failed, indeterminate = indeterminate + excluded.indeterminate,"
    " cache_hits = cache_hits + excluded.cache_hits,"
    " duration_ms = duration_ms + excluded.duration_ms,"
    " llm_calls = llm_calls + excluded.llm_calls, llm_tokens = llm_tokens + excluded.llm_tokens"
)
_UPSERT_MODULES = (
    "INSERT INTO daily_modules VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(module, day) DO UPDATE "
    "SET validations = validations + excluded.validations, passed = passed + excluded.passed, "
    "failed = failed + excluded.failed, indeterminate = indeterminate + excluded.indeterminate"
)
_UPSERT_GATES = (
    "INSERT INTO daily_gates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day, gate) DO "
    "UPDATE SET evaluated = evaluated + excluded.evaluated, passed = passed + excluded.passed, "
    "failed = failed + excluded.failed, indeterminate = indeterminate + excluded.indeterminate,"
    " waived = waived + excluded.waived, not_applicable = not_applicable + excluded.not_applicable"
)
# daily_gates counters after `evaluated`, in column order
_GATE_STATUS = {
    s.value: i
    for i, s in enumerate(
        (Status.pass_, Status.fail, Status.indeterminate, Status.waived, Status.not_applicable)
    )
}


def _add_rollups(conn: sqlite3.Connection, written: list[_Prepared]) -> None:
    """Add written validations to the per-day rollups, summed in Python first: a group commit
    of 50 validations of 82 gates is 82 gate upserts, not 4,100."""
    daily: dict[str, list[Any]] = {}
    modules: dict[tuple[str, str], list[int]] = {}
    gates: dict[tuple[str, str], list[Any]] = {}
    for p in written:
        row = p.stamped
        assert row is not None
        day, verdict = row["time"][:10], row["verdict"]
        outcome = (int(verdict == "pass"), int(verdict == "fail"), int(verdict in _UNDECIDED))
        d = daily.setdefault(day, [0, 0, 0, 0, 0, 0.0, 0, 0])
        for k, v in enumerate(
            (
                1,
                *outcome,
                row["cache_hit"],
                row["duration_ms"] or 0.0,
                row["llm_calls"] or 0,
                (row["llm_input_tokens"] or 0) + (row["llm_output_tokens"] or 0),
            )
        ):
            d[k] += v
        for m in p.modules:
            c = modules.setdefault((day, m), [0, 0, 0, 0])
            for k, v in enumerate((1, *outcome)):
                c[k] += v
        for gate, module, status in p.statuses:
            g = gates.get((day, gate))
            if g is None:
                g = gates[day, gate] = [module, 0, 0, 0, 0, 0, 0]
            g[1] += 1
            g[2 + _GATE_STATUS[status]] += 1
    conn.executemany(_UPSERT_DAILY, [(day, *v) for day, v in daily.items()])
    conn.executemany(_UPSERT_MODULES, [(day, m, *v) for (day, m), v in modules.items()])
    conn.executemany(_UPSERT_GATES, [(day, gate, *v) for (day, gate), v in gates.items()])


def rebuild_rollups(db: sqlite_utils.Database, day: str | None = None) -> None:
    """Recompute the per-day rollups from the records (after a bulk load, an upgrade), or
    only one day's (after a prune cut into it). Runs inside the caller's transaction."""
    only = "WHERE substr(v.time, 1, 10) = :day" if day else ""
    for table in ("daily", "daily_modules", "daily_gates"):
        db.execute(f"DELETE FROM {table}" + (" WHERE day = :day" if day else ""), {"day": day})
    db.execute(
        f"""
    INSERT INTO daily SELECT substr(v.time, 1, 10), count(*), sum(v.verdict = 'pass'),
      sum(v.verdict = 'fail'), sum(v.verdict IN ('indeterminate', 'review')), sum(v.cache_hit),
      total(v.duration_ms), total(v.llm_calls),
      total(v.llm_input_tokens) + total(v.llm_output_tokens)
      FROM validations v {only} GROUP BY 1""",
        {"day": day},
    )
    # Each module once per validation, as record() counts them.
    db.execute(
        f"""
    INSERT INTO daily_modules SELECT day, module, count(*), sum(verdict = 'pass'),
      sum(verdict = 'fail'), sum(verdict IN ('indeterminate', 'review'))
      FROM (SELECT DISTINCT v.id, substr(v.time, 1, 10) AS day, v.verdict,
              substr(m.value, 1, instr(m.value || '@', '@') - 1) AS module
            FROM validations v, json_each(v.modules) m {only})
      GROUP BY day, module""",
        {"day": day},
    )
    db.execute(
        f"""
    INSERT INTO daily_gates SELECT day, gate, max(module), count(*),
      sum(status = 'pass'), sum(status = 'fail'), sum(status = 'indeterminate'),
      sum(status = 'waived'), sum(status = 'not_applicable')
      FROM (SELECT substr(v.time, 1, 10) AS day, f.gate, f.module, f.status
              FROM findings f JOIN validations v ON v.id = f.validation_id {only}
            UNION ALL
            SELECT substr(v.time, 1, 10), json_extract(r.value, '$[1]'),
              json_extract(r.value, '$[3]'), json_extract(r.value, '$[4]')
              FROM validations v, json_each(v.results) r {only})
      GROUP BY day, gate""",
        {"day": day},
    )


def _explain(exc: BaseException) -> str:
    text = str(exc)
    low = text.lower()
    if "full" in low:
        return f"{text} (the disk or the database's size limit is full; free space and retry)"
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return f"{text} (the file or its directory is read-only)"
    if "locked" in low or "busy" in low:
        return f"{text} (another process held the log longer than {BUSY_TIMEOUT_S:.0f} s)"
    return text


def open_audit() -> AuditLog | None:
    """The audit sink the engine should use: ``None`` when ``CLEARANCE_NO_AUDIT=1``. Raises
    :class:`ClearanceError` if the log cannot be opened (validation must not run unrecorded)."""
    if audit_disabled():
        return None
    return AuditLog()


def since_days(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()
