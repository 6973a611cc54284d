"""Batch runs: recursive folders with globs, a process pool that matches sequential runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import SAMPLES, write
from engine.audit import audit_db_path
from engine.batch import collect, combine


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "privacy-notice.md", (SAMPLES / "privacy-notice.md").read_text())
    write(root / "hipaa" / "breach-letter.txt", (SAMPLES / "breach-letter.txt").read_text())
    write(root / "hipaa" / "npp.md", (SAMPLES / "notice-of-privacy-practices.md").read_text())
    write(root / "eng" / "memo.md", (SAMPLES / "engineering-memo.md").read_text())
    write(root / "drafts" / "old.md", "A draft with no secrets.\n")
    write(root / ".git" / "HEAD.txt", "ref: refs/heads/main\n")
    write(root / ".hidden.md", "hidden\n")
    write(root / "image.png", "not a document type\n")
    return root


def _names(files: list[Path], root: Path) -> list[str]:
    return [f.relative_to(root).as_posix() for f in files]


def test_collect_recursive_with_globs(tree):
    assert _names(collect([tree]), tree) == [
        "drafts/old.md",
        "eng/memo.md",
        "hipaa/breach-letter.txt",
        "hipaa/npp.md",
        "privacy-notice.md",
    ]
    assert _names(collect([tree], include=["*.md"], exclude=["drafts"]), tree) == [
        "eng/memo.md",
        "hipaa/npp.md",
        "privacy-notice.md",
    ]
    assert _names(collect([tree], include=["hipaa/*"]), tree) == [
        "hipaa/breach-letter.txt",
        "hipaa/npp.md",
    ]
    assert _names(collect([tree], exclude=["**/hipaa/**", "*.txt", "eng/*"]), tree) == [
        "drafts/old.md",
        "privacy-notice.md",
    ]
    # Files named explicitly are taken as given, whatever the globs; duplicates once.
    explicit = tree / "image.png"
    assert collect([explicit, tree / "eng"], exclude=["*.png", "*.md"]) == [explicit]
    assert len(collect([tree, tree / "eng" / "memo.md"])) == 5


def test_exit_code_precedence():
    assert combine([0, 3, 1, 2]) == 2
    assert combine([0, 3, 1]) == 1
    assert combine([0, 3]) == 3
    assert combine([]) == 0
    assert combine([2, 4]) == 4


def _stable(report: dict) -> dict:
    report = {k: v for k, v in report.items() if k not in ("ms", "cache_hit", "llm")}
    report["gates"] = [{k: v for k, v in g.items() if k != "ms"} for g in report["gates"]]
    return report


def _audit_names() -> list[str]:
    with sqlite3.connect(audit_db_path()) as conn:
        return sorted(r[0] for r in conn.execute("SELECT doc_name FROM validations"))


def test_parallel_matches_sequential_one_audit_row_each(tree, run_cli, monkeypatch):
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    monkeypatch.setenv("CLEARANCE_NO_CACHE", "1")
    code_p, out_p, err_p = run_cli("validate", tree, "-x", "drafts", "-j", "2", "-f", "json")
    assert code_p == 1, err_p
    assert _audit_names() == ["breach-letter.txt", "memo.md", "npp.md", "privacy-notice.md"]
    code_s, out_s, _ = run_cli("validate", tree, "-x", "drafts", "-j", "1", "-f", "json")
    assert code_s == code_p
    par, seq = json.loads(out_p), json.loads(out_s)
    assert [r["document"]["path"] for r in par] == [r["document"]["path"] for r in seq]
    assert [_stable(r) for r in par] == [_stable(r) for r in seq]
    assert len(_audit_names()) == 8  # one row per document per run, none twice


def test_parallel_exit_codes_and_summary_table(tree, run_cli, monkeypatch):
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    write(tree / "eng" / "empty.md", "")
    code, out, err = run_cli("validate", tree, "-i", "*.md", "-x", "hipaa", "-j", "2")
    assert code == 2  # an unreadable document outranks blocking findings
    assert "empty.md: the document is empty" in err
    assert "SEC-001" in out
    table = out[out.index("documents") :]
    for name, verdict in (("memo.md", "fail"), ("empty.md", "error"), ("old.md", "pass")):
        line = next(x for x in table.splitlines() if name in x)
        assert verdict in line
    assert "verdict" in table and "blocking" in table
    assert len(_audit_names()) == 3  # privacy-notice, memo, old; the empty one is not recorded

    code, out, _ = run_cli(
        "validate",
        tree / "drafts",
        tree / "hipaa" / "breach-letter.txt",
        "-m",
        "secrets",
        "-j",
        "2",
    )
    assert code == 0 and "2 pass" in out
    code, _, err = run_cli("validate", tree, "-i", "*.docx")
    assert code == 2 and "no documents found" in err


def _probe_worker(parent: int, report) -> None:  # type: ignore[no-untyped-def]
    """Runs in a forked child: the pool initializer's parent handling, then what it set."""
    import ctypes
    import os

    from engine import batch

    batch._die_with_parent(parent)  # exits here when ``parent`` is not this process's parent
    libc = ctypes.CDLL(None, use_errno=True)
    sig = ctypes.c_int(0)
    libc.prctl(2, ctypes.byref(sig), 0, 0, 0)  # PR_GET_PDEATHSIG
    report.send((os.getppid(), sig.value))


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="prctl is Linux only")
def test_pool_workers_are_tied_to_their_parent():
    """Workers ask to be SIGKILLed with their parent, and one whose parent is already gone
    exits at once (tests/reliability/test_kill9.py kills a real run)."""
    import multiprocessing
    import os
    import signal

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_probe_worker, args=(os.getpid(), send))
    child.start()
    assert receive.poll(20)
    assert receive.recv() == (os.getpid(), int(signal.SIGKILL))
    child.join(10)
    assert child.exitcode == 0
    orphan = ctx.Process(target=_probe_worker, args=(1, send))  # "my parent was pid 1": gone
    orphan.start()
    orphan.join(10)
    assert orphan.exitcode == 1 and not receive.poll(0.1)
