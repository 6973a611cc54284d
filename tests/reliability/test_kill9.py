"""kill -9 rounds: `clearance validate -j 2` killed mid-run leaves no worker behind, no audit row
written after it, and a log that verifies.

Real processes: the CLI runs as a child process over a folder of documents, is killed with
SIGKILL once it has recorded some validations, and its pool workers are found through /proc.
``CLEARANCE_KILL9_ROUNDS=N`` adds rounds (docs/reliability-audit.md reports a longer run)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.audit import AuditLog

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="finds the pool's workers through /proc (Linux)"
)

ROUNDS = [5] + [1 + 9 * i for i in range(int(os.environ.get("CLEARANCE_KILL9_ROUNDS", "0")))]


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # [state, ppid, ...]; the name may hold spaces


def children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) and int(st[1]) == pid:
            out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has stopped running


def rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            n = conn.execute("SELECT count(*) FROM validations").fetchone()[0]
        conn.close()
        return int(n)
    except sqlite3.Error:
        return 0  # not created yet


def wait_for(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for i in range(400):  # distinct texts: nothing is answered from a cache
        (folder / f"notice-{i:03d}.txt").write_text(
            f"Privacy notice {i}. Acme Ltd is the data controller. We keep account records "
            f"for {i % 7 + 1} years. Write to privacy{i}@acme.example with any request.\n"
        )
    return folder


@pytest.mark.parametrize("after_rows", ROUNDS, ids=[f"kill-after-{n}-rows" for n in ROUNDS])
def test_kill9_of_validate_j2_leaves_no_worker_and_a_verifiable_log(
    tmp_path: Path, docs: Path, after_rows: int
) -> None:
    db = tmp_path / "audit.db"
    env = {
        **os.environ,
        "CLEARANCE_AUDIT_DB": str(db),
        "CLEARANCE_PROVIDER": "none",
        "CLEARANCE_NO_CACHE": "1",
        "PYTHONPATH": str(ROOT),
    }
    cli = [
        sys.executable,
        "-c",
        "import sys; from engine.cli import main; sys.exit(main())",
        "validate",
        "-j",
        "2",
        "--format",
        "json",
        "-o",
        str(tmp_path / "out.json"),
        str(docs),
    ]
    proc = subprocess.Popen(
        cli, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    workers: set[int] = set()
    try:
        wait_for(f"{after_rows} audit rows", lambda: rows(db) >= after_rows, 90)
        workers = children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        at_kill = rows(db)
        # issue 16: the workers lived on (blocked on the dead parent's queue, for ever) after
        # writing the rows of the documents already handed to them
        wait_for("the workers to die", lambda: not any(alive(w) for w in workers), 5)
        # A worker killed between writing its commit to the WAL and publishing it leaves a
        # row that the next opening of the file recovers: at most one such commit per worker.
        result = AuditLog(db, readonly=True).verify()
        assert result.ok, result.problems
        assert result.validations - at_kill <= len(workers), (at_kill, result.validations)
        time.sleep(1.0)
        assert rows(db) == result.validations < 400  # and nothing written since
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:  # a regression must not leave processes behind
            if alive(w):
                os.kill(w, signal.SIGKILL)
