"""The audit storage interface: one class that records, queries, exports, verifies and prunes the
log over any :class:`Database` (a SQLite file or a PostgreSQL database)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, TextIO, TypeVar

from engine.audit import records as rec
from engine.audit.records import (
    _DAILY_COLS,
    _FINDING_HASHED,
    _GATE_COLS,
    _INSERT_FINDING,
    _INSERT_SOURCE,
    _INSERT_VALIDATION,
    _MODULE_COLS,
    _SHA_PREFIX,
    CHECKPOINTS,
    GENESIS,
    RULESETS,
    VALIDATIONS,
    Rollups,
    Tx,
    VerifyResult,
    _check_row,
    _int_or,
    _Prepared,
    _same,
    _typed,
    add_rollups,
    expand_results,
    parse_when,
    row_hash,
)
from engine.errors import ServiceError, UserError
from engine.hooks import GateSource
from engine.report import Report

T = TypeVar("T")

#: What a write transaction serialises on. SQLite has one write lock per file; PostgreSQL takes
#: an advisory lock per chain, so waivers never wait behind validations.
CHAIN_VALIDATIONS = "validations"
CHAIN_WAIVERS = "waivers"


class Database(Protocol):
    """A place the audit tables live: connections, transactions and the dialect's few quirks.

    ``write`` runs ``fn`` in one transaction that holds the chain's lock from its first
    statement (so no two writers extend the same head); ``read`` runs it in one consistent
    snapshot. Both turn the driver's errors into :class:`ServiceError` naming ``what``."""

    location: str  # for messages: a path, or a URL without its password
    dialect: str  # "sqlite" or "postgres"
    readonly: bool

    def write(self, what: str, fn: Callable[[Tx], T], chain: str = CHAIN_VALIDATIONS) -> T: ...
    def read(self, what: str, fn: Callable[[Tx], T]) -> T: ...
    def snapshot(self) -> AbstractContextManager[Tx]: ...
    def query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]: ...
    def tables(self, tx: Tx) -> set[str]: ...
    def columns(self, tx: Tx, table: str) -> set[str]: ...
    def close(self) -> None: ...


def dicts(tx: Tx, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    cur = tx.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur]


def stream(tx: Tx, sql: str) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Rows of ``sql`` one at a time (PostgreSQL: through a server-side cursor), and the names
    of their columns: 100,000s of validations never sit in memory."""
    opener = getattr(tx, "stream", None)
    cur = opener(sql) if opener is not None else tx.execute(sql)
    first = next(iter(cur), None)  # a server-side cursor names its columns once it has fetched
    cols = [d[0] for d in cur.description] if cur.description else []

    def rows() -> Iterator[tuple[Any, ...]]:
        if first is not None:
            yield tuple(first)
            yield from (tuple(r) for r in cur)

    return cols, rows()


def pipelined(tx: Tx) -> AbstractContextManager[Any]:
    """Statements whose results are not read, sent together where the driver can (psycopg's
    pipeline mode: one network round trip instead of one per statement)."""
    opener = getattr(tx, "pipeline", None)
    return opener() if opener is not None else nullcontext()


class AuditStore:
    """:class:`engine.hooks.AuditSink` and every auditor query, over one :class:`Database`.

    Any failure to write raises :class:`ServiceError`: a validation is never silently left
    off the record. Backends add only how they open, create and (SQLite) recover their storage.
    """

    db_: Database

    def __init__(self, database: Database) -> None:
        self.db_ = database
        self._lock = threading.Lock()
        self._sources: set[tuple[str, str]] = set()  # (gate, version) committed by this object

    @property
    def location(self) -> str:
        return self.db_.location

    @property
    def readonly(self) -> bool:
        return self.db_.readonly

    @property
    def backend(self) -> str:
        return self.db_.dialect

    def close(self) -> None:
        self.db_.close()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def record(self, report: Report, *, principal: str, gates: list[GateSource]) -> int:
        if self.readonly:
            raise ServiceError(f"audit log {self.location} was opened read-only")
        return self._write([_Prepared.of(report, principal, gates)], "record a validation")[0]

    def record_many(self, items: list[tuple[Report, str, list[GateSource]]]) -> list[int]:
        """Record several validations (report, principal, gate sources) in ONE transaction: one
        fsync for all, for a busy server's group commit. All are written, or none and it raises."""
        if self.readonly:
            raise ServiceError(f"audit log {self.location} was opened read-only")
        if not items:
            return []
        prepared = [_Prepared.of(r, p, g) for r, p, g in items]
        return self._write(prepared, f"record {len(items)} validations")

    def _write(self, prepared: list[_Prepared], what: str) -> list[int]:
        # Gate sources this object already committed are not sent again (rulesets keeps each
        # (gate, version) once); a process validating many documents writes them once.
        with self._lock:
            known = set(self._sources)
        sources: dict[tuple[str, str], GateSource] = {}
        for p in prepared:
            for g in p.sources:
                if (g.code, g.version) not in known:
                    sources.setdefault((g.code, g.version), g)

        def write(tx: Tx) -> list[int]:
            ruleset_head = _add_sources(tx, sources.values())
            head_id, prev = _head(tx)
            ids: list[int] = []
            rows: list[tuple[Any, ...]] = []
            finding_rows: list[tuple[Any, ...]] = []
            for p in prepared:
                head_id += 1
                row = {
                    **p.row,
                    "id": head_id,
                    "time": rec.now_iso(),
                    "prev_hash": prev,
                    "ruleset_head": ruleset_head,
                    "results": p.results,
                }
                row["row_hash"] = prev = row_hash("validations", row, p.findings)
                rows.append(tuple(row[c] for c in VALIDATIONS))
                finding_rows.extend((head_id, *f) for f in p.findings)
                ids.append(head_id)
                p.stamped = row
            # Nothing below is read back: PostgreSQL gets it in one round trip (a pipeline).
            with pipelined(tx):
                tx.executemany(_INSERT_VALIDATION, rows)
                if finding_rows:
                    tx.executemany(_INSERT_FINDING, finding_rows)
                add_rollups(tx, prepared)
            return ids

        ids = self.db_.write(what, write)
        if sources:
            with self._lock:
                self._sources |= set(sources)
        return ids

    # -- queries ----------------------------------------------------------------------------

    def _query(self, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.db_.query(name, params or {})

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

    def count(self) -> int:
        return int(
            self.db_.read(
                "count", lambda tx: tx.execute("SELECT count(*) FROM validations").fetchone()[0]
            )
        )

    # -- export -----------------------------------------------------------------------------

    def iter_validations(self, with_findings: bool = False) -> Iterator[dict[str, Any]]:
        """Every validation in chain order (for export), streamed from one snapshot."""
        with self.db_.snapshot() as tx:
            yield from _iter_validations(tx, with_findings)

    def export(self, fmt: str, out: TextIO) -> int:
        """Write every validation to ``out`` as CSV, or as JSON with its findings; returns the
        number written. Streamed row by row: 100,000s of validations never sit in memory."""
        if fmt not in ("csv", "json"):
            raise UserError(f"unknown export format '{fmt}' (expected one of: csv, json)")
        return int(self.db_.read("export", lambda tx: _export(tx, fmt, out)))

    # -- tamper evidence --------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        """Walk every hash chain (checkpoints, rulesets, validations with their findings,
        waivers) and check the per-day rollups against the records, in one read snapshot."""

        def walk(tx: Tx) -> VerifyResult:
            result = VerifyResult()
            _walk(self.db_, tx, result)
            return result

        return self.db_.read("verify", walk)

    # -- retention --------------------------------------------------------------------------

    def prune(self, before: str) -> int:
        """Delete validations (and their findings) recorded before ``before``; record a
        checkpoint with the last pruned row's hash so the remaining chain still verifies."""
        cutoff = parse_when(before)
        check = self.verify()
        if not check.ok:
            # Pruning would erase the evidence of tampering along with the rows.
            raise ServiceError(
                f"audit log {self.location} does not verify; refusing to prune "
                f"({check.problems[0]})"
            )

        def write(tx: Tx) -> int:
            last = tx.execute(
                "SELECT max(id) FROM validations WHERE time < ?", [cutoff]
            ).fetchone()[0]
            if last is None:
                return 0
            last_hash, first = tx.execute(
                "SELECT row_hash, (SELECT min(id) FROM validations) FROM validations WHERE id = ?",
                [last],
            ).fetchone()
            tx.execute("DELETE FROM findings WHERE validation_id <= ?", [last])
            tx.execute("DELETE FROM validations WHERE id <= ?", [last])
            day = cutoff[:10]
            for table in ("daily", "daily_modules", "daily_gates"):
                tx.execute(f"DELETE FROM {table} WHERE day < ?", [day])
            # The cutoff day keeps only what is left of it: rollups always match the records
            # (verify checks that they do).
            self._rebuild_rollups(tx, day)
            prev = tx.execute(
                "SELECT row_hash FROM checkpoints ORDER BY id DESC LIMIT 1"
            ).fetchone()
            cp_id = tx.execute("SELECT coalesce(max(id), 0) + 1 FROM checkpoints").fetchone()[0]
            cp = _typed(
                {
                    "id": cp_id,
                    "time": rec.now_iso(),
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
            tx.execute(
                f"INSERT INTO checkpoints ({', '.join(CHECKPOINTS)}) "
                f"VALUES ({', '.join('?' * len(CHECKPOINTS))})",
                [cp[c] for c in CHECKPOINTS],
            )
            return int(cp["pruned"])

        return self.db_.write("prune", write)

    def _rebuild_rollups(self, tx: Tx, day: str | None = None) -> None:
        raise NotImplementedError  # each backend's SQL (JSON functions differ)


# -- shared helpers -----------------------------------------------------------------------


def _head(tx: Tx) -> tuple[int, str]:
    last = tx.execute(rec.QUERIES["head"]).fetchone()
    if last:
        return int(last[0]), str(last[1])
    cp = tx.execute(
        "SELECT last_id, last_hash FROM checkpoints WHERE chain = ? ORDER BY id DESC LIMIT 1",
        ["validations"],
    ).fetchone()
    if cp:
        return int(cp[0]), str(cp[1])
    return 0, GENESIS


def _rulesets_head(tx: Tx) -> tuple[int, str]:
    last = tx.execute("SELECT id, row_hash FROM rulesets ORDER BY id DESC LIMIT 1").fetchone()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


def _add_sources(tx: Tx, sources: Iterable[GateSource]) -> str:
    """Append the gate sources not stored yet to the rulesets chain (inside the write
    transaction); returns the chain's head, which the validations written with it carry."""
    head_id, head = _rulesets_head(tx)
    for g in sources:
        if tx.execute(
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
        tx.execute(_INSERT_SOURCE, [row[c] for c in RULESETS])
    return head


def _iter_validations(tx: Tx, with_findings: bool) -> Iterator[dict[str, Any]]:
    cols, rows = stream(tx, "SELECT * FROM validations ORDER BY id")
    finds = _FindingStream(tx) if with_findings else None
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


def _export(tx: Tx, fmt: str, out: TextIO) -> int:
    n = 0
    if fmt == "csv":
        writer: csv.DictWriter[str] | None = None
        for row in _iter_validations(tx, False):
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            n += 1
        return n
    out.write("[")
    for row in _iter_validations(tx, True):
        out.write(("," if n else "") + "\n" + json.dumps(row))
        n += 1
    out.write("\n]\n")
    return n


class _FindingStream:
    """Findings in validation order, consumed alongside validations (a merge join: one pass).
    Yields each finding's hashed columns, as stored, as a tuple in ``_FINDING_HASHED`` order."""

    def __init__(self, tx: Tx) -> None:
        _, rows = stream(
            tx,
            f"SELECT id, validation_id, {', '.join(_FINDING_HASHED)} FROM findings "
            "ORDER BY validation_id, seq",
        )
        self._rows = rows
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


def _walk(db: Database, tx: Tx, result: VerifyResult) -> None:
    """Check everything the log reports from into ``result``: checkpoints, the rulesets chain,
    validations (with findings, results and the rulesets head they name), waivers, and the
    rollups against figures recomputed from the validations read."""
    problems = result.problems
    tables = db.tables(tx)
    if not {"validations", "findings", "waivers", "checkpoints"} <= tables:
        problems.append(
            "the file holds no audit log (its tables are missing): it is empty, "
            "was truncated to nothing, or is another database"
        )
        return
    schema = 0
    if "meta" in tables:
        got = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        schema = _int_or(got[0], 0) if got else 0

    # Checkpoints chain, then rulesets, then validations from the last checkpoint, then waivers.
    last_cp: dict[str, Any] | None = None
    prev = GENESIS
    for cp in dicts(tx, "SELECT * FROM checkpoints ORDER BY id"):
        result.checkpoints += 1
        # Rows are hashed as read, not coerced: a value whose type was changed is an edit.
        _check_row(problems, "checkpoints", cp, prev, row_hash("checkpoints", cp))
        prev = cp["row_hash"]
        if cp["chain"] == "validations":
            last_cp = cp

    heads: set[str] | None = None  # every hash in the rulesets chain (schema 3)
    if "rulesets" in tables and "row_hash" in db.columns(tx, "rulesets"):
        heads = {GENESIS}
        prev = GENESIS
        cols, rows = stream(tx, "SELECT * FROM rulesets ORDER BY id")
        for values in rows:
            r = dict(zip(cols, values, strict=True))
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
    finds = _FindingStream(tx)
    cols, rows = stream(tx, "SELECT * FROM validations ORDER BY id")
    for values in rows:
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
    for w in dicts(tx, "SELECT * FROM waivers ORDER BY id"):
        result.waivers += 1
        _check_row(problems, "waivers", w, prev, row_hash("waivers", w))
        prev = w["row_hash"]

    result.derived = derived.finish()
    # Logs from before schema 3 are checked once a writer has upgraded them (and rebuilt
    # their rollups): until then a mid-day prune could leave a day out of step.
    if schema >= 3 and {"daily", "daily_modules", "daily_gates"} <= tables:
        _compare_rollups(tx, derived, problems)


def _compare_rollups(tx: Tx, derived: Rollups, problems: list[str]) -> None:
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
                assert d is not None
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

    q = tx.execute
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
        {k: list(v) for k, v in derived.modules.items()},
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
    compare("daily_gates", _GATE_COLS, stored_gates, {k: list(v) for k, v in derived.gates.items()})
