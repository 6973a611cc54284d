"""The audit log on PostgreSQL end to end: the CLI (`--db URL` and CLEARANCE_AUDIT_URL), the
engine's default sink and waivers, API keys, the HTTP server, schema versions and clear errors.
A real throwaway server (tests/pg.py); the behaviours both backends share are in test_audit.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import psycopg
import pytest

from conftest import SAMPLES, LiveServers
from engine.api import Engine
from engine.audit import SCHEMA_VERSION, audit_db_path, open_audit, open_audit_store
from engine.audit.postgres import PostgresAuditLog
from engine.errors import ClearanceError, UserError
from engine.keys import KeyStore
from engine.providers.base import NullProvider
from engine.waivers import open_waivers

try:
    from test_audit import DOC, EMAIL, SOURCES, make_report
except ImportError:  # tests/ collected as a package
    from tests.test_audit import DOC, EMAIL, SOURCES, make_report


def test_every_audit_command_on_postgres(pg_url: str, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    with PostgresAuditLog(pg_url) as log:
        for i in range(4):
            log.record(make_report(fail=i % 2 == 0), principal="ci", gates=SOURCES)
        log.record(make_report("cd" * 32, module="hipaa", fail=False), principal="ann", gates=[])
    db = ("--db", pg_url)

    code, out, _ = run_cli("audit", "recent", "--format", "json", *db)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [5, 4, 3, 2, 1]
    code, out, _ = run_cli("audit", "history", "abab", "--format", "json", *db)
    assert [r["id"] for r in json.loads(out)] == [4, 3, 2, 1]
    assert json.loads(out)[1]["not_passed"] == [
        {"gate": "GDPR-0", "status": "fail", "severity": "high", "line": 2, "waiver_reason": None}
    ]
    code, out, _ = run_cli("audit", "stats", "--format", "json", *db)
    stats = json.loads(out)
    assert (stats["validations"], stats["passed"], stats["failed"]) == (5, 3, 2)
    code, out, _ = run_cli("audit", "gates", "--top-failing", "--format", "json", *db)
    assert json.loads(out) == [
        {"gate": "GDPR-0", "module": "gdpr", "failed": 2, "evaluated": 4, "fail_pct": 50.0}
    ]
    code, out, _ = run_cli("audit", "trends", "--format", "json", *db)
    assert json.loads(out)[0]["validations"] == 5 and json.loads(out)[0]["avg_ms"] == 12.5
    code, out, _ = run_cli("audit", "export", "--format", "json", *db)
    exported = json.loads(out)
    assert len(exported) == 5 and [f["gate"] for f in exported[0]["findings"]] == [
        "GDPR-0",
        "GDPR-1",
        "GDPR-2",
    ]
    code, out, _ = run_cli("audit", "export", "--format", "csv", *db)
    assert out.splitlines()[0].startswith("id,time,principal") and len(out.splitlines()) == 6

    # a waiver, through `clearance waive` (the gate must exist in the loaded ruleset)
    code, out, err = run_cli(
        "waive", "SEC-001", "--doc", DOC, "--reason", "counsel approved", "--approver", "ann",
        "--expires", "2099-06-30", *db,
    )  # fmt: skip
    assert code == 0, err
    assert "waiver #1: SEC-001 waived for abababababab until 2099-06-30" in out
    with open_waivers(pg_url) as store:
        assert store.waivers_for(DOC)["SEC-001"].approver == "ann"

    code, out, _ = run_cli("audit", "verify", *db)
    assert code == 0 and out.startswith("OK: 5 validations, 1 waivers, 0 checkpoints")
    page = tmp_path / "report.html"
    code, out, _ = run_cli("audit", "report", "--html", str(page), *db)
    html = page.read_text()
    assert code == 0 and "chain verified" in html and "postgres:***@" not in html
    code, out, _ = run_cli("audit", "prune", "--before", "2999-01-01", *db)
    assert code == 0 and "pruned 5 validations" in out
    code, out, _ = run_cli("audit", "verify", "--format", "json", *db)
    assert json.loads(out)["ok"] is True and json.loads(out)["checkpoints"] == 1

    # tampering shows on this backend as on SQLite: the CLI says which row, and exits 1
    with PostgresAuditLog(pg_url) as log:
        log.record(make_report(), principal="ci", gates=[])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE validations SET verdict = 'pass' WHERE id = 6")
    code, out, _ = run_cli("audit", "verify", *db)
    assert code == 1 and "validations #6: content does not match its row_hash (edited)" in out


def test_environment_url_drives_the_engine_waivers_and_keys(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLEARANCE_AUDIT_URL", pg_url)
    sink = open_audit()
    assert isinstance(sink, PostgresAuditLog)
    sink.close()
    engine = Engine(provider=NullProvider(), cache=None)
    report = engine.validate(SAMPLES / "privacy-notice.md")
    failing = next(g.gate for g in report.gates if g.status.value == "fail")
    with open_waivers() as store:  # the same database: CLEARANCE_AUDIT_URL
        store.waive(failing, report.document.sha256, reason="legal", approver="ann", no_expiry=True)
    again = engine.validate(SAMPLES / "privacy-notice.md")
    assert next(g for g in again.gates if g.gate == failing).status.value == "waived"
    code, out, _ = run_cli("audit", "verify")  # no --db: CLEARANCE_AUDIT_URL
    assert code == 0 and "OK: 2 validations, 1 waivers" in out
    assert not audit_db_path().exists()  # nothing went to the SQLite file

    code, raw, _ = run_cli("keys", "create", "--role", "auditor", "--name", "carol")
    assert code == 0
    store = KeyStore()
    key = store.authenticate(raw.strip())
    assert key is not None and key.name == "carol" and key.role == "auditor"
    store.revoke(key.id)
    assert store.authenticate(raw.strip()) is None
    store.close()
    with psycopg.connect(pg_url) as conn:  # only the key's hash is stored
        stored = conn.execute("SELECT key_hash, key_prefix FROM api_keys").fetchall()
    assert stored == [(hashlib.sha256(raw.strip().encode()).hexdigest(), raw.strip()[:8])]


def test_http_server_on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.server import Settings, create_app

    monkeypatch.setenv("CLEARANCE_AUDIT_URL", pg_url)
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    keys = KeyStore()
    validator = keys.create("validator-bot", "validator")[1]
    admin = keys.create("admin-bot", "admin")[1]
    keys.close()
    servers = LiveServers()
    try:
        url = servers.start(create_app(settings=Settings()))
        text = (SAMPLES / "privacy-notice.md").read_text()
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {validator}"}, timeout=30
        ) as c:
            report = c.post("/v1/validate", json={"text": text, "name": "pn.md"}).json()
        failing = next(g["gate"] for g in report["gates"] if g["status"] == "fail")
        sha = report["document"]["sha256"]
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as c:
            w = c.post(
                "/v1/waivers",
                json={"gate": failing, "doc_sha256": sha, "reason": "ok", "no_expiry": True},
            )
            assert w.status_code == 201, w.text
            again = c.post("/v1/validate", json={"text": text, "name": "pn.md"}).json()
            assert next(g for g in again["gates"] if g["gate"] == failing)["status"] == "waived"
            recent = c.get("/v1/audit/recent").json()
            assert [r["principal"] for r in recent] == ["admin-bot", "validator-bot"]
            hist = c.get(f"/v1/audit/history/{sha[:12]}").json()
            assert hist[0]["not_passed"] and hist[0]["id"] == 2
            assert c.get("/v1/audit/stats").json()["validations"] == 2
            assert c.get("/v1/audit/trends").json()[0]["validations"] == 2
            assert c.get("/v1/audit/gates/top-failing").json()
            verify = c.get("/v1/audit/verify").json()
            assert verify["ok"] is True and verify["waivers"] == 1
    finally:
        servers.close()


def test_nothing_stores_document_text(pg_url: str) -> None:
    with PostgresAuditLog(pg_url) as log:
        log.record(make_report(), principal="ci", gates=SOURCES)
    with psycopg.connect(pg_url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        dump = "".join(
            str(conn.execute(f"SELECT coalesce(string_agg(t::text, ''), '') FROM {t} t").fetchone())
            for t in tables
        )
    assert EMAIL not in dump and "jo****" in dump  # the match is masked to its shape


def test_schema_is_versioned_and_a_newer_one_is_refused(pg_url: str) -> None:
    with PostgresAuditLog(pg_url) as log:
        assert log.schema_version() == SCHEMA_VERSION
        log.record(make_report(), principal="ci", gates=[])
    with PostgresAuditLog(pg_url) as log:  # reopening migrates nothing and keeps the rows
        assert log.count() == 1 and log.verify().ok
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(ClearanceError, match="schema version 99, newer than this Clearance"):
        PostgresAuditLog(pg_url)


def test_clear_errors(pg_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    empty = pg_server.create_database("never_written")
    with pytest.raises(UserError, match="no audit log in .*its tables are missing"):
        open_audit_store(empty, readonly=True)
    # a server that is not there: a clear error naming the log, and no password in it
    gone = "postgresql://clearance:s3cret@127.0.0.1:1/audit?connect_timeout=2"
    with pytest.raises(ClearanceError, match=r"audit log postgresql://clearance:\*\*\*@") as exc:
        PostgresAuditLog(gone)
    assert "s3cret" not in str(exc.value)
    monkeypatch.setenv("CLEARANCE_AUDIT_URL", "mysql://x")
    with pytest.raises(ClearanceError, match="must start with postgresql://"):
        open_audit()


def test_readonly_opening_cannot_write(pg_url: str) -> None:
    with PostgresAuditLog(pg_url) as log:
        log.record(make_report(), principal="ci", gates=[])
    with PostgresAuditLog(pg_url, readonly=True) as ro:
        assert ro.count() == 1 and ro.verify().ok
        with pytest.raises(ClearanceError, match="read-only"):
            ro.record(make_report(), principal="ci", gates=[])
        with pytest.raises(ClearanceError, match="cannot prune"):
            ro.prune("2999-01-01")
