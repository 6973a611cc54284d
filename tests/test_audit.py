"""Audit log: records, redaction, tamper evidence, retention, waivers, failures, query plans."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine.audit as audit_mod
import engine.audit.records as records
from engine.audit import QUERIES, AuditLog, AuditStore, row_hash
from engine.audit.postgres import PostgresAuditLog
from engine.errors import ClearanceError, UserError
from engine.hooks import GateSource
from engine.report import (
    DocumentInfo,
    GateResult,
    LLMUsage,
    ModuleRef,
    OnIndeterminate,
    Report,
    SemanticAnswer,
    Severity,
    Span,
    Status,
    Summary,
)
from engine.waivers import WaiverStore

DOC = "ab" * 32
EMAIL = "john.doe@example.com"


def make_report(
    doc: str = DOC,
    *,
    fail: bool = True,
    gates: int = 3,
    module: str = "gdpr",
    cache_hit: bool = False,
    ms: float = 12.5,
) -> Report:
    """A small but complete report: gate 0 fails (a regex span over an email, a PII span and a
    semantic answer whose rationale quotes the document), the others pass (plain results, kept
    in the validation's ``results`` column rather than as findings rows)."""
    results = []
    for i in range(gates):
        failing = fail and i == 0
        spans = (
            [
                Span(
                    start=10, end=30, line=2, col=3, check="regex /@/", kind="regex", detail=EMAIL
                ),
                Span(
                    start=40,
                    end=51,
                    line=3,
                    col=1,
                    check="pii(US_SSN)",
                    kind="pii",
                    detail="US_SSN",
                ),
            ]
            if failing
            else []
        )
        semantic = (
            [
                SemanticAnswer(
                    question="Does it name the controller?",
                    verdict="no",
                    confidence=0.82,
                    rationale=f"The text only says {EMAIL}",
                    provider="scripted",
                    model="m1",
                    prompt_version="3",
                )
            ]
            if failing
            else []
        )
        results.append(
            GateResult(
                gate=f"{module.upper()}-{i}",
                name=f"gate_{i}",
                module=module,
                version=f"v{i}",
                title="t",
                status=Status.fail if failing else Status.pass_,
                blocking=failing,
                severity=Severity.high,
                cite="Art. 13",
                message="m",
                on_indeterminate=OnIndeterminate.block,
                spans=spans,
                semantic=semantic,
            )
        )
    failed = int(fail)
    return Report(
        tool_version="0.1.0",
        document=DocumentInfo(
            name="notice.txt",
            sha256=doc,
            size=120,
            media_type="text/plain",
            doc_type="privacy_notice",
            doc_type_source="given",
            chars=120,
            lines=4,
            sections=1,
        ),
        verdict="fail" if fail else "pass",
        exit_code=1 if fail else 0,
        modules=[ModuleRef(id=module, version="1")],
        ruleset="r" * 16,
        gates=results,
        summary=Summary(
            gates=gates,
            passed=gates - failed,
            failed=failed,
            indeterminate=0,
            not_applicable=0,
            waived=0,
            blocking=failed,
            by_severity={"high": failed},
        ),
        llm=LLMUsage(calls=1, input_tokens=100, output_tokens=20),
        cache_hit=cache_hit,
        ms=ms,
    )


SOURCES = [GateSource("GDPR-0", "v0", "gdpr", "gate GDPR-0 x { ... }")]


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    with AuditLog(tmp_path / "audit.db") as log:
        yield log


@pytest.fixture(params=["sqlite", "postgres"])
def anylog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    """The same behaviour on both backends: a SQLite file, and a fresh PostgreSQL database on
    the session's throwaway server (tests/pg.py)."""
    store: AuditStore
    if request.param == "sqlite":
        store = AuditLog(tmp_path / "audit.db")
    else:
        store = PostgresAuditLog(request.getfixturevalue("pg_url"))
    with store:
        yield store


def waivers(log: AuditStore) -> WaiverStore:
    """The waiver store beside ``log`` (the same database, its own chain)."""
    return WaiverStore(log.db_)


def tamper(log: AuditStore, *sql: str) -> None:
    """Run SQL outside the log, as someone editing the database would (constraints off)."""
    if isinstance(log, AuditLog):
        with sqlite3.connect(log.path, isolation_level=None) as conn:
            conn.execute("PRAGMA foreign_keys = OFF")
            for statement in sql:
                conn.execute(statement)
        return
    import psycopg

    assert isinstance(log, PostgresAuditLog)
    with psycopg.connect(log.db_.url, autocommit=True) as pg:
        pg.execute("SET session_replication_role = replica")  # foreign keys off (superuser)
        for statement in sql:
            pg.execute(statement)  # type: ignore[call-overload]


def rows(log: AuditStore, sql: str) -> list[tuple[Any, ...]]:
    return log.db_.read("test", lambda tx: [tuple(r) for r in tx.execute(sql)])


def fill(log: AuditStore, n: int = 5) -> list[int]:
    return [
        log.record(make_report(fail=i % 2 == 0), principal="ci", gates=SOURCES) for i in range(n)
    ]


def raw(log: AuditLog) -> sqlite3.Connection:
    """A connection outside AuditLog: what someone tampering with the file would use."""
    return sqlite3.connect(log.path, isolation_level=None)


def test_record_round_trip(anylog: AuditStore) -> None:
    log = anylog
    ids = fill(log, 3)
    assert ids == [1, 2, 3]
    row = log.recent(1)[0]
    assert row["id"] == 3 and row["verdict"] == "fail" and row["principal"] == "ci"
    assert row["doc_sha256"] == DOC and row["sev_high"] == 1 and row["llm_calls"] == 1
    assert row["time"].endswith("Z") and row["modules"] == '["gdpr@1"]'
    findings = log.findings(3)
    assert [f["gate"] for f in findings] == ["GDPR-0", "GDPR-1", "GDPR-2"]
    first = findings[0]
    assert (first["status"], first["span_start"], first["line"], first["check_kind"]) == (
        "fail",
        10,
        2,
        "regex",
    )
    assert (first["provider"], first["model"], first["confidence"]) == ("scripted", "m1", 0.82)
    rules = rows(log, "SELECT gate, version, module, source FROM rulesets")
    assert rules == [("GDPR-0", "v0", "gdpr", "gate GDPR-0 x { ... }")]
    if isinstance(log, AuditLog):
        assert log.db().journal_mode == "wal"


def test_record_many_is_one_transaction(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 1)
    ids = log.record_many([(make_report(fail=i % 2 == 0), "server", SOURCES) for i in range(5)])
    assert ids == [2, 3, 4, 5, 6] and log.verify().ok and log.stats()["validations"] == 6
    bad = make_report()
    bad.document.sha256 = None  # type: ignore[assignment]  # violates NOT NULL mid-batch
    with pytest.raises(ClearanceError, match="record 3 validations"):
        log.record_many([(make_report(), "s", []), (bad, "s", []), (make_report(), "s", [])])
    assert log.count() == 6 and log.verify().ok  # all or nothing


def test_cache_hits_are_recorded_as_hits(anylog: AuditStore) -> None:
    log = anylog
    log.record(make_report(cache_hit=True), principal="ci", gates=[])
    assert log.recent(1)[0]["cache_hit"] == 1
    assert log.stats()["cache_hits"] == 1


def test_no_raw_text_or_pii_stored_by_default(log: AuditLog) -> None:
    fill(log, 2)
    log.close()  # checkpoints the WAL into the main file
    blob = Path(log.path).read_bytes()
    assert EMAIL.encode() not in blob
    spans = log.findings(1)[0]["spans"]
    assert "US_SSN" in spans and "jo****" in spans  # entity type kept, the match masked


@pytest.mark.parametrize(
    ("detail", "kind", "stored"),
    [
        ("US_SSN", "pii", "US_SSN"),
        ("US_SSN 53*******47", "pii", "US_SSN 53*******47"),
        ("US_SSN 536-22-1147", "pii", "US_SSN 53*******47"),
        ("AWS_ACCESS_KEY AKIA…[20 chars]", "secret", "AWS_ACCESS_KEY AKIA…[20 chars]"),
        ("the data controller", "phrase", "th***************er"),
        ("Acme Ltd", "regex", "Ac****td"),
        (None, "regex", None),
    ],
)
def test_redaction(detail: str | None, kind: str, stored: str | None) -> None:
    assert audit_mod.redact(detail, kind) == stored


def test_raw_text_only_when_asked(log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARANCE_STORE_RAW_TEXT", "1")
    fill(log, 1)
    f = log.findings(1)[0]
    assert EMAIL in f["spans"] and EMAIL in f["semantic"]


def test_verify_passes_and_reports_head(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 4)
    result = log.verify()
    assert result.ok and result.validations == 4 and result.head_id == 4
    assert result.head_hash == log.recent(1)[0]["row_hash"]


def test_row_hash_covers_content_findings_results_and_prev_hash(log: AuditLog) -> None:
    fill(log, 2)
    row = log.db().execute("SELECT * FROM validations WHERE id = 1").fetchone()
    cols = [d[0] for d in log.db().execute("SELECT * FROM validations").description]
    stored = dict(zip(cols, row, strict=True))
    findings = list(log.db().query(QUERIES["findings_of"], {"id": 1}))  # the rows, not results
    assert len(findings) == 1 and stored["results"].count("pass") == 2
    assert row_hash("validations", stored, findings) == stored["row_hash"]
    assert (
        row_hash("validations", {**stored, "prev_hash": "f" * 64}, findings) != stored["row_hash"]
    )
    assert row_hash("validations", stored, findings[1:]) != stored["row_hash"]
    for results in (None, "[]", stored["results"].replace('"pass"', '"fail"', 1)):
        assert (
            row_hash("validations", {**stored, "results": results}, findings) != stored["row_hash"]
        )


def test_plain_results_are_compact_and_complete(log: AuditLog) -> None:
    fill(log, 3)  # fail, pass, fail: gate 0 fails in #1 and #3; every other result is plain
    db = log.db()
    assert db.execute("SELECT count(*) FROM findings").fetchone()[0] == 2
    assert db.execute("SELECT sum(json_array_length(results)) FROM validations").fetchone()[0] == 7
    every = log.findings(2)
    assert [(f["seq"], f["gate"], f["status"], f["id"]) for f in every] == [
        (0, "GDPR-0", "pass", None),
        (1, "GDPR-1", "pass", None),
        (2, "GDPR-2", "pass", None),
    ]
    assert set(every[0]) == set(audit_mod.FINDINGS)
    assert (every[0]["gate_version"], every[0]["severity"], every[0]["blocking"]) == (
        "v0",
        "high",
        0,
    )
    assert [f["status"] for f in log.findings(3)] == ["fail", "pass", "pass"]
    by_gate = {g["gate"]: g for g in log.stats()["by_gate"]}
    assert (by_gate["GDPR-0"]["passed"], by_gate["GDPR-0"]["failed"]) == (1, 2)
    assert by_gate["GDPR-1"]["passed"] == by_gate["GDPR-1"]["evaluated"] == 3
    assert "results" not in log.recent(1)[0]  # listing validations leaves the column out
    with raw(log) as conn:
        conn.execute("UPDATE validations SET results = '[[0, \"G\"]' WHERE id = 2")
    with pytest.raises(ClearanceError, match="validation #2: its results column"):
        log.findings(2)
    problems = log.verify().problems
    assert problems[0] == "validations #2: content does not match its row_hash (edited)"
    # the figures the rollups hold no longer follow from the (edited) records either
    assert all(p.startswith("daily_gates ") for p in problems[1:]) and problems[1:]


def _rollups(db: object) -> dict[str, list[tuple]]:
    return {
        t: sorted(db.execute(f"SELECT * FROM {t}").fetchall())  # type: ignore[attr-defined]
        for t in ("daily", "daily_modules", "daily_gates")
    }


def test_rollups_summed_per_batch_match_a_rebuild_from_the_records(log: AuditLog) -> None:
    fill(log, 3)
    log.record_many(
        [
            (
                make_report(fail=i % 3 == 0, module=("gdpr", "hipaa")[i % 2], cache_hit=i % 2 == 1),
                "s",
                [],
            )
            for i in range(7)
        ]
    )
    log.record(make_report(fail=False, gates=5), principal="ci", gates=[])
    db = log.db()
    kept = _rollups(db)
    assert kept["daily"][0][1] == 11
    db.execute("BEGIN")
    audit_mod.rebuild_rollups(db)
    assert _rollups(db) == kept
    db.execute("ROLLBACK")


def test_gate_sources_are_written_once(log: AuditLog) -> None:
    other = GateSource("GDPR-1", "v1", "gdpr", "gate GDPR-1 y { ... }")
    log.record_many([(make_report(), "s", [*SOURCES, other]), (make_report(), "s", SOURCES)])
    log.record(make_report(), principal="ci", gates=[*SOURCES, other])
    assert log.db().execute("SELECT count(*) FROM rulesets").fetchone()[0] == 2


def test_schema_1_log_is_upgraded_and_its_rows_still_verify(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with AuditLog(path) as log:
        db = log.db()
        db.execute("ALTER TABLE validations DROP COLUMN results")
        db.execute("ALTER TABLE validations DROP COLUMN ruleset_head")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        prev = audit_mod.GENESIS
        for i in (1, 2):  # rows as schema 1 wrote them: every result a findings row
            report = make_report(fail=i == 1)
            row = {
                **audit_mod.validation_row(report, "old"),
                "id": i,
                "time": audit_mod.now_iso(),
                "prev_hash": prev,
            }
            findings = [audit_mod.finding_row(n, g) for n, g in enumerate(report.gates)]
            row["row_hash"] = prev = row_hash("validations", row, findings)
            db.table("validations").insert(row)
            db.table("findings").insert_all({**f, "validation_id": i} for f in findings)
    with AuditLog(path) as log:
        assert log.verify().ok and log.count() == 2
        assert log.record(make_report(), principal="new", gates=[]) == 3
        assert log.verify().ok
        assert [len(log.findings(i)) for i in (1, 2, 3)] == [3, 3, 3]
        assert log.db().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[
            0
        ] == str(audit_mod.SCHEMA_VERSION)
        with raw(log) as conn:
            conn.execute("UPDATE findings SET status = 'fail' WHERE validation_id = 2 AND seq = 2")
        assert log.verify().problems[0].startswith("validations #2: content")


@pytest.mark.parametrize(("value", "level"), [(None, 2), ("full", 2), ("normal", 1)])
def test_synchronous_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, level: int
) -> None:
    if value is None:
        monkeypatch.delenv("CLEARANCE_AUDIT_SYNC", raising=False)
    else:
        monkeypatch.setenv("CLEARANCE_AUDIT_SYNC", value)
    with AuditLog(tmp_path / "a.db") as log:
        assert log.db().execute("PRAGMA synchronous").fetchone()[0] == level


def test_bad_synchronous_setting_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEARANCE_AUDIT_SYNC", "off")
    with pytest.raises(ClearanceError, match="CLEARANCE_AUDIT_SYNC"):
        AuditLog(tmp_path / "a.db")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE validations SET verdict = 'pass' WHERE id = 3", "validations #3: content"),
        (
            "UPDATE validations SET time = '2020-01-01T00:00:00Z' WHERE id = 2",
            "validations #2: content",
        ),
        (
            "UPDATE findings SET status = 'waived' WHERE validation_id = 3 AND seq = 0",
            "validations #3: content",
        ),
        ("DELETE FROM findings WHERE validation_id = 1 AND seq = 0", "validations #1: content"),
        (
            "UPDATE validations SET results = replace(results, '\"pass\"', '\"fail\"') WHERE id = 2",
            "validations #2: content",
        ),
        ("UPDATE validations SET results = NULL WHERE id = 4", "validations #4: content"),
        ("DELETE FROM validations WHERE id = 3", "validations #4: row(s) #3 before it are missing"),
        ("DELETE FROM validations WHERE id = 1", "validations #2: row(s) #1 before it are missing"),
        (
            "INSERT INTO validations (id, time, doc_sha256, verdict, prev_hash, row_hash) VALUES "
            "(6, '2026-01-01T00:00:00Z', 'ff', 'pass', 'x', 'y')",
            "validations #6: prev_hash",
        ),
        (
            "INSERT INTO findings (validation_id, seq, gate, status) VALUES (99, 0, 'X', 'pass')",
            "findings #",
        ),
        ("UPDATE waivers SET reason = 'because' WHERE id = 1", "waivers #1: content"),
    ],
)
def test_verify_names_the_tampered_row(anylog: AuditStore, sql: str, expected: str) -> None:
    log = anylog
    fill(log, 5)
    waivers(log).waive("GDPR-0", DOC, reason="legal said so", approver="ann", expires="2099-12-31")
    assert log.verify().ok
    tamper(log, sql)
    result = log.verify()
    assert not result.ok
    assert result.problems[0].startswith(expected), result.problems


def test_deleting_rows_is_one_problem_naming_the_gap(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 6)
    tamper(log, "DELETE FROM validations WHERE id IN (2, 3, 4)")
    problems = log.verify().problems
    assert problems[0] == "validations #5: row(s) #2..#4 before it are missing (deleted)"
    # #3's findings row (its failed gate; #2 and #4 passed: no rows) is left behind, and named.
    assert problems[1] == (
        "findings #2: belongs to no validation (inserted, or its validation was deleted)"
    )
    # and the rollups still count the deleted rows: named too
    assert problems[2].startswith("daily 20") and "validations=6 (records: 3)" in problems[2]


def test_forged_row_with_recomputed_own_hash_still_breaks_the_next_link(log: AuditLog) -> None:
    fill(log, 3)
    with raw(log) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM validations WHERE id = 1").fetchone())
        findings = [
            dict(f)
            for f in conn.execute("SELECT * FROM findings WHERE validation_id = 1 ORDER BY seq")
        ]
        assert row["verdict"] == "fail"
        row["verdict"] = "pass"
        forged = row_hash("validations", row, findings)
        conn.execute("UPDATE validations SET verdict = 'pass', row_hash = ? WHERE id = 1", [forged])
    problems = log.verify().problems
    assert problems[0] == (
        "validations #2: prev_hash does not match the row before it "
        "(a row was deleted, inserted or reordered)"
    )
    day = log.trends()[0]["day"]  # the forged verdict no longer adds up in the rollups
    assert [p.split(":")[0] for p in problems[1:]] == [f"daily {day}", f"daily_modules {day} gdpr"]


def test_prune_writes_checkpoint_and_chain_still_verifies(
    anylog: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = anylog
    clock = iter(f"2026-01-{d:02d}T12:00:00.000000Z" for d in range(1, 30))
    monkeypatch.setattr(records, "now_iso", lambda: next(clock))
    fill(log, 6)  # one per day, 2026-01-01 .. 2026-01-06
    assert [d["day"] for d in log.trends()][:2] == ["2026-01-01", "2026-01-02"]
    assert log.prune("2026-01-04") == 3
    result = log.verify()
    assert result.ok and result.validations == 3 and result.checkpoints == 1
    assert [d["day"] for d in log.trends()] == ["2026-01-04", "2026-01-05", "2026-01-06"]
    assert rows(log, "SELECT count(*) FROM findings WHERE validation_id <= 3") == [(0,)]
    assert log.record(make_report(), principal="ci", gates=[]) == 7
    assert log.prune("2026-01-01") == 0
    assert log.prune("2027-01-01") == 4  # everything: the checkpoint becomes the head
    result = log.verify()
    assert result.ok and result.head_id == 7
    assert log.record(make_report(), principal="ci", gates=[]) == 8
    assert log.verify().ok


def test_prune_refuses_a_log_that_does_not_verify(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 3)
    tamper(log, "UPDATE validations SET verdict = 'pass' WHERE id = 1")
    with pytest.raises(ClearanceError, match="does not verify"):
        log.prune("2999-01-01")
    assert log.count() == 3


def test_tampered_checkpoint_is_named(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 3)
    log.prune("2999-01-01")
    tamper(log, "UPDATE checkpoints SET pruned = 1")
    assert log.verify().problems[0].startswith("checkpoints #1: content")


def test_waivers(anylog: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    log, store = anylog, waivers(anylog)
    assert store.waivers_for(DOC) == {}
    store.waive("GDPR-0", DOC, reason="first", approver="ann", expires="2099-12-31")
    store.waive("GDPR-0", DOC.upper(), reason="second", approver="bob", no_expiry=True)
    store.waive("GDPR-1", DOC, reason="short", approver="cy", expires="2099-01-01")
    store.waive("GDPR-2", "cd" * 32, reason="other doc", approver="dee", no_expiry=True)
    assert not hasattr(log, "waive") and not hasattr(log, "waivers_for")  # the sink records
    active = store.waivers_for(DOC)
    assert sorted(active) == ["GDPR-0", "GDPR-1"]
    assert (active["GDPR-0"].reason, active["GDPR-0"].approver) == ("second", "bob")
    assert active["GDPR-1"].expires == "2099-01-01T23:59:59.999999Z"
    monkeypatch.setattr(records, "now_iso", lambda: "2099-01-02T00:00:00.000000Z")
    assert sorted(store.waivers_for(DOC)) == ["GDPR-0"]  # GDPR-1's waiver has expired
    assert log.verify().waivers == 4


KNOWN = {"GDPR-0", "GDPR-1", "GDPR-2"}


@pytest.mark.parametrize(
    ("gate", "kwargs", "message"),
    [
        ("GDPR-0", {"reason": " ", "approver": "ann"}, "reason and an approver"),
        ("GDPR-0", {"reason": "r", "approver": "ann", "expires": "2001-01-01"}, "in the past"),
        ("GDPR-0", {"reason": "r", "approver": "ann", "expires": "soon"}, "not a date"),
        # issue 16: a waiver needed no expiry, took a 1 MB reason and any gate code at all
        ("GDPR-0", {"reason": "r", "approver": "ann"}, "needs an expiry"),
        (
            "GDPR-0",
            {"reason": "r", "approver": "ann", "expires": "2099-01-01", "no_expiry": True},
            "not both",
        ),
        (
            "GDPR-0",
            {"reason": "x" * 1_000_000, "approver": "ann", "expires": "2099-01-01"},
            "1,000,000 characters; at most 2,000",
        ),
        ("GDPR-0", {"reason": "r", "approver": "a" * 201, "no_expiry": True}, "at most 200"),
        (
            "GDPR-0",
            {"reason": "ok\x1b[31m", "approver": "ann", "no_expiry": True},
            "control characters",
        ),
        (
            "GDPR-9",
            {"reason": "r", "approver": "ann", "no_expiry": True, "known_gates": KNOWN},
            "unknown gate 'GDPR-9'.*Did you mean",
        ),
        (
            "NOPE",
            {"reason": "r", "approver": "ann", "no_expiry": True, "known_gates": set()},
            "unknown gate 'NOPE'",
        ),
    ],
)
def test_waiver_input_errors(log: AuditLog, gate: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        waivers(log).waive(gate, DOC, **kwargs)
    assert log.verify().waivers == 0  # nothing was recorded
    with pytest.raises(UserError, match="not a document sha256"):
        waivers(log).waive("GDPR-0", "abc", reason="r", approver="a", no_expiry=True)


def test_waiver_at_the_bounds_is_recorded(log: AuditLog) -> None:
    wid = waivers(log).waive(
        "GDPR-1", DOC, reason="x" * 2000, approver="a" * 200, known_gates=KNOWN, no_expiry=True
    )
    waiver = waivers(log).waivers_for(DOC)["GDPR-1"]
    assert wid == 1 and len(waiver.reason) == 2000 and waiver.expires is None


def test_queries(anylog: AuditStore) -> None:
    log = anylog
    fill(log, 4)  # fail, pass, fail, pass
    log.record(make_report("cd" * 32, module="hipaa"), principal="ci", gates=[])
    stats = log.stats()
    assert (stats["validations"], stats["passed"], stats["failed"]) == (5, 2, 3)
    assert stats["pass_rate"] == 0.4
    hipaa = log.stats(module="hipaa")
    assert hipaa["validations"] == 1 and {g["gate"] for g in hipaa["by_gate"]} == {
        "HIPAA-0",
        "HIPAA-1",
        "HIPAA-2",
    }
    assert log.stats(since="2999-01-01")["validations"] == 0
    top = log.top_failing(limit=1)
    assert top == [
        {"gate": "GDPR-0", "module": "gdpr", "failed": 2, "evaluated": 4, "fail_pct": 50.0}
    ]
    assert [r["id"] for r in log.history("abab")] == [4, 3, 2, 1]
    assert [r["id"] for r in log.history("CD" * 32)] == [5]
    assert log.history("0000") == []
    with pytest.raises(UserError):
        log.history("not-hex")
    day = log.trends()
    assert len(day) == 1 and day[0]["validations"] == 5 and day[0]["avg_ms"] == 12.5
    assert [r["id"] for r in log.recent(2)] == [5, 4]


def test_every_auditor_query_uses_an_index(log: AuditLog) -> None:
    fill(log, 2)
    params = {
        "limit": 10,
        "lo": "ab",
        "hi": "ag",
        "id": 1,
        "since": "2026-01-01",
        "module": "gdpr",
        "doc": DOC,
        "now": "2026-01-01",
        "chain": "validations",
    }
    for name, sql in QUERIES.items():
        plan = [r[3] for r in log.db().execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        # A SEARCH is always a B-tree descent (index or rowid; a bare one is max(id)); a SCAN
        # must walk an index, never the whole table.
        reads = [p for p in plan if p.startswith(("SCAN", "SEARCH"))]
        assert reads, (name, plan)
        for step in reads:
            assert step.startswith("SEARCH") or "USING" in step, (name, plan)
        assert not any(
            "FOR ORDER BY" in p and "RIGHT PART" not in p
            for p in plan
            if name in ("recent", "history", "findings_of")
        ), (name, plan)


def test_full_disk_is_a_clear_error_and_loses_nothing_silently(log: AuditLog) -> None:
    fill(log, 2)
    db = log.db()
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full for this connection
    big = make_report(gates=400)
    with pytest.raises(ClearanceError, match="full"):
        log.record(big, principal="ci", gates=[])
    assert log.count() == 2 and log.verify().ok
    db.execute("PRAGMA max_page_count = 1073741823")
    assert log.record(big, principal="ci", gates=[]) == 3


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ClearanceError, match="cannot open"):
        AuditLog(blocker / "audit.db")


def test_readonly_log_refuses_writes_and_missing_log_is_a_user_error(
    log: AuditLog, tmp_path: Path
) -> None:
    fill(log, 1)
    with AuditLog(log.path, readonly=True) as ro:
        assert ro.count() == 1 and ro.verify().ok
        with pytest.raises(ClearanceError, match="read-only"):
            ro.record(make_report(), principal="ci", gates=[])
    with pytest.raises(UserError, match="no audit log"):
        AuditLog(tmp_path / "missing.db", readonly=True)


def test_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLEARANCE_AUDIT_DB", "CLEARANCE_HOME", "CLEARANCE_NO_AUDIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert audit_mod.audit_db_path() == tmp_path / "xdg" / "clearance" / "audit.db"
    monkeypatch.setenv("CLEARANCE_HOME", str(tmp_path / "home"))
    assert audit_mod.audit_db_path() == tmp_path / "home" / "audit.db"
    monkeypatch.setenv("CLEARANCE_AUDIT_DB", str(tmp_path / "x.db"))
    opened = audit_mod.open_audit()
    assert opened is not None and opened.path == tmp_path / "x.db"
    opened.close()
    monkeypatch.setenv("CLEARANCE_NO_AUDIT", "1")
    assert audit_mod.open_audit() is None


def test_prune_in_the_middle_of_a_day_keeps_rollups_equal_to_the_records(
    anylog: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = anylog
    clock = iter(f"2026-01-01T{h:02d}:00:00.000000Z" for h in range(0, 24, 2))
    monkeypatch.setattr(records, "now_iso", lambda: next(clock))
    fill(log, 6)  # 00:00 .. 10:00 on one day
    assert log.prune("2026-01-01T05:00:00Z") == 3
    result = log.verify()
    assert result.ok, result.problems  # the day's rollup rows now count only what is left
    assert (log.stats()["validations"], log.trends()[0]["validations"]) == (3, 3)
    assert sum(g["evaluated"] for g in log.stats()["by_gate"]) == 3 * 3
