"""Audit log under concurrent writers (processes x threads) and writers killed mid-transaction."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.audit import AuditLog, open_audit_store

try:
    from test_audit import SOURCES, make_report
except ImportError:  # tests/ collected as a package
    from tests.test_audit import SOURCES, make_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _writer(path: str, threads: int, per_thread: int) -> None:
    """One process: several threads sharing one audit log (a SQLite path or a PostgreSQL URL),
    each recording ``per_thread`` rows."""
    log = open_audit_store(path)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                log.record(
                    make_report(fail=(t + i) % 2 == 0),
                    principal=f"{os.getpid()}/{t}",
                    gates=SOURCES,
                )
        except BaseException as exc:  # reported through the exit code
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    log.close()
    if errors:
        raise SystemExit(f"writer failed: {errors[0]!r}")


def test_processes_and_threads_lose_no_row_and_keep_the_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.db")  # not created yet: the writers race to create the schema
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, 5, 5)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with AuditLog(path) as log:
        assert log.count() == 100
        ids = [r[0] for r in log.db().execute("SELECT id FROM validations ORDER BY id")]
        assert ids == list(range(1, 101))
        results = (
            log.db()
            .execute(  # every gate result: findings rows plus plain results
                "SELECT (SELECT count(*) FROM findings)"
                " + (SELECT sum(json_array_length(results)) FROM validations)"
            )
            .fetchone()[0]
        )
        assert results == 300
        assert sum(g["evaluated"] for g in log.stats()["by_gate"]) == 300
        assert log.stats()["validations"] == 100  # the rollups saw every write too
        assert len({r["principal"] for r in log.recent(100)}) == 20
        result = log.verify()
        assert result.ok, result.problems


def test_four_writer_processes_on_postgres_lose_nothing_and_keep_one_chain(pg_url: str) -> None:
    """4 processes x 3 threads append to one PostgreSQL database at once (and race to create
    its schema): every row is there once, ids have no gap, and the one chain verifies."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(pg_url, 3, 8)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with open_audit_store(pg_url) as log:
        rows = log.db_.read(
            "test",
            lambda tx: list(
                tx.execute("SELECT id, principal, prev_hash, row_hash FROM validations ORDER BY id")
            ),
        )
        assert [r[0] for r in rows] == list(range(1, 97))  # 96 rows: none lost, none twice
        assert len({r[3] for r in rows}) == 96
        assert all(rows[i][2] == rows[i - 1][3] for i in range(1, 96))  # one chain, no fork
        principals = [r[1] for r in rows]
        assert len(set(principals)) == 12 and all(principals.count(p) == 8 for p in principals)
        assert log.stats()["validations"] == 96  # the rollups saw every write
        result = log.verify()
        assert result.ok and result.validations == 96, result.problems


def _child(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_writer_killed_inside_a_transaction_leaves_a_verifiable_log(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """kill -9 while holding the write lock (SQLite's file lock, PostgreSQL's advisory lock):
    the half-written rows are rolled back and the next writer is not blocked."""
    where = str(tmp_path / "audit.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    code = f"""
import sys, time
from engine.audit import open_audit_store
from test_audit import make_report
log = open_audit_store({where!r})
for _ in range(3):
    log.record(make_report(), principal="child", gates=[])

def half_written(db):
    db.execute("INSERT INTO validations (id, time, doc_sha256, verdict, prev_hash, row_hash) "
               "VALUES (4, 'x', 'y', 'pass', 'p', 'r')")
    db.execute("INSERT INTO findings (validation_id, seq, gate, status) VALUES (4, 0, 'G', 'fail')")
    print("inside", flush=True)
    time.sleep(60)

log.db_.write("test", half_written)
"""
    child = _child(code)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "inside"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    with open_audit_store(where) as log:
        assert log.count() == 3
        assert log.verify().ok
        assert log.record(make_report(), principal="after", gates=[]) == 4
        assert log.verify().ok


def test_writer_killed_at_a_random_moment_leaves_a_verifiable_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    code = f"""
from engine.audit import AuditLog, open_audit_store
from test_audit import make_report
log = AuditLog({str(path)!r})
print("ready", flush=True)
while True:
    log.record(make_report(gates=20), principal="child", gates=[])
"""
    child = _child(code)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(0.4)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    with AuditLog(path) as log:
        n = log.count()
        assert n > 0
        result = log.verify()
        assert result.ok and result.validations == n
        assert log.record(make_report(), principal="after", gates=[]) == n + 1
