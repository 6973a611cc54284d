"""The JSON report is a versioned contract: the exported schema is current and reports obey it."""

from __future__ import annotations

import json

import jsonschema

from conftest import ROOT, SAMPLES
from engine.report import report_json_schema

SCHEMA_FILE = ROOT / "engine" / "schema" / "report.schema.json"


def test_exported_schema_is_current():
    on_disk = json.loads(SCHEMA_FILE.read_text())
    assert on_disk == report_json_schema(), "run `make schema` and commit the result"


def test_cli_json_reports_validate_against_schema(run_cli):
    schema = json.loads(SCHEMA_FILE.read_text())
    code, out, _ = run_cli(
        "validate",
        SAMPLES / "privacy-notice.md",
        SAMPLES / "engineering-memo.md",
        "--format",
        "json",
    )
    assert code == 1
    reports = json.loads(out)
    assert isinstance(reports, list) and len(reports) == 2
    for r in reports:
        jsonschema.validate(r, schema)
        assert len(r["document"]["sha256"]) == 64
        for g in r["gates"]:
            for key in ("gate", "module", "status", "severity", "cite", "message", "fix", "spans"):
                assert key in g
    single = json.loads(run_cli("validate", SAMPLES / "breach-letter.txt", "-f", "json")[1])
    assert isinstance(single, dict)
    jsonschema.validate(single, schema)
