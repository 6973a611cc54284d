"""`clearance audit ...` and `clearance waive` through the real CLI entry point."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
from pathlib import Path

import pytest

from engine.audit import AuditLog
from engine.cli import main
from engine.waivers import WaiverStore

try:
    from test_audit import DOC, SOURCES, make_report
except ImportError:  # tests/ collected as a package
    from tests.test_audit import DOC, SOURCES, make_report


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    with AuditLog(path) as log:
        for i in range(4):
            log.record(make_report(fail=i % 2 == 0), principal="ci", gates=SOURCES)
        log.record(make_report("cd" * 32, module="hipaa", fail=False), principal="ann", gates=[])
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_recent(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = as_json(capsys, "audit", "recent", "--limit", "2", "--db", str(db))
    assert [r["id"] for r in rows] == [5, 4]
    code, out, _ = run(capsys, "audit", "recent", "--db", str(db))
    assert code == 0 and "notice.txt abababababab" in out and "fail" in out


def test_history_by_path_and_by_prefix(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "notice.txt"
    doc.write_bytes(b"We collect your email address.")
    sha = hashlib.sha256(doc.read_bytes()).hexdigest()
    with AuditLog(db) as log:
        log.record(make_report(sha), principal="ci", gates=[])
    rows = as_json(capsys, "audit", "history", str(doc), "--db", str(db))
    assert [r["id"] for r in rows] == [6]
    assert rows[0]["not_passed"][0]["gate"] == "GDPR-0"
    rows = as_json(capsys, "audit", "history", "abab", "--db", str(db))
    assert [r["id"] for r in rows] == [4, 3, 2, 1]
    code, out, _ = run(capsys, "audit", "history", "abab", "--db", str(db))
    assert code == 0 and "GDPR-0 (fail)" in out
    code, out, _ = run(capsys, "audit", "history", "0000", "--db", str(db))
    assert code == 0 and "no validations recorded" in out
    code, _, err = run(capsys, "audit", "history", "no-such-file.txt", "--db", str(db))
    assert code == 2 and "neither a file nor a sha256" in err


def test_stats(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = as_json(capsys, "audit", "stats", "--db", str(db))
    assert (data["validations"], data["passed"], data["failed"]) == (5, 3, 2)
    assert {g["gate"] for g in data["by_gate"]} >= {"GDPR-0", "HIPAA-0"}
    data = as_json(capsys, "audit", "stats", "--module", "hipaa", "--db", str(db))
    assert data["validations"] == 1 and data["pass_rate"] == 1.0
    data = as_json(capsys, "audit", "stats", "--since", "2999-01-01", "--db", str(db))
    assert data["validations"] == 0 and data["pass_rate"] is None
    code, out, _ = run(capsys, "audit", "stats", "--db", str(db))
    assert code == 0 and "5 validations, 3 passed (60.0%)" in out and "GDPR-0" in out
    code, _, err = run(capsys, "audit", "stats", "--since", "last week", "--db", str(db))
    assert code == 2 and "not a date" in err


def test_gates_and_trends(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    top = as_json(capsys, "audit", "gates", "--top-failing", "--limit", "5", "--db", str(db))
    assert top == [
        {"gate": "GDPR-0", "module": "gdpr", "failed": 2, "evaluated": 4, "fail_pct": 50.0}
    ]
    every = as_json(capsys, "audit", "gates", "--db", str(db))
    assert len(every) == 6
    days = as_json(capsys, "audit", "trends", "--db", str(db))
    assert len(days) == 1 and days[0]["validations"] == 5
    code, out, _ = run(capsys, "audit", "trends", "--db", str(db))
    assert code == 0 and days[0]["day"] in out


def test_export_csv_and_json(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "export", "--format", "csv", "--db", str(db))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert "row_hash" in rows[0]
    target = tmp_path / "out.json"
    code, _, err = run(
        capsys, "audit", "export", "--format", "json", "--output", str(target), "--db", str(db)
    )
    data = json.loads(target.read_text())
    assert code == 0 and "exported 5 validations" in err
    assert len(data) == 5 and [f["gate"] for f in data[0]["findings"]] == [
        "GDPR-0",
        "GDPR-1",
        "GDPR-2",
    ]
    code, _, err = run(capsys, "audit", "export", "--format", "xml", "--db", str(db))
    assert code == 2 and "unknown format" in err


def test_verify_and_tamper(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 0 and out.startswith("OK: 5 validations")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE findings SET severity = 'low' WHERE validation_id = 3")
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 1 and "validations #3: content does not match its row_hash (edited)" in out
    data = json.loads(run(capsys, "audit", "verify", "--db", str(db), "--format", "json")[1])
    assert data["ok"] is False and data["problems"][0].startswith("validations #3")


def test_prune_keeps_verify_green(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "prune", "--before", "2999-01-01", "--db", str(db))
    assert code == 0 and "pruned 5 validations" in out and "checkpoint" in out
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db))
    assert code == 0 and "1 checkpoints" in out


def test_html_report_is_self_contained(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "audit.html"
    code, out, _ = run(capsys, "audit", "report", "--html", str(page), "--db", str(db))
    html = page.read_text()
    assert code == 0 and str(page) in out
    assert html.startswith("<!doctype html>") and "<svg" in html and "GDPR-0" in html
    assert "chain verified" in html and "notice.txt" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external assets
    assert "<script" not in html
    code, _, _ = run(capsys, "audit", "report", "--html", str(page), "--no-verify", "--db", str(db))
    assert code == 0 and "chain not checked" in page.read_text()


def test_waive_then_waivers_for(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "waive",
        "SEC-001",
        "--doc",
        DOC,
        "--reason",
        "counsel approved",
        "--approver",
        "ann",
        "--expires",
        "2099-06-30",
        "--db",
        str(db),
    )
    assert code == 0 and "waiver #1: SEC-001 waived for abababababab until 2099-06-30" in out
    doc = tmp_path / "d.txt"
    doc.write_text("hello")
    code, out, _ = run(
        capsys,
        "waive",
        "SEC-002",
        "--doc",
        str(doc),
        "--reason",
        "n/a",
        "--approver",
        "bob",
        "--no-expiry",
        "--db",
        str(db),
    )
    assert code == 0 and "with no expiry (approved by bob)" in out
    with AuditLog(db) as log:
        store = WaiverStore(log.db_)
        waiver = store.waivers_for(DOC)["SEC-001"]
        assert (waiver.reason, waiver.approver) == ("counsel approved", "ann")
        assert list(store.waivers_for(hashlib.sha256(b"hello").hexdigest())) == ["SEC-002"]
        assert log.verify().waivers == 2
    code, _, err = run(
        capsys,
        "waive",
        "SEC-001",
        "--doc",
        "abc",
        "--reason",
        "r",
        "--approver",
        "a",
        "--no-expiry",
        "--db",
        str(db),
    )
    assert code == 2 and "not a document sha256" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # issue 16: each of these was recorded
        (["GDPR-0", "--reason", "r", "--no-expiry"], "unknown gate 'GDPR-0'"),
        (["SEC-01", "--reason", "r", "--no-expiry"], "Did you mean 'SEC-001'?"),
        (["SEC-001", "--reason", "x" * 1_000_000, "--expires", "2099-01-01"], "at most 2,000"),
        (["SEC-001", "--reason", "r"], "needs an expiry"),
    ],
)
def test_waive_refuses_bad_waivers(
    db: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "waive", *args, "--doc", DOC, "--approver", "ann", "--db", str(db))
    assert code == 2 and message in err and "Traceback" not in err + out
    with AuditLog(db) as log:
        assert log.verify().waivers == 0


def test_waive_a_gate_from_an_extra_gate_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = tmp_path / "house"
    module.mkdir()
    (module / "house.gates").write_text(
        'module house { title "House rules" version "1" }\n'
        'gate HOUSE-1 no_secrets {\n  title "No word secret"\n  cite "House rule 1"\n'
        '  severity low\n  forbid regex /secret/\n  fix "Remove it."\n'
        '  example fail "a secret"\n  example pass "nothing"\n}\n'
    )
    args = [
        "waive",
        "HOUSE-1",
        "--doc",
        DOC,
        "--reason",
        "r",
        "--approver",
        "ann",
        "--no-expiry",
        "--db",
        str(db),
    ]
    code, _, err = run(capsys, *args)
    assert code == 2 and "unknown gate 'HOUSE-1'" in err
    code, out, err = run(capsys, *args, "--gates", str(module))
    assert code == 0, err


def test_environment_default_and_errors(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLEARANCE_AUDIT_DB", str(db))
    assert len(as_json(capsys, "audit", "recent")) == 5
    code, _, err = run(capsys, "audit", "recent", "--db", str(tmp_path / "none.db"))
    assert code == 2 and "no audit log at" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(
        capsys,
        "waive",
        "G",
        "--doc",
        DOC,
        "--reason",
        "r",
        "--approver",
        "a",
        "--no-expiry",
        "--db",
        str(blocker / "audit.db"),
    )
    assert code == 4 and "cannot open" in err


@pytest.mark.parametrize(
    "command",
    [
        ["audit"],
        ["audit", "recent"],
        ["audit", "history"],
        ["audit", "stats"],
        ["audit", "gates"],
        ["audit", "trends"],
        ["audit", "export"],
        ["audit", "verify"],
        ["audit", "prune"],
        ["audit", "report"],
        ["cache"],
        ["cache", "stats"],
        ["cache", "clear"],
        ["waive"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0 and "Usage:" in out
