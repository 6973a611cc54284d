"""Audit log benchmark: writes per second (1 and N processes) and query latency on 100k rows, on
SQLite and on PostgreSQL (a throwaway durable server from tests/pg.py, or --pg-url).

    python -m benchmarks.bench_audit                                  # SQLite, the 100k-row log
    python -m benchmarks.bench_audit --backend postgres --validations 0   # PostgreSQL writes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from engine.audit import (
    FINDINGS,
    VALIDATIONS,
    AuditLog,
    audit_sync,
    finding_row,
    is_plain,
    open_audit_store,
    rebuild_rollups,
    result_entry,
    row_hash,
    validation_row,
)
from engine.audit_html import render
from engine.report import (
    DocumentInfo,
    GateResult,
    ModuleRef,
    OnIndeterminate,
    Report,
    Severity,
    Span,
    Status,
    Summary,
)
from engine.waivers import WaiverStore

MODULES = ("gdpr", "hipaa", "secrets")


def make_report(seed: int, gates: int = 8, not_applicable: int = 0) -> Report:
    """A realistic-sized report: ``gates`` results, a few failing with spans, the last
    ``not_applicable`` of them not applicable (a server's report has 82 results, ~60 of them
    for other document types)."""
    module = MODULES[seed % len(MODULES)]
    results = []
    for i in range(gates):
        status = (
            Status.not_applicable
            if i >= gates - not_applicable
            else Status.fail
            if (seed + 3 * i) % 17 == 0
            else Status.indeterminate
            if (seed + i) % 29 == 0
            else Status.pass_
        )
        spans = (
            [
                Span(
                    start=100 + i,
                    end=120 + i,
                    line=3,
                    col=1 + i,
                    check="pii(EMAIL_ADDRESS)",
                    kind="pii",
                    detail="EMAIL_ADDRESS",
                )
            ]
            if status == Status.fail
            else []
        )
        results.append(
            GateResult(
                gate=f"{module.upper()}-{i:02d}",
                name=f"gate_{i}",
                module=module,
                version=f"v{i}",
                title="t",
                status=status,
                blocking=status in (Status.fail, Status.indeterminate),
                severity=list(Severity)[i % 5],
                cite="Art. 13",
                message="m",
                on_indeterminate=OnIndeterminate.block,
                spans=spans,
            )
        )
    failed = sum(r.status == Status.fail for r in results)
    indet = sum(r.status == Status.indeterminate for r in results)
    verdict: Literal["pass", "fail", "indeterminate"] = (
        "fail" if failed else "indeterminate" if indet else "pass"
    )
    return Report(
        tool_version="0.1.0",
        document=DocumentInfo(
            name=f"doc-{seed}.txt",
            sha256=f"{seed:064x}",
            size=4096,
            media_type="text/plain",
            doc_type="privacy_notice",
            doc_type_source="given",
            chars=4000,
            lines=80,
            sections=5,
        ),
        verdict=verdict,
        exit_code={"pass": 0, "fail": 1, "indeterminate": 3}[verdict],
        modules=[ModuleRef(id=module, version="1")],
        ruleset="r" * 16,
        gates=results,
        summary=Summary(
            gates=gates,
            passed=gates - failed - indet - not_applicable,
            failed=failed,
            indeterminate=indet,
            not_applicable=not_applicable,
            waived=0,
            blocking=failed + indet,
            by_severity={},
        ),
        ms=25.0 + seed % 40,
    )


# -- writes --------------------------------------------------------------------------------


Shape = tuple[int, int]  # (gate results, of which not applicable)


def _write_many(path: str, n: int, seed: int, shape: Shape = (8, 0), start: Any = None) -> None:
    reports = [make_report(seed + i, *shape) for i in range(n)]
    with open_audit_store(path) as log:  # a SQLite path or a postgresql:// URL
        if start is not None:
            start.wait()  # time the writes, not interpreter start-up
        for report in reports:
            log.record(report, principal=f"bench-{seed}", gates=[])


Where = Callable[[str], str]  # a fresh audit location (SQLite path or PostgreSQL URL) per name


def bench_group_commit(
    where: Where, n: int, batch: int = 50, shape: Shape = (8, 0)
) -> tuple[float, float]:
    """(validations/s, CPU ms per validation) when a server commits ``batch`` validations per
    transaction."""
    reports = [make_report(i, *shape) for i in range(n)]
    with open_audit_store(where(f"group_{shape[0]}")) as log:
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(0, n, batch):
            log.record_many([(r, "bench", []) for r in reports[i : i + batch]])
        rate = n / (time.perf_counter() - t0)
        cpu = (time.process_time() - c0) * 1000 / n
        assert log.count() == n and log.verify().ok
    return rate, cpu


def bench_writes(
    where: Where, n: int, procs: int, shape: Shape = (8, 0)
) -> tuple[float, float, float, int, bool]:
    """(1 writer validations/s, its CPU ms per validation, ``procs`` writers validations/s,
    rows lost by the ``procs`` writers, whether their chain verified)."""
    single = where(f"single_{shape[0]}")
    open_audit_store(single).close()
    c0, t0 = time.process_time(), time.perf_counter()
    _write_many(single, n, 0, shape)
    single_rate = n / (time.perf_counter() - t0)
    single_cpu = (time.process_time() - c0) * 1000 / n

    multi = where(f"multi_{shape[0]}")
    open_audit_store(multi).close()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(procs + 1)
    workers = [
        ctx.Process(target=_write_many, args=(str(multi), n, p * n, shape, start))
        for p in range(procs)
    ]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    multi_rate = procs * n / (time.perf_counter() - t0)
    assert all(w.exitcode == 0 for w in workers), [w.exitcode for w in workers]
    with open_audit_store(multi) as log:
        lost = procs * n - log.count()
        ids = log.db_.read(
            "ids", lambda tx: [r[0] for r in tx.execute("SELECT id FROM validations ORDER BY id")]
        )
        verified = log.verify().ok and ids == list(range(1, procs * n + 1))
    return single_rate, single_cpu, multi_rate, lost, verified


# -- 100k rows -----------------------------------------------------------------------------


def build(path: Path, validations: int, gates: int, days: int = 90) -> float:
    """Bulk-load ``validations`` rows with a valid chain (the same hashing and the same split
    into findings rows and plain ``results`` as ``record``)."""
    v_cols = list(VALIDATIONS)
    f_cols = [c for c in FINDINGS if c != "id"]
    templates: list[tuple[dict[str, Any], list[tuple[Any, ...]]]] = []
    for seed in range(30):
        report = make_report(seed, gates)
        rows = [finding_row(i, g) for i, g in enumerate(report.gates) if not is_plain(g)]
        hashed = [tuple(f.get(c) for c in f_cols[1:]) for f in rows]  # minus validation_id
        plain = [result_entry(i, g) for i, g in enumerate(report.gates) if is_plain(g)]
        base = validation_row(report, "bench")
        base["results"] = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)
        templates.append((base, hashed))
    docs = max(1, validations // 5)  # each document validated ~5 times
    doc_hashes = [hashlib.sha256(b"doc %d" % n).hexdigest() for n in range(docs)]
    start = datetime.now(UTC) - timedelta(days=days)
    step = timedelta(days=days) / validations
    insert_v = (
        f"INSERT INTO validations ({', '.join(v_cols)}) VALUES ({', '.join('?' * len(v_cols))})"
    )
    insert_f = f"INSERT INTO findings ({', '.join(f_cols)}) VALUES ({', '.join('?' * len(f_cols))})"
    t0 = time.perf_counter()
    with AuditLog(path) as log:
        db = log.db()
        db.execute("PRAGMA synchronous = OFF")  # a bulk load, not an audit record
        db.execute("BEGIN IMMEDIATE")
        prev = "0" * 64
        batch_v: list[tuple[Any, ...]] = []
        batch_f: list[tuple[Any, ...]] = []
        for i in range(1, validations + 1):
            base, findings = templates[i % len(templates)]
            row = dict(base)
            when = start + step * i
            row.update(
                id=i,
                time=when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                doc_sha256=doc_hashes[(i * 7919) % docs],
                doc_name=f"doc-{i % docs}.txt",
                prev_hash=prev,
            )
            row["row_hash"] = prev = row_hash("validations", row, findings)
            batch_v.append(tuple(row.get(c) for c in v_cols))
            batch_f.extend((i, *f) for f in findings)
            if len(batch_v) >= 5000:
                # Plain executemany: sqlite-utils' per-value conversions would dominate here.
                db.conn.executemany(insert_v, batch_v)
                db.conn.executemany(insert_f, batch_f)
                batch_v.clear()
                batch_f.clear()
        db.conn.executemany(insert_v, batch_v)
        db.conn.executemany(insert_f, batch_f)
        rebuild_rollups(db.conn)
        db.execute("COMMIT")
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any], repeat: int = 15) -> tuple[float, float]:
    """(median, max) in milliseconds."""
    fn()  # warm the page cache: an auditor's second query, not a cold disk
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def bench_queries(path: Path) -> list[tuple[str, float, float]]:
    log = AuditLog(path, readonly=True)
    waivers = WaiverStore(log.db_)
    some_doc = log.recent(1)[0]["doc_sha256"]
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("audit recent --limit 20", lambda: log.recent(20)),
        ("audit history <sha256>", lambda: log.history(some_doc)),
        ("audit history <8-char prefix>", lambda: log.history(some_doc[:8])),
        ("audit stats", lambda: log.stats()),
        ("audit stats --since <7 days ago>", lambda: log.stats(since=week_ago)),
        ("audit stats --module gdpr", lambda: log.stats(module="gdpr")),
        ("audit gates --top-failing", lambda: log.top_failing(10)),
        ("audit trends", lambda: log.trends()),
        ("findings of one validation", lambda: log.findings(12345)),
        ("waivers_for(doc) (every validation)", lambda: waivers.waivers_for(some_doc)),
    ]
    cases.append(("audit report --html --no-verify", lambda: render(log, verify=False)))
    out = [(name, *timed(fn)) for name, fn in cases]
    # Whole-log walks: linear in the log by nature, so timed once and not held to 100 ms.
    out.append(("audit export --format csv (all rows)", *timed(lambda: _export_csv(log), 1)))
    out.append(("audit verify (full chain)", *timed(log.verify, repeat=1)))
    log.close()
    return out


def _export_csv(log: AuditLog) -> None:
    with open(os.devnull, "w", newline="") as sink:
        log.export("csv", sink)


def _write_table(label: str, where: Where, args: argparse.Namespace, sync: str) -> None:
    for shape in ((args.gates, 0), (82, 61)):
        what = f"{shape[0]} results" if not shape[1] else f"{shape[0]} results, {shape[1]} n/a"
        single, cpu, multi, lost, verified = bench_writes(where, args.writes, args.procs, shape)
        print(
            f"{label} writes, 1 writer ({what:<18}): {single:8.0f} validations/s "
            f"({1000 / single:.2f} ms each, {cpu:.2f} ms CPU; {sync})"
        )
        print(
            f"{label} writes, {args.procs} processes ({what:<15}): {multi:8.0f} "
            f"validations/s (rows lost: {lost}; chain verified: {'yes' if verified else 'NO'})"
        )
        grouped, cpu = bench_group_commit(where, max(args.writes, 500), shape=shape)
        print(
            f"{label} writes, record_many(50) ({what:<11}): {grouped:8.0f} validations/s "
            f"({cpu:.2f} ms CPU each; group commit: one transaction per 50)"
        )


def _postgres(args: argparse.Namespace) -> tuple[Where, str, Callable[[], None]]:
    """A fresh database per name on --pg-url's server, or on a throwaway durable server."""
    import psycopg

    if args.pg_url:
        admin, stop = args.pg_url, (lambda: None)
    else:
        from tests.pg import TempPostgres  # run from the repository root

        server = TempPostgres(durable=True)  # fsync on, synchronous_commit on: the defaults
        admin, stop = server.start(), server.stop
    tag = f"bench_{os.getpid()}"

    def where(name: str) -> str:
        db = f"{tag}_{name}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}"')
            conn.execute(f'CREATE DATABASE "{db}"')
        return urlunsplit(urlsplit(admin)._replace(path=f"/{db}"))

    with psycopg.connect(admin) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('fsync', 'synchronous_commit', 'server_version')"
            ).fetchall()
        )
    what = (
        f"PostgreSQL {settings['server_version']}, fsync={settings['fsync']}, "
        f"synchronous_commit={settings['synchronous_commit']}"
    )
    return where, what, stop


def bench_commit_ceiling(url: str, clients: int, n: int) -> float:
    """Commits/s of ``clients`` connections each inserting one small row per transaction with
    no lock between them: what the server and its disk allow (PostgreSQL groups concurrent
    commits into one WAL flush). Serialised chain appends cannot group their commits, so this
    is the most per-writer chains (each its own head, joined by checkpoints) could reach."""
    import threading

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ceiling (id BIGSERIAL PRIMARY KEY, v TEXT)")
    start = threading.Barrier(clients + 1)

    def client() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            start.wait()
            for _ in range(n):
                conn.execute("INSERT INTO ceiling (v) VALUES (%s)", ["x" * 64])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return clients * n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--validations",
        type=int,
        default=100_000,
        help="rows of the SQLite query-latency log (0: skip that part)",
    )
    parser.add_argument("--gates", type=int, default=8, help="gate results per validation")
    parser.add_argument("--writes", type=int, default=300, help="writes per writer")
    parser.add_argument("--procs", type=int, default=4, help="concurrent writer processes")
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: tmp)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=None,
        help="an existing PostgreSQL server (its databases bench_* are created "
        "and left); default: a throwaway server from the local binaries",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        if args.backend in ("sqlite", "both"):
            sync = f"SQLite, synchronous={audit_sync().upper()}"
            _write_table("SQLite", lambda name: str(work / f"{name}.db"), args, sync)
        if args.backend in ("postgres", "both"):
            where, what, stop = _postgres(args)
            try:
                _write_table("PostgreSQL", where, args, what)
                scratch = where("ceiling")
                one = bench_commit_ceiling(scratch, 1, args.writes)
                many = bench_commit_ceiling(scratch, args.procs, args.writes)
                print(
                    f"PostgreSQL bare commits (no chain, no lock): 1 client {one:6.0f}/s, "
                    f"{args.procs} clients {many:6.0f}/s (the ceiling of per-writer chains)"
                )
            finally:
                stop()
        if not args.validations:
            return
        path = work / "big.db"
        seconds = build(path, args.validations, args.gates)
        size = path.stat().st_size / 1e6
        print(
            f"bulk load {args.validations:,} validations        : {seconds:8.1f} s "
            f"({args.validations * args.gates:,} gate results, {size:.0f} MB)"
        )
        print(f"query latency on {args.validations:,} validations (median / max of 15 runs):")
        for name, median, worst in bench_queries(path):
            whole_log = name.startswith(("audit verify", "audit export"))
            flag = "" if worst < 100 or whole_log else "  (over 100 ms)"
            print(f"  {name:<38} {median:9.2f} ms / {worst:9.2f} ms{flag}")


if __name__ == "__main__":
    main()
