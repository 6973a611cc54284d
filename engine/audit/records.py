"""What every audit backend shares: the columns, the row hashes, redaction, the rows a report
becomes, the per-day rollups verify recomputes, and the settings that pick a backend."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from engine.errors import ServiceError, UserError
from engine.hooks import GateSource
from engine.report import GateResult, Report, Severity, Span, Status

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

_URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(location: str | Path | None) -> bool:
    """Whether an audit location names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(_URL_SCHEMES)


def audit_url() -> str | None:
    """``CLEARANCE_AUDIT_URL`` (``postgresql://...``), when the log lives in PostgreSQL."""
    url = os.environ.get("CLEARANCE_AUDIT_URL", "").strip()
    if not url:
        return None
    if not is_url(url):
        raise ServiceError(
            "CLEARANCE_AUDIT_URL must start with postgresql:// (for a SQLite file, "
            "set CLEARANCE_AUDIT_DB instead)"
        )
    return url


def audit_location() -> str | Path:
    """Where the audit log lives: ``CLEARANCE_AUDIT_URL`` if set, else the SQLite file."""
    return audit_url() or audit_db_path()


def shown_location(location: str | Path) -> str:
    """A location fit for messages and logs: a URL's password is never shown."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", str(location))


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
        raise ServiceError(f"CLEARANCE_AUDIT_SYNC={value!r}: expected 'full' or 'normal'")
    return value


class Tx(Protocol):
    """The part of a DB-API connection the shared code writes through (``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = (), /) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


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
        raise ServiceError(
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
        totals: dict[str, Any] = dict.fromkeys(_DAILY_COLS, 0)
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


def _int_or(text: Any, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


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


def _same(stored: Any, derived: Any) -> bool:
    if isinstance(derived, float):  # a sum of durations, added up in another order
        return isinstance(stored, int | float) and math.isclose(
            stored, derived, rel_tol=1e-9, abs_tol=1e-6
        )
    return type(stored) is type(derived) and stored == derived


# Columns qualified by their table: PostgreSQL calls a bare one in DO UPDATE ambiguous.
_UPSERT_DAILY = (
    "INSERT INTO daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day) DO UPDATE SET "
    "validations = daily.validations + excluded.validations, passed = daily.passed + excluded.passed, "
    "failed = daily.failed + excluded.failed, indeterminate = daily.indeterminate + excluded.indeterminate,"
    " cache_hits = daily.cache_hits + excluded.cache_hits,"
    " duration_ms = daily.duration_ms + excluded.duration_ms,"
    " llm_calls = daily.llm_calls + excluded.llm_calls, llm_tokens = daily.llm_tokens + excluded.llm_tokens"
)
_UPSERT_MODULES = (
    "INSERT INTO daily_modules VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(module, day) DO UPDATE "
    "SET validations = daily_modules.validations + excluded.validations, passed = daily_modules.passed + excluded.passed, "
    "failed = daily_modules.failed + excluded.failed, indeterminate = daily_modules.indeterminate + excluded.indeterminate"
)
_UPSERT_GATES = (
    "INSERT INTO daily_gates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(day, gate) DO "
    "UPDATE SET evaluated = daily_gates.evaluated + excluded.evaluated, passed = daily_gates.passed + excluded.passed, "
    "failed = daily_gates.failed + excluded.failed, indeterminate = daily_gates.indeterminate + excluded.indeterminate,"
    " waived = daily_gates.waived + excluded.waived, not_applicable = daily_gates.not_applicable + excluded.not_applicable"
)
# daily_gates counters after `evaluated`, in column order
_GATE_STATUS = {
    s.value: i
    for i, s in enumerate(
        (Status.pass_, Status.fail, Status.indeterminate, Status.waived, Status.not_applicable)
    )
}


def add_rollups(tx: Tx, written: list[_Prepared]) -> None:
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
    tx.executemany(_UPSERT_DAILY, [(day, *v) for day, v in daily.items()])
    tx.executemany(_UPSERT_MODULES, [(day, m, *v) for (day, m), v in modules.items()])
    tx.executemany(_UPSERT_GATES, [(day, gate, *v) for (day, gate), v in gates.items()])


def since_days(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


# -- DDL ------------------------------------------------------------------------------------

_SQL_TYPES = {
    "sqlite": {int: "INTEGER", float: "FLOAT", str: "TEXT"},
    # COLLATE "C": text sorts by code point as in SQLite, whatever the database's locale (a
    # sha256 prefix search relies on it).
    "postgres": {int: "BIGINT", float: "DOUBLE PRECISION", str: 'TEXT COLLATE "C"'},
}


def table_sql(
    table: str,
    columns: dict[str, type],
    dialect: str,
    *,
    pk: tuple[str, ...] = ("id",),
    not_null: Collection[str] = (),
) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one of the column dicts above, in either dialect."""
    types = _SQL_TYPES[dialect]
    cols = []
    for name, kind in columns.items():
        col = f"{name} {types[kind]}"
        if pk == (name,):
            col += " PRIMARY KEY"
        elif name in not_null:
            col += " NOT NULL"
        cols.append(col)
    if len(pk) > 1:
        cols.append(f"PRIMARY KEY ({', '.join(pk)})")
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})"
