"""Bounded results (issue 16, part 3): spans are capped per gate and per report, the report says
how many more there were, a span names its check in a few words, and the audit row is written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from engine.api import Engine
from engine.audit import AuditLog
from engine.budget import MAX_LABEL_CHARS
from engine.errors import UserError
from engine.formatters.base import get_formatter
from engine.ingest import document_from_text
from engine.providers.base import NullProvider

EVERY_LETTER = """module dense { title "Dense" version "1" }
gate DENSE-1 letters { title "t" cite "x" forbid regex /[a-z]/ example pass "1." example fail "a" }
gate DENSE-2 words { title "t" cite "x" forbid regex /[a-z]+/ example pass "1." example fail "ab" }
"""


def _engine(tmp_path: Path, gates: str, audit: AuditLog | None = None) -> Engine:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "m.gates").write_text(gates, encoding="utf-8")
    return Engine(
        gate_paths=[folder], include_builtin=False, cache=None, audit=audit, provider=NullProvider()
    )


def test_spans_are_capped_per_gate_and_the_rest_counted(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.db")
    text = "lorem ipsum dolor sit amet " * 1000  # 27,000 characters, 22,000 letters
    report = _engine(tmp_path, EVERY_LETTER, audit).validate(document_from_text(text, "d.txt"))
    letters, words = report.gates
    assert letters.status == "fail" and words.status == "fail"
    assert len(letters.spans) == 100 and letters.spans_omitted == 22_000 - 100
    assert len(words.spans) == 100 and words.spans_omitted == 5_000 - 100
    assert any("more spans found but not listed" in w for w in report.warnings)
    assert len(report.model_dump_json()) < 64_000  # was 6.6 MB uncapped
    # the audit row is written, with the listed spans
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        (spans,) = conn.execute("SELECT spans FROM findings WHERE gate = 'DENSE-1'").fetchone()
    assert len(json.loads(spans)) == 100
    audit.close()
    text_out = get_formatter("text").render([report])
    assert "21,900 more spans not listed" in text_out
    assert "21,900 more not listed" in get_formatter("html").render([report])
    sarif = json.loads(get_formatter("sarif").render([report]))
    assert {
        r["properties"].get("spansOmitted")
        for r in sarif["runs"][0]["results"]
        if r["ruleId"] == "DENSE-1"
    } == {21_900}
    assert "21,900 more spans not listed" in get_formatter("junit").render([report])


def test_the_report_cap_spans_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARANCE_MAX_SPANS", "5")
    monkeypatch.setenv("CLEARANCE_MAX_REPORT_SPANS", "7")
    report = _engine(tmp_path, EVERY_LETTER).validate(document_from_text("ab cd ef " * 20, "d.txt"))
    letters, words = report.gates
    assert (len(letters.spans), letters.spans_omitted) == (5, 120 - 5)
    assert (len(words.spans), words.spans_omitted) == (2, 60 - 2)
    assert letters.status == words.status == "fail"  # the verdict never depends on the cap
    monkeypatch.setenv("CLEARANCE_MAX_SPANS", "lots")
    with pytest.raises(UserError, match="CLEARANCE_MAX_SPANS must be a whole number"):
        _engine(tmp_path, EVERY_LETTER).validate(document_from_text("ab", "d.txt"))


def test_a_long_pattern_is_not_copied_onto_every_span(tmp_path: Path) -> None:
    """A 44 KB pattern with thousands of matches: each span used to carry the whole pattern
    (25,610 of them made a report SQLite refused: "string or blob too big", exit 4)."""
    words = [f"w{i:05d}x" for i in range(5_600)]
    pattern = "|".join(words)
    assert len(pattern) > 44_000
    gates = (
        'module long { title "Long" version "1" }\n'
        f'gate LONG-1 listed {{ title "t" cite "x" forbid regex /(?:{pattern})/ '
        'example pass "none" example fail "w00001x" }\n'
    )
    audit = AuditLog(tmp_path / "audit.db")
    text = " ".join(words[i % len(words)] for i in range(3_000))
    report = _engine(tmp_path, gates, audit).validate(document_from_text(text, "d.txt"))
    (gate,) = report.gates
    assert gate.status == "fail" and gate.spans_omitted == 3_000 - 100
    assert all(len(s.check) <= MAX_LABEL_CHARS for s in gate.spans)
    assert gate.spans[0].check.startswith("regex /(?:w00000x|w00001x") and "chars)" in (
        gate.spans[0].check
    )
    assert len(report.model_dump_json()) < 64_000
    assert audit.count() == 1 and audit.verify().ok
    audit.close()
