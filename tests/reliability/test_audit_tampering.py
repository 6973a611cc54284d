"""The audit tampering matrix: each way of altering the SQLite file, and what `audit verify` says.

Every case alters a real log with a plain sqlite3 connection (what someone with the file would
use) or by cutting the file, then runs the real CLI. docs/reliability-audit.md publishes the
table these cases produce."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

import engine.audit as audit_mod
from engine.audit import GENESIS, AuditLog, row_hash
from engine.hooks import GateSource
from engine.waivers import WaiverStore

try:
    from test_audit import DOC, make_report
except ImportError:  # tests/ collected as a package
    from tests.test_audit import DOC, make_report

SOURCES = [
    GateSource("GDPR-0", "v0", "gdpr", "gate GDPR-0 x { require regex /controller/ }"),
    GateSource("GDPR-1", "v1", "gdpr", "gate GDPR-1 y { require regex /retention/ }"),
]


def build(path: Path, n: int = 6) -> Path:
    with AuditLog(path) as log:
        for i in range(n):
            log.record(
                make_report(fail=i % 2 == 0, module=("gdpr", "hipaa")[i % 3 == 2]),
                principal="ci",
                gates=SOURCES if i == 0 else [],
            )
        WaiverStore(log.db_).waive(
            "GDPR-0", DOC, reason="counsel approved", approver="ann", expires="2099-01-01"
        )
    return path


def sql(*statements: str) -> Callable[[Path], None]:
    def alter(path: Path) -> None:
        with sqlite3.connect(path, isolation_level=None) as conn:
            conn.execute("PRAGMA foreign_keys = OFF")
            for s in statements:
                conn.execute(s)
        conn.close()

    return alter


def forge_rulesets_chain(path: Path) -> None:
    """Edit a gate's source and recompute the whole rulesets chain, so it verifies by itself."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.row_factory = sqlite3.Row
        prev = GENESIS
        for r in [dict(r) for r in conn.execute("SELECT * FROM rulesets ORDER BY id")]:
            if r["gate"] == "GDPR-0":
                r["source"] = "gate GDPR-0 x { require regex /./ }"
            r["prev_hash"] = prev
            r["row_hash"] = prev = row_hash("rulesets", r)
            conn.execute(
                "UPDATE rulesets SET source = ?, prev_hash = ?, row_hash = ? WHERE id = ?",
                [r["source"], r["prev_hash"], r["row_hash"], r["id"]],
            )
    conn.close()


def truncate(keep: float) -> Callable[[Path], None]:
    def alter(path: Path) -> None:
        size = path.stat().st_size
        with path.open("r+b") as fh:
            fh.truncate(int(size * keep) // 4096 * 4096)

    return alter


def overwrite_header(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"this is not an sqlite file" * 4)


DAY = r"\d{4}-\d\d-\d\d"
# (case, alteration, the first problem `audit verify` names: a regex)
MATRIX: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "validation verdict edited",
        sql("UPDATE validations SET verdict = 'pass' WHERE id = 3"),
        r"validations #3: content does not match its row_hash \(edited\)",
    ),
    (
        "validation row deleted",
        sql("DELETE FROM validations WHERE id = 3"),
        r"validations #4: row\(s\) #3 before it are missing \(deleted\)",
    ),
    (
        "last validation row deleted",
        sql("DELETE FROM validations WHERE id = 6"),
        rf"daily {DAY}: the rollup says validations=6 \(records: 5\)",
    ),
    (
        "validation row inserted",
        sql(
            "INSERT INTO validations (id, time, doc_sha256, verdict, prev_hash, row_hash) "
            "VALUES (7, '2026-01-01T00:00:00Z', 'ff', 'pass', 'x', 'y')"
        ),
        r"validations #7: prev_hash does not match",
    ),
    (
        "finding status edited",
        sql("UPDATE findings SET status = 'waived' WHERE validation_id = 1 AND seq = 0"),
        r"validations #1: content does not match",
    ),
    (
        "plain results edited",
        sql(
            "UPDATE validations SET results = replace(results, '\"pass\"', '\"fail\"') WHERE id = 2"
        ),
        r"validations #2: content does not match",
    ),
    (
        "waiver reason edited",
        sql("UPDATE waivers SET reason = 'because' WHERE id = 1"),
        r"waivers #1: content does not match",
    ),
    # issue 16: the rollups and the gate sources were not covered at all
    (
        "daily rollup edited",
        sql("UPDATE daily SET failed = 0, passed = validations"),
        rf"daily {DAY}: the rollup says passed=6 \(records: 3\), failed=0 \(records: 3\)",
    ),
    (
        "daily rollup row deleted",
        sql("DELETE FROM daily"),
        rf"daily {DAY}: no rollup row, yet 6 recorded",
    ),
    (
        "daily rollup row inserted",
        sql("INSERT INTO daily VALUES ('2020-01-01', 100, 100, 0, 0, 0, 1.0, 0, 0)"),
        r"daily 2020-01-01: a rollup row with validations=100, yet nothing recorded",
    ),
    (
        "daily_modules edited",
        sql("UPDATE daily_modules SET failed = 0 WHERE module = 'gdpr'"),
        rf"daily_modules {DAY} gdpr: the rollup says failed=0 \(records: 2\)",
    ),
    (
        "daily_gates counts edited",
        sql("UPDATE daily_gates SET failed = 0, passed = evaluated"),
        rf"daily_gates {DAY} GDPR-0: the rollup says passed=4 \(records: 2\), failed=0",
    ),
    (
        "daily_gates module edited",
        sql("UPDATE daily_gates SET module = 'x' WHERE gate = 'GDPR-1'"),
        rf"daily_gates {DAY} GDPR-1: the rollup says module=x \(records: gdpr\)",
    ),
    (
        "rulesets.source edited",
        sql(
            "UPDATE rulesets SET source = 'gate GDPR-0 x { require regex /./ }' "
            "WHERE gate = 'GDPR-0'"
        ),
        r"rulesets #1: content does not match its row_hash",
    ),
    (
        "rulesets.source edited, rulesets chain recomputed",
        forge_rulesets_chain,
        r"validations #1: the gate sources it was judged by are not in the rulesets chain",
    ),
    (
        "last rulesets row deleted",
        sql("DELETE FROM rulesets WHERE id = 2"),
        r"validations #1: the gate sources it was judged by are not in the rulesets chain",
    ),
    (
        "rulesets row inserted",
        sql("INSERT INTO rulesets VALUES (3, 'X-1', 'v', 'x', 'src', 'p', 'h')"),
        r"rulesets #3: prev_hash does not match",
    ),
    # issue 16: a truncated file was exit 4 "cannot verify: database disk image is malformed"
    (
        "file truncated to 60%",
        truncate(0.6),
        r"the database file is damaged \(.*truncated\); .*last good row: ",
    ),
    (
        "file truncated to nothing",
        truncate(0.0),
        r"the file holds no audit log \(its tables are missing\)",
    ),
    (
        "file header overwritten",
        overwrite_header,
        r"the database file is damaged \(.*no SQLite header\).*last good row: none",
    ),
]


@pytest.mark.parametrize(("alter", "expected"), [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
def test_tampering_matrix(
    tmp_path: Path, run_cli, alter: Callable[[Path], None], expected: str
) -> None:
    db = build(tmp_path / "audit.db")
    assert run_cli("audit", "verify", "--db", db)[0] == 0
    alter(db)
    code, out, err = run_cli("audit", "verify", "--db", db, "--format", "json")
    assert code == 1, (out, err)  # a failed verification, never exit 4
    result = json.loads(out)
    assert result["ok"] is False and re.match(expected, result["problems"][0]), result["problems"]
    code, out, _ = run_cli("audit", "verify", "--db", db)
    assert code == 1 and out.startswith("FAILED") and "last good row: " in out


def test_forged_rollups_show_in_stats_but_fail_verify(tmp_path: Path, run_cli) -> None:
    db = build(tmp_path / "audit.db")
    sql("UPDATE daily SET failed = 0, passed = validations")(db)
    code, out, _ = run_cli("audit", "stats", "--db", db, "--format", "json")
    assert code == 0 and json.loads(out)["failed"] == 0  # what the forger wanted shown...
    code, out, _ = run_cli("audit", "verify", "--db", db)
    assert code == 1 and "daily " in out  # ...and verify names it


def test_truncation_names_the_last_good_row(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    with AuditLog(db) as log:
        for i in range(300):
            log.record(make_report(fail=i % 2 == 0), principal="ci", gates=SOURCES)
    intact = tmp_path / "intact.db"
    shutil.copyfile(db, intact)
    truncate(0.9)(db)
    result = AuditLog(db, readonly=True).verify()
    assert not result.ok and result.derived is None
    assert result.last_good_id is not None and 1 <= result.last_good_id < 300
    assert result.problems[0].endswith(
        f"last good row: validations #{result.last_good_id} (row_hash {result.last_good_hash})"
    )
    # the row named is the row as it was written
    with sqlite3.connect(intact) as conn:
        assert (
            conn.execute(
                "SELECT row_hash FROM validations WHERE id = ?", [result.last_good_id]
            ).fetchone()[0]
            == result.last_good_hash
        )
    conn.close()


def test_a_schema_2_log_is_upgraded_and_then_covered(tmp_path: Path) -> None:
    """An existing log keeps verifying after the upgrade, and its rulesets and rollups are
    covered from then on."""
    path = tmp_path / "old.db"
    with AuditLog(path) as log:
        for i in range(3):
            log.record(make_report(fail=i == 0), principal="ci", gates=SOURCES)
        db = log.db()
        # What schema 2 wrote: no ruleset_head, an unchained rulesets table, rollups unchecked.
        db.execute("DROP INDEX idx_rulesets_id")
        for column in ("id", "prev_hash", "row_hash"):
            db.execute(f"ALTER TABLE rulesets DROP COLUMN {column}")
        db.execute("ALTER TABLE validations DROP COLUMN ruleset_head")
        db.execute("DELETE FROM validations")
        db.execute("DELETE FROM findings")
        prev = GENESIS
        for i in (1, 2, 3):
            report = make_report(fail=i == 1)
            row = {
                **audit_mod.validation_row(report, "old"),
                "id": i,
                "time": audit_mod.now_iso(),
                "prev_hash": prev,
            }
            prepared = audit_mod._Prepared.of(report, "old", [])
            row["results"] = prepared.results
            row["row_hash"] = prev = row_hash("validations", row, prepared.findings)
            db.table("validations").insert(row)
            db.conn.executemany(audit_mod._INSERT_FINDING, [(i, *f) for f in prepared.findings])
        db.execute("UPDATE daily SET validations = 99")  # out of step, as a mid-day prune left it
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        db.conn.commit()
    # read-only, not upgraded yet: the chains verify; rollups are not judged before the upgrade
    assert AuditLog(path, readonly=True).verify().ok
    with AuditLog(path) as log:  # a writer upgrades
        assert (
            log.db().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
            == "3"
        )
        result = log.verify()
        assert result.ok and result.validations == 3 and result.rulesets == 2, result.problems
        assert log.stats()["validations"] == 3  # rollups rebuilt from the records
        log.record(make_report(), principal="new", gates=[])
        assert log.verify().ok
    sql("UPDATE rulesets SET source = 'forged' WHERE gate = 'GDPR-1'")(path)
    assert (
        AuditLog(path, readonly=True)
        .verify()
        .problems[0]
        .startswith("rulesets #2: content does not match")
    )


def test_html_report_of_a_tampered_log(tmp_path: Path, run_cli) -> None:
    """issue 16: a grey subtitle with the first of 19 problems, tiles counting deleted rows,
    exit 0. Now: a red banner first, every problem, tiles from the rows present, exit 1."""
    db = build(tmp_path / "audit.db", n=8)
    sql(
        "DELETE FROM validations WHERE id IN (2, 3, 5)",
        "UPDATE validations SET verdict = 'pass' WHERE id = 7",
    )(db)
    problems = AuditLog(db, readonly=True).verify().problems
    assert len(problems) >= 4
    page = tmp_path / "report.html"
    code, out, err = run_cli("audit", "report", "--html", page, "--db", db)
    html = page.read_text()
    assert code == 1 and "does not verify" in err and str(page) in out
    body = html[html.index("<body>") :]
    assert body.index('class="alarm" role="alert"') < body.index("<h1>")
    assert f"NOT verify: {len(problems)} problems" in html
    items = re.findall(r"<li>(.*?)</li>", html)
    assert len(items) == len(problems)
    assert all(p.replace("(", "").split(":")[0] in " ".join(items) for p in problems)
    # every tile marked, and counting the 5 rows present, not the rollups' 8
    assert html.count('class="card unverified"') == 7
    assert re.search(r'Validations</div><div class="v ">5</div>', html)
    code, _, _ = run_cli("audit", "report", "--html", page, "--no-verify", "--db", db)
    assert code == 0 and "chain not checked" in page.read_text()


def test_html_report_of_a_damaged_file(tmp_path: Path, run_cli) -> None:
    db = build(tmp_path / "audit.db", n=200)
    truncate(0.5)(db)
    page = tmp_path / "report.html"
    code, _, err = run_cli("audit", "report", "--html", page, "--db", db)
    html = page.read_text()
    assert code == 1 and "Traceback" not in err
    assert "The file is damaged: no figures are shown." in html and "last good row" in html
