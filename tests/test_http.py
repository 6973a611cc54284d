"""HTTP API against a real uvicorn server on 127.0.0.1: contract, auth, limits and problems."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema
import pytest

from conftest import ROOT, SAMPLES, LiveServers
from engine.api import Engine
from engine.errors import GateFileError
from engine.keys import KeyStore
from engine.providers.base import NullProvider
from engine.report import Report
from engine.server import Settings, create_app

SCHEMA = json.loads((ROOT / "engine" / "schema" / "report.schema.json").read_text())
FORMATS = SAMPLES / "formats"
MAX_BODY = 256 * 1024
MAX_DOC = 128 * 1024


@dataclass
class Server:
    url: str
    home: Path
    keys: dict[str, str]

    @property
    def db(self) -> Path:
        return self.home / "audit.db"

    def client(self, role: str | None = None, *, header: str = "bearer") -> httpx.Client:
        headers = {}
        if role is not None:
            key = self.keys[role]
            headers = (
                {"Authorization": f"Bearer {key}"} if header == "bearer" else {"X-API-Key": key}
            )
        return httpx.Client(base_url=self.url, headers=headers, timeout=20)


@pytest.fixture(scope="module")
def serve() -> Iterator:
    """Start real uvicorn servers in background threads; stop them all at the end."""
    servers = LiveServers()
    yield servers.start
    servers.close()


@pytest.fixture(scope="module")
def server(serve, tmp_path_factory) -> Server:
    """The real startup path (engine, group-committed audit log, key store built from the
    environment), in its own Clearance home for the whole module."""
    home = tmp_path_factory.mktemp("http-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_HOME", str(home))
        mp.setenv("CLEARANCE_PROVIDER", "none")  # deterministic gates only; no model to load
        store = KeyStore(home / "audit.db")
        keys = {
            role: store.create(f"{role}-bot", role)[1] for role in ("validator", "auditor", "admin")
        }
        revoked, raw = store.create("gone", "admin")
        store.revoke(revoked.id)
        keys["revoked"] = raw
        store.close()
        url = serve(
            create_app(settings=Settings(max_body_bytes=MAX_BODY, max_document_bytes=MAX_DOC))
        )
    return Server(url, home, keys)


def _assert_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in r.text and 'File "' not in r.text
    return body


def _audit_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id, principal, doc_name FROM validations ORDER BY id"
        ).fetchall()


# -- validation ------------------------------------------------------------------------------


def test_validate_json_matches_cli_contract(server, run_cli, monkeypatch):
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")  # as the server's
    text = (SAMPLES / "privacy-notice.md").read_text()
    with server.client("validator") as c:
        r = c.post("/v1/validate", json={"text": text, "name": "privacy-notice.md"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    report = r.json()
    jsonschema.validate(report, SCHEMA)
    Report.model_validate(report)
    code, out, _ = run_cli("validate", SAMPLES / "privacy-notice.md", "-f", "json")
    cli = json.loads(out)
    assert report["exit_code"] == cli["exit_code"] == code
    assert report["document"]["sha256"] == cli["document"]["sha256"]
    assert [(g["gate"], g["status"]) for g in report["gates"]] == [
        (g["gate"], g["status"]) for g in cli["gates"]
    ]


@pytest.mark.parametrize("name", ["sample.docx", "sample.pdf", "sample.html"])
def test_validate_upload_formats(server, name):
    with server.client("validator", header="x-api-key") as c:
        r = c.post(
            "/v1/validate",
            files={"file": (name, (FORMATS / name).read_bytes())},
            data={"modules": "gdpr", "doc_type": "privacy_notice"},
        )
    assert r.status_code == 200, r.text
    report = r.json()
    jsonschema.validate(report, SCHEMA)
    assert report["document"]["name"] == name
    assert [m["id"] for m in report["modules"]] == ["gdpr"]
    assert report["document"]["doc_type"] == "privacy_notice"


def test_other_report_formats(server):
    with server.client("validator") as c:
        body = {"text": (SAMPLES / "breach-letter.txt").read_text(), "name": "b.txt"}
        sarif = c.post("/v1/validate?format=sarif", json=body)
        junit = c.post("/v1/validate?format=junit", json=body)
        bad = c.post("/v1/validate?format=pdf", json=body)
    assert sarif.status_code == 200 and sarif.json()["version"] == "2.1.0"
    assert junit.status_code == 200 and junit.text.lstrip().startswith("<?xml")
    assert "junit" in _assert_problem(bad, 422)["detail"]


def test_principal_and_one_row_per_validation(server):
    before = len(_audit_rows(server.db))
    with server.client("admin") as c:
        for i in range(3):
            assert (
                c.post("/v1/validate", json={"text": f"memo {i}", "name": f"m{i}.txt"}).status_code
                == 200
            )
    rows = _audit_rows(server.db)
    assert len(rows) == before + 3
    assert [(p, n) for _, p, n in rows[-3:]] == [("admin-bot", f"m{i}.txt") for i in range(3)]


def test_concurrent_validations_are_each_recorded_once(server):
    before = len(_audit_rows(server.db))

    def post(i: int) -> int:
        with server.client("validator") as c:
            return c.post(
                "/v1/validate", json={"text": f"note number {i}", "name": f"n{i}.txt"}
            ).status_code

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = _audit_rows(server.db)
    assert len(rows) == before + 20
    assert sorted(n for _, _, n in rows[before:]) == sorted(f"n{i}.txt" for i in range(20))
    with server.client("auditor") as c:
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_group_commit_records_each_once_and_refuses_after_close(tmp_path):
    from engine.audit import AuditLog
    from engine.errors import ClearanceError
    from engine.server import GroupCommitAudit

    engine = Engine(provider=NullProvider(), cache=None, audit=None)
    report = engine.validate(SAMPLES / "breach-letter.txt")
    sink = GroupCommitAudit(AuditLog(tmp_path / "audit.db"))
    ids: list[int] = []
    threads = [
        threading.Thread(target=lambda: ids.append(sink.record(report, principal="t", gates=[])))
        for _ in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    assert sorted(ids) == list(range(1, 13))
    with pytest.raises(ClearanceError, match="closed"):
        sink.record(report, principal="t", gates=[])
    with AuditLog(tmp_path / "audit.db") as log:
        assert log.count() == 12 and log.verify().ok


def test_deferred_records_free_the_thread_and_are_awaited(tmp_path):
    from engine.audit import AuditLog
    from engine.server import GroupCommitAudit

    engine = Engine(provider=NullProvider(), cache=None, audit=None)
    report = engine.validate(SAMPLES / "breach-letter.txt")
    sink = GroupCommitAudit(AuditLog(tmp_path / "audit.db"))
    with sink.deferred() as held:
        assert sink.record(report, principal="t", gates=[]) == 0  # held, not waited for
        sink.record(report, principal="t", gates=[])
    assert len(held) == 2 and sink.log.count() == 0  # nothing written before it is submitted
    pending = sink.submit(held)
    assert [f.result(timeout=10) for f in pending] == [1, 2]
    assert not pending[0].cancel()  # a request that gives up cannot cancel its row
    assert sink.record(report, principal="t", gates=[]) == 3  # outside: waits, returns the id
    sink.close()


class _BrokenLog:
    """An audit log whose disk is gone: every write fails."""

    def record_many(self, items):  # type: ignore[no-untyped-def]
        from engine.errors import ClearanceError

        raise ClearanceError("audit log x.db: cannot record: disk I/O error")

    def record(self, report, **kw):  # type: ignore[no-untyped-def]
        return self.record_many([report])

    def waivers_for(self, doc):  # type: ignore[no-untyped-def]
        return {}

    def close(self) -> None:
        pass


def test_validation_is_not_answered_when_its_audit_row_cannot_be_written(serve):
    from engine.server import GroupCommitAudit

    sink = GroupCommitAudit(_BrokenLog())  # type: ignore[arg-type]
    engine = Engine(provider=NullProvider(), cache=None, audit=sink)
    url = serve(create_app(engine, settings=Settings(auth=False)))
    with httpx.Client(base_url=url, timeout=10) as c:
        r = c.post("/v1/validate", json={"text": "Email jane@example.com", "name": "m.txt"})
    body = _assert_problem(r, 503)
    assert "audit" in body["detail"] and "verdict" not in r.text and "x.db" not in r.text
    sink.close()


@pytest.mark.parametrize(
    ("error", "message", "status", "kind"),
    [
        ("UserError", "bad jurisdiction", 422, "invalid-request"),
        ("DocumentError", "a.bin: binary file, not a document", 415, "unsupported-document"),
        ("DocumentError", "a.pdf: not a PDF", 422, "bad-document"),
        ("GateFileError", "3 errors in gate files", 500, "gate-files"),
        ("ServiceError", "audit log /srv/a.db: disk I/O error", 503, "unavailable"),
        ("ClearanceError", "raised bare by older code", 503, "unavailable"),
        ("DeadlineExceeded", "stopped after 2 s", 504, "timeout"),
    ],
)
def test_clearance_errors_map_to_http_statuses_in_one_place(error, message, status, kind):
    from engine import errors
    from engine.server.problems import problem_for

    exc = getattr(errors, error)(message)
    p = problem_for(exc, failed="the server cannot do that right now")
    assert (p.status_code, p.kind) == (status, kind)
    if status == 503:  # "Clearance failed": the internal message stays in the server log
        assert p.detail == "the server cannot do that right now"
    elif status < 500:  # "your input is wrong": the message says what to fix
        assert p.detail == message


# -- errors and limits -----------------------------------------------------------------------


def test_auth_401_403(server):
    body = {"text": "hello"}
    with server.client() as c:
        r = _assert_problem(c.post("/v1/validate", json=body), 401)
        assert "API key" in r["detail"]
        assert c.post("/v1/validate", json=body).headers["www-authenticate"] == "Bearer"
        _assert_problem(
            c.post("/v1/validate", json=body, headers={"X-API-Key": "clr_not-a-real-key"}), 401
        )
        _assert_problem(
            c.post(
                "/v1/validate",
                json=body,
                headers={"Authorization": f"Bearer {server.keys['revoked']}"},
            ),
            401,
        )
    with server.client("auditor") as c:
        _assert_problem(c.post("/v1/validate", json=body), 403)
    with server.client("validator") as c:
        _assert_problem(c.get("/v1/audit/recent"), 403)
        _assert_problem(
            c.post("/v1/waivers", json={"gate": "X", "doc_sha256": "0" * 64, "reason": "r"}), 403
        )


def test_body_too_large(server):
    with server.client("validator") as c:
        big = c.post("/v1/validate", json={"text": "a" * (MAX_BODY + 10)})
        _assert_problem(big, 413)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"text": "'
            for _ in range(40):
                yield b"b" * 8192
            yield b'"}'

        streamed = c.post(
            "/v1/validate", content=chunks(), headers={"content-type": "application/json"}
        )
        _assert_problem(streamed, 413)
        doc = _assert_problem(c.post("/v1/validate", json={"text": "c" * (MAX_DOC + 1)}), 413)
        assert "document limit" in doc["detail"]


def test_bad_documents_are_problems(server):
    with server.client("validator") as c:
        binary = c.post("/v1/validate", files={"file": ("x.bin", bytes(range(256)) * 8)})
        assert "not a document" in _assert_problem(binary, 415)["detail"]
        fake_pdf = c.post("/v1/validate", files={"file": ("x.pdf", b"just text, no header")})
        assert "not a PDF" in _assert_problem(fake_pdf, 422)["detail"]
        empty = c.post("/v1/validate", json={"text": "   "})
        assert "empty" in _assert_problem(empty, 422)["detail"]
        _assert_problem(
            c.post("/v1/validate", content=b"text", headers={"content-type": "text/plain"}), 415
        )
        _assert_problem(c.post("/v1/validate", json={"name": "no text"}), 422)
        _assert_problem(
            c.post(
                "/v1/validate", content=b"{not json", headers={"content-type": "application/json"}
            ),
            422,
        )
        bad_type = _assert_problem(
            c.post("/v1/validate", json={"text": "x", "doc_type": "privacy_notise"}), 422
        )
        assert "Did you mean 'privacy_notice'" in bad_type["detail"]
        _assert_problem(c.post("/v1/validate", json={"text": "x", "modules": ["gdrp"]}), 422)
        _assert_problem(c.get("/v1/nothing-here"), 404)


class _OddEngine(Engine):
    """Misbehaves on cue, to check what clients see when the server fails."""

    def validate(self, doc, **kw):  # type: ignore[no-untyped-def, override]
        if "SLEEP" in doc.text:
            time.sleep(1.5)
        if "CRASH" in doc.text:
            raise RuntimeError("secret internals at /srv/clearance/engine.py line 42")
        if "GATES" in doc.text:
            raise GateFileError("modules/x.gates:3:1: error[DSL101] secret gate source")
        return super().validate(doc, **kw)


def test_failures_are_problems_without_internals(serve):
    engine = _OddEngine(provider=NullProvider(), cache=None, audit=None)
    url = serve(create_app(engine, settings=Settings(auth=False, timeout_s=0.3)))
    with httpx.Client(base_url=url, timeout=10) as c:
        slow = _assert_problem(c.post("/v1/validate", json={"text": "SLEEP"}), 504)
        assert "0.3 s" in slow["detail"]
        for cue in ("CRASH", "GATES"):
            r = c.post("/v1/validate", json={"text": cue})
            _assert_problem(r, 500)
            assert "secret" not in r.text and "/srv" not in r.text and "DSL101" not in r.text
        # --no-auth: no key needed, and the audit log is off in this engine (503 for queries)
        assert c.post("/v1/validate", json={"text": "fine"}).status_code == 200
        _assert_problem(c.get("/v1/audit/recent"), 503)


# -- gates, audit, docs ----------------------------------------------------------------------


def test_modules_and_gates(server):
    with server.client("validator") as c:
        mods = c.get("/v1/modules").json()
        assert {m["id"] for m in mods} >= {"gdpr", "hipaa", "secrets"}
        code = mods[0]["gates"][0]["code"]
        g = c.get(f"/v1/gates/{code}").json()
        assert g["code"] == code and g["cite"] and "gate" in g["source"]
        missing = _assert_problem(c.get(f"/v1/gates/{code}X"), 404)
        assert "Did you mean" in missing["detail"] and code in missing["detail"]


def test_audit_endpoints_and_waivers(server):
    text = (SAMPLES / "privacy-notice.md").read_text()
    with server.client("validator") as c:
        report = c.post("/v1/validate", json={"text": text, "name": "pn.md"}).json()
    failing = next(g["gate"] for g in report["gates"] if g["status"] == "fail")
    sha = report["document"]["sha256"]
    with server.client("auditor") as c:
        recent = c.get("/v1/audit/recent", params={"limit": 2}).json()
        assert len(recent) == 2 and recent[0]["doc_sha256"] == sha
        assert recent[0]["principal"] == "validator-bot"
        hist = c.get(f"/v1/audit/history/{sha[:12]}").json()
        assert hist and all(h["doc_sha256"] == sha for h in hist)
        assert any(f["gate"] == failing for f in hist[0]["not_passed"])
        stats = c.get("/v1/audit/stats").json()
        assert stats["validations"] >= 1 and stats["by_gate"]
        assert c.get("/v1/audit/stats", params={"module": "gdpr"}).status_code == 200
        assert any(t["gate"] == failing for t in c.get("/v1/audit/gates/top-failing").json())
        assert c.get("/v1/audit/trends").json()[-1]["validations"] >= 1
        assert c.get("/v1/audit/verify").json()["ok"] is True
        _assert_problem(c.get("/v1/audit/stats", params={"since": "last week"}), 422)
        _assert_problem(c.get("/v1/audit/history/zz"), 422)
        _assert_problem(
            c.post("/v1/waivers", json={"gate": failing, "doc_sha256": sha, "reason": "r"}), 403
        )
    with server.client("admin") as c:
        no_expiry = c.post(
            "/v1/waivers",
            json={"gate": failing, "doc_sha256": sha, "reason": "legal approved the wording"},
        )
        assert "expiry" in _assert_problem(no_expiry, 422)["detail"]
        unknown = c.post(
            "/v1/waivers",
            json={"gate": failing + "X", "doc_sha256": sha, "reason": "r", "no_expiry": True},
        )
        assert "unknown gate" in _assert_problem(unknown, 422)["detail"]
        w = c.post(
            "/v1/waivers",
            json={
                "gate": failing,
                "doc_sha256": sha,
                "reason": "legal approved the wording",
                "expires": "2999-12-31",
            },
        )
        assert w.status_code == 201 and w.json()["approver"] == "admin-bot"
        again = c.post("/v1/validate", json={"text": text, "name": "pn.md"}).json()
        assert next(g for g in again["gates"] if g["gate"] == failing)["status"] == "waived"
        _assert_problem(
            c.post("/v1/waivers", json={"gate": failing, "doc_sha256": "abc", "reason": "r"}), 422
        )


def test_openapi_and_health(server):
    with server.client() as c:
        assert c.get("/healthz").json()["status"] == "ok"
        spec = c.get("/openapi.json").json()
        assert {
            "/v1/validate",
            "/v1/modules",
            "/v1/gates/{code}",
            "/v1/audit/recent",
            "/v1/waivers",
            "/healthz",
        } <= set(spec["paths"])
        content = spec["paths"]["/v1/validate"]["post"]["requestBody"]["content"]
        assert {"application/json", "multipart/form-data"} <= set(content)
        assert "swagger" in c.get("/docs").text.lower()


def test_openapi_schema_matches_snapshot(snapshot):
    """The published contract (paths, operationIds, parameters, schemas) changes only on
    purpose: refresh with `pytest tests/test_http.py --snapshot-update` and review the diff."""
    from syrupy.extensions.json import JSONSnapshotExtension

    spec = create_app(settings=Settings()).openapi()
    spec["info"]["version"] = "<version>"  # the package version is not part of the contract
    assert spec == snapshot.use_extension(JSONSnapshotExtension)


def test_api_docs_load_nothing_from_the_network(server):
    with server.client() as c:
        for page in ("/docs", "/redoc"):
            html = c.get(page).text
            assets = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert assets and all(a.startswith("/") for a in assets), (page, assets)
            for asset in assets:  # every script and style the page loads is served here
                assert c.get(asset).status_code == 200, asset


def test_jurisdictions_and_untyped_policy_over_http(server):
    text = (SAMPLES / "privacy-notice.md").read_text()
    with server.client("validator") as c:
        us = c.post(
            "/v1/validate", json={"text": text, "name": "n.md", "jurisdictions": ["California"]}
        ).json()
        form = c.post(
            "/v1/validate",
            files={"file": ("n.md", text.encode())},
            data={"jurisdictions": "uk", "untyped": "fail"},
        ).json()
        untyped = c.post(
            "/v1/validate", json={"text": "Lunch is at noon.", "name": "n.txt", "untyped": "fail"}
        ).json()
        default = c.post("/v1/validate", json={"text": "Lunch is at noon.", "name": "n.txt"})
        bad = c.post("/v1/validate", json={"text": "x", "jurisdictions": ["not a place!"]})
        bad_policy = c.post("/v1/validate", json={"text": "x", "untyped": "ignore"})
    assert us["jurisdictions"] == ["us-ca", "us"]
    assert "gdpr" not in {g["module"] for g in us["gates"]}
    assert {c["id"]: c["applied"] for c in us["module_selection"]}["gdpr"] is False
    assert form["jurisdictions"] == ["uk"] and "gdpr" in {g["module"] for g in form["gates"]}
    assert (untyped["verdict"], untyped["exit_code"], untyped["untyped_policy"]) == (
        "fail",
        1,
        "fail",
    )
    assert default.status_code == 200 and default.json()["verdict"] == "review"
    assert "not a jurisdiction code" in _assert_problem(bad, 422)["detail"]
    _assert_problem(bad_policy, 422)


def test_server_reads_its_settings_file(serve, tmp_path):
    settings = tmp_path / "clearance.toml"
    settings.write_text('jurisdictions = ["us"]\nuntyped = "fail"\n', encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLEARANCE_HOME", str(tmp_path / "home"))
        mp.setenv("CLEARANCE_PROVIDER", "none")
        mp.setenv("CLEARANCE_CONFIG", str(settings))
        url = serve(create_app(settings=Settings(auth=False)))
    with httpx.Client(base_url=url, timeout=60) as c:
        report = c.post("/v1/validate", json={"text": "Lunch is at noon.", "name": "n.txt"}).json()
    assert report["config"] == "clearance.toml" and report["jurisdictions"] == ["us"]
    assert (report["verdict"], report["untyped_policy"]) == ("fail", "fail")
