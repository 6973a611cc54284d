"""Fail-safe typing, project settings (clearance.toml) and jurisdictions, end to end."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLES, write
from engine.api import Engine
from engine.config import (
    Config,
    UntypedPolicy,
    find_config,
    load_config,
    module_applies,
    module_jurisdictions,
    normalise_jurisdictions,
)
from engine.errors import UserError
from engine.ingest import document_from_text
from engine.providers.base import Answer, ProviderResult, Usage
from engine.providers.scripted import ScriptedProvider

# A UK notice missing its retention period and the ICO, headed so that nothing in the heading
# names its type (the reproduction).
UK_NOTICE = """How we look after your information

Hollin Bakery Ltd, 4 Mill Lane, Leeds LS1 6DT, decides how your personal data is used.
We collect your name, email address and delivery address when you order, to deliver your
order and to send you receipts. Our lawful basis is the contract we have with you.
We share your details with our courier only. You have the right to access, correct or erase
your personal data: write to hello@hollin.example.
"""


@pytest.fixture()
def engine():
    return Engine(cache=None, audit=None)


def test_a_body_without_a_typed_heading_is_still_typed(engine):
    report = engine.validate(document_from_text(UK_NOTICE, name="notice.txt"))
    d = report.document
    assert (d.doc_type, d.doc_type_source) == ("privacy_notice", "inferred")
    assert d.doc_type_confidence and d.doc_type_confidence > 0
    assert "personal data" in d.doc_type_signals
    assert report.verdict == "fail" and report.exit_code == 1


@pytest.mark.parametrize(
    "policy, verdict, code",
    [
        (None, "review", 3),
        ("review", "review", 3),
        ("fail", "fail", 1),
        ("universal", "pass", 0),
    ],
)
def test_untyped_policy_decides_and_is_reported(engine, policy, verdict, code):
    doc = document_from_text("Lunch is at noon on Friday. Bring cake.\n", name="note.txt")
    report = engine.validate(doc, untyped=policy)
    assert report.document.doc_type_source == "none"
    assert (report.verdict, report.exit_code) == (verdict, code)
    assert report.untyped_policy == (policy or "review")
    assert any(f"policy '{policy or 'review'}'" in w for w in report.warnings)


def test_untyped_document_with_a_blocking_universal_failure_still_fails(engine):
    doc = document_from_text("key: AKIAQ3EGT5YH2KXW7PLM\n", name="note.txt")
    report = engine.validate(doc)
    assert (report.verdict, report.exit_code) == ("fail", 1)


def test_a_typed_document_has_no_untyped_policy(engine):
    report = engine.validate(SAMPLES / "breach-letter.txt", modules=["hipaa"])
    assert report.untyped_policy is None and report.verdict == "pass"


def test_the_cache_keeps_untyped_policies_apart(tmp_path):
    from engine.cache import DiskCache

    eng = Engine(cache=DiskCache(tmp_path / "c"), audit=None)
    doc = document_from_text("Lunch is at noon on Friday.\n", name="n.txt")
    assert eng.validate(doc, untyped="fail").exit_code == 1
    assert eng.validate(doc, untyped="universal").exit_code == 0
    assert eng.validate(doc).exit_code == 3


# -- jurisdictions ---------------------------------------------------------------------------


def test_jurisdiction_codes():
    assert normalise_jurisdictions(["us-ca"]) == ["us-ca", "us"]
    assert normalise_jurisdictions(["UK, eu"]) == ["uk", "eu"]
    assert normalise_jurisdictions(["California"]) == ["us-ca", "us"]
    with pytest.raises(UserError, match="not a jurisdiction code"):
        normalise_jurisdictions(["Narnia!"])
    assert module_jurisdictions("EU / UK") == ["eu", "uk"]
    assert module_jurisdictions(None) == []
    assert module_applies(["eu", "uk"], ["de"])[0] is True  # a member state is under EU law
    assert module_applies(["eu", "uk"], ["us"])[0] is False
    assert module_applies([], ["us"])[0] is True


def test_a_us_document_gets_no_gdpr_gates(engine):
    text = (SAMPLES / "privacy-notice.md").read_text(encoding="utf-8")
    doc = document_from_text(text, name="privacy-notice.md")
    everywhere = engine.validate(doc)
    assert any(g.module == "gdpr" and g.status.value == "fail" for g in everywhere.gates)
    us = engine.validate(doc, jurisdictions=["us-ca", "us"])
    assert {g.module for g in us.gates} == {"hipaa", "secrets"}
    why = {c.id: (c.applied, c.why) for c in us.module_selection}
    assert why["gdpr"][0] is False and "eu" in why["gdpr"][1]
    assert why["secrets"] == (True, "applies in every jurisdiction")
    assert us.jurisdictions == ["us-ca", "us"]


def test_named_modules_win_over_jurisdictions(engine):
    report = engine.validate(SAMPLES / "breach-letter.txt", modules=["gdpr"], jurisdictions=["us"])
    assert {g.module for g in report.gates} == {"gdpr"}


# -- settings files --------------------------------------------------------------------------


def test_settings_file_is_found_upwards_and_checked(tmp_path):
    write(
        tmp_path / "clearance.toml",
        'jurisdictions = ["us"]\nuntyped = "fail"\n'
        'fail-on = "high"\n[doc-types]\n"letters/**" = "patient_letter"\n',
    )
    (tmp_path / "a" / "b").mkdir(parents=True)
    found = find_config(tmp_path / "a" / "b")
    assert found == tmp_path / "clearance.toml"
    cfg = load_config(found)
    assert cfg.jurisdictions == ["us"] and cfg.untyped == UntypedPolicy.fail
    assert cfg.doc_type_for(tmp_path / "letters" / "2026" / "x.txt") == (
        "patient_letter",
        "letters/**",
    )
    assert cfg.doc_type_for(tmp_path / "memo.txt") is None


def test_pyproject_tool_table(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n[tool.clearance]\nmodules = ["secrets"]\n',
    )
    cfg = load_config(find_config(tmp_path))
    assert cfg.modules == ["secrets"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('jurisdiction = ["us"]\n', "unknown setting 'jurisdiction'"),
        ('untyped = "ignore"\n', "unknown policy 'ignore'"),
        ('[doc-types]\n"*.txt" = "leter"\n', "unknown document type 'leter'"),
        ('fail-on = "urgent"\n', "'fail-on' must be one of"),
        ('modules = "gdpr"\n', "'modules' must be a list of strings"),
        ("modules = [\n", "not valid TOML"),
    ],
)
def test_settings_mistakes_are_clear_errors(tmp_path, text, message):
    path = write(tmp_path / "clearance.toml", text)
    with pytest.raises(UserError, match=message):
        load_config(path)


def test_cli_reads_the_settings_and_flags_win(tmp_path, run_cli, monkeypatch):
    write(
        tmp_path / "clearance.toml",
        'jurisdictions = ["us"]\n[doc-types]\n"notices/*" = "privacy_notice"\n',
    )
    doc = write(
        tmp_path / "notices" / "n.md", (SAMPLES / "privacy-notice.md").read_text(encoding="utf-8")
    )
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("validate", doc, "-f", "json", "--explain-type")
    report = json.loads(out)
    assert report["config"] == "clearance.toml"
    assert report["document"]["doc_type_source"] == "config"
    assert report["jurisdictions"] == ["us"]
    assert "gdpr" not in {g["module"] for g in report["gates"]}
    assert "type privacy_notice (settings: settings glob notices/*)" in err
    code, out, _ = run_cli("validate", doc, "-f", "json", "-J", "uk")
    report = json.loads(out)
    assert report["jurisdictions"] == ["uk"] and "gdpr" in {g["module"] for g in report["gates"]}
    assert code == 1


def test_cli_bad_settings_exit_2(tmp_path, run_cli, monkeypatch):
    write(tmp_path / "clearance.toml", 'untyped = "maybe"\n')
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("validate", SAMPLES / "breach-letter.txt")
    assert code == 2 and "unknown policy 'maybe'" in err and "Traceback" not in err


def test_cli_explain_type_for_an_untyped_document(tmp_path, run_cli):
    doc = write(tmp_path / "n.txt", "Hello team, the appointment list is attached.\n")
    code, _, err = run_cli("validate", doc, "--explain-type")
    assert code == 3
    assert "type not told (likely: patient_letter" in err and "policy review" in err


def test_engine_default_config_is_the_built_in_one():
    assert Engine(cache=None, audit=None).config == Config()


# -- honest uncertainty ----------------------------------------------------------------------


class _Unsure(ScriptedProvider):
    """Answers every question with a fixed verdict and confidence (or a scored band)."""

    def __init__(self, verdict, confidence, score=None):
        super().__init__()
        self.answer_args = (verdict, confidence, score)

    async def answer(self, doc, questions):
        verdict, confidence, score = self.answer_args
        band = {"score": score, "decided_above": 0.62, "decided_below": 0.55} if score else {}
        return ProviderResult(
            {q.id: Answer(verdict, confidence, "because", **band) for q in questions},
            Usage(calls=1),
        )


SEMANTIC_GATE = """module u { title "u" version "1" }
gate U-1 purposes {
  title "Says why data is used" cite "c" severity high applies privacy_notice
  require semantic "Does it say why data is used?"
  example pass "x" example fail "y"
}
"""


@pytest.mark.parametrize(
    "verdict, confidence, score, status",
    [
        ("no", 0.53, None, "indeterminate"),  # a coin-flip no is not a confident failure
        ("yes", 0.55, None, "indeterminate"),  # nor a coin-flip yes a pass
        ("no", 0.9, None, "fail"),
        ("yes", 0.9, None, "pass"),
        ("no", 0.5, 0.50, "fail"),  # a scored answer carries its own band: trusted
    ],
)
def test_unsure_answers_are_indeterminate(tmp_path, verdict, confidence, score, status):
    write(tmp_path / "u" / "module.gates", SEMANTIC_GATE)
    eng = Engine(
        gate_paths=[tmp_path / "u"],
        include_builtin=False,
        cache=None,
        audit=None,
        provider=_Unsure(verdict, confidence, score),
    )
    report = eng.validate(
        document_from_text("We use your email.", name="n.txt"), doc_type="privacy_notice"
    )
    gate = report.gates[0]
    assert gate.status.value == status
    if status == "indeterminate":
        assert gate.blocking and report.exit_code == 3  # on_indeterminate block (the default)
        assert f"unsure (would be {verdict} at confidence {confidence:.2f}" in gate.message
        assert gate.semantic[0].verdict == "unclear"


def test_cite_matching_for_the_heldout_harness():
    from engine.evaluation.heldout import cites_match, provisions

    assert provisions("45 CFR 164.502(b), 164.514(d)") == {"164.502(b)", "164.514(d)"}
    assert cites_match("UK GDPR Art. 13(2)(d)", "GDPR Art. 13(2)(d); UK GDPR")
    assert cites_match("45 CFR 164.514(d)", "45 CFR 164.514(d)(3)")
    assert not cites_match("GDPR Art. 13(2)(a)", "GDPR Art. 13(2)(b)")
    assert not cites_match("45 CFR 164.502(a)", "45 CFR 164.502(b)")


def test_review_verdicts_are_audited_as_undecided_and_verify(tmp_path):
    from engine.audit import AuditLog

    with AuditLog(tmp_path / "audit.db") as log:
        eng = Engine(cache=None, audit=log)
        report = eng.validate(document_from_text("Lunch is at noon on Friday.\n", name="n.txt"))
        assert report.verdict == "review"
        assert log.recent(1)[0]["verdict"] == "review"
        stats = log.stats()
        assert (stats["validations"], stats["passed"], stats["indeterminate"]) == (1, 0, 1)
        assert log.verify().ok


def test_an_undecided_review_gate_blocks_nothing_but_is_never_a_pass(tmp_path):
    write(
        tmp_path / "u" / "module.gates",
        SEMANTIC_GATE.replace(
            "applies privacy_notice", "applies privacy_notice on_indeterminate review"
        ),
    )
    eng = Engine(
        gate_paths=[tmp_path / "u"],
        include_builtin=False,
        cache=None,
        audit=None,
        provider=_Unsure("no", 0.53),
    )
    report = eng.validate(
        document_from_text("We use your email.", name="n.txt"), doc_type="privacy_notice"
    )
    assert report.gates[0].status.value == "indeterminate" and not report.gates[0].blocking
    assert (report.verdict, report.exit_code) == ("review", 0)
