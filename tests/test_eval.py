"""`clearance eval`: metric arithmetic on a tiny labelled corpus, indeterminate handling, JSON
output, usage errors, and a small GDPR-T-200 run when the shared corpus is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.api import Engine
from engine.evaluation.gates import (
    REPO_ROOT,
    GateScore,
    RequirementScore,
    evaluate_corpus,
    load_t200_config,
)
from engine.providers.scripted import ScriptedProvider
from tests.conftest import write

# One deterministic gate and one that needs a semantic answer, in a module of their own so the
# test does not move when the built-in modules are tuned.
GATES = """
module evaltest { title "eval test" version "1" }

gate EVT-1 names_controller {
  title "Names the controller"
  cite  "test"
  applies privacy_notice
  require phrase("data controller")
  fix "name it"
  example pass "Acme is the data controller."
  example fail "Hello."
}

gate EVT-2 says_retention {
  title "Says how long data is kept"
  cite  "test"
  applies privacy_notice
  on_indeterminate review
  require any {
    phrase("retention period")
    semantic "Does the notice say how long data is kept?"
  }
  fix "say it"
  example pass "The retention period is two years."
  example fail "Hello."
}
"""

# name: (text, EVT-1 label, EVT-2 label)
DOCS = {
    "a.md": ("Acme is the data controller. The retention period is 2 years.", "pass", "pass"),
    "b.md": ("Acme is the data controller. Nothing about keeping.", "pass", "fail"),
    "c.md": ("We are Acme. The retention period is 2 years.", "fail", "pass"),
    # labelled pass, but the phrase is missing: a false alarm for EVT-1
    "d.md": (
        "Acme is the controller of your data. The retention period is 1 year.",
        "pass",
        "pass",
    ),
    # EVT-1 fails and is labelled fail; EVT-2 wording absent and labelled fail
    "e.md": ("Hello. We keep things.", "fail", "fail"),
}


def _corpus(tmp_path: Path, docs: dict = DOCS, module: str = "evaltest") -> Path:
    root = tmp_path / "corpus"
    labels: dict = {"module": module, "documents": {}}
    for name, (text, l1, l2) in docs.items():
        write(root / name, text)
        labels["documents"][name] = {
            "doc_type": "privacy_notice",
            "expected": {"EVT-1": l1, "EVT-2": l2},
        }
    write(root / "labels.json", json.dumps(labels))
    return root


def _engine(tmp_path: Path, provider) -> Engine:
    gates = write(tmp_path / "gates" / "evaltest" / "module.gates", GATES)
    return Engine(
        gate_paths=[gates.parent], include_builtin=False, provider=provider, cache=None, audit=None
    )


def test_metrics_by_hand_with_indeterminate_apart(tmp_path):
    from engine.providers.base import NullProvider

    res = evaluate_corpus(_corpus(tmp_path), _engine(tmp_path, NullProvider()))
    g1 = res.scores["EVT-1"]
    # EVT-1 fails on c, d, e; labelled fail on c, e -> TP 2, FP 1 (d), FN 0, TN 2 (a, b)
    assert (g1.tp, g1.fp, g1.fn, g1.tn, g1.indeterminate) == (2, 1, 0, 2, 0)
    assert g1.precision == pytest.approx(2 / 3)
    assert g1.recall == 1.0
    assert g1.f1 == pytest.approx(4 / 5)  # 2TP / (2TP + FP + FN)
    g2 = res.scores["EVT-2"]
    # no provider: b and e (no phrase) are undecided, never counted as pass or fail
    assert (g2.tp, g2.fp, g2.fn, g2.tn) == (0, 0, 0, 3)
    assert (g2.indeterminate_expected_fail, g2.indeterminate_expected_ok) == (2, 0)
    assert g2.precision is None and g2.recall is None and g2.f1 is None
    micro = res.micro
    assert (micro.tp, micro.fp, micro.fn, micro.tn, micro.indeterminate) == (2, 1, 0, 5, 2)
    # shown beside, never instead: if both undecided outcomes were failures, 4 of 5 failures
    # would be right and all 4 expected ones found
    assert micro.fail_closed() == (pytest.approx(4 / 5), 1.0)
    assert res.macro()["precision"] == pytest.approx(0.6667, abs=1e-4)  # EVT-2 undefined
    assert {(m.document, m.gate) for m in res.mismatches} == {
        ("d.md", "EVT-1"),
        ("b.md", "EVT-2"),
        ("e.md", "EVT-2"),
    }


def test_semantic_answers_decide_the_undecided(tmp_path):
    q = "Does the notice say how long data is kept?"
    provider = ScriptedProvider(table={q: "no"})
    res = evaluate_corpus(_corpus(tmp_path), _engine(tmp_path, provider))
    g2 = res.scores["EVT-2"]
    assert (g2.tp, g2.fp, g2.fn, g2.tn, g2.indeterminate) == (2, 0, 0, 3, 0)
    assert g2.f1 == 1.0


def test_requirement_score_arithmetic():
    s = RequirementScore("R", ["G"], tp=8, fp=2, fn=2, tn=8)
    assert s.recall == 0.8 and s.specificity == 0.8 and s.precision == 0.8
    assert s.balanced_accuracy == pytest.approx(0.8)
    one_sided = RequirementScore("R", ["G"], tp=3, fn=1)
    assert one_sided.specificity is None
    assert one_sided.balanced_accuracy == 0.75
    assert GateScore("G", tp=0, fp=0, fn=3).f1 == 0.0


def test_cli_json_and_table(tmp_path, run_cli):
    root = _corpus(tmp_path)
    gates = write(tmp_path / "gates" / "evaltest" / "module.gates", GATES)
    code, out, err = run_cli(
        "eval", root, "--gates", gates.parent, "--deterministic-only", "--format", "json"
    )
    assert code == 0, err
    data = json.loads(out)
    (corpus,) = data["corpora"]
    assert corpus["module"] == "evaltest" and corpus["provider"] == "none"
    rows = {g["gate"]: g for g in corpus["gates"]}
    assert rows["EVT-1"]["tp"] == 2 and rows["EVT-1"]["fp"] == 1
    assert rows["EVT-2"]["indeterminate"] == 2 and rows["EVT-2"]["precision"] is None
    assert corpus["micro"]["indeterminate"] == 2
    code, out, _ = run_cli("eval", root, "--gates", gates.parent, "--deterministic-only")
    assert code == 0
    assert "EVT-1" in out and "indeterminate" in out and "positive class: gate fails" in out


def test_usage_errors_exit_2(tmp_path, run_cli):
    code, _, err = run_cli("eval")
    assert code == 2 and "labelled corpus" in err
    code, _, err = run_cli("eval", tmp_path / "nope")
    assert code == 2 and "no such corpus folder" in err
    bad = write(
        tmp_path / "bad" / "labels.json",
        json.dumps(
            {"module": "gdpr", "documents": {"x.md": {"expected": {"GDPR-13-1A": "maybe"}}}}
        ),
    )
    write(bad.parent / "x.md", "text")
    code, _, err = run_cli("eval", bad.parent)
    assert code == 2 and "'maybe'" in err
    code, _, err = run_cli("eval", "--t200", tmp_path / "missing.toml")
    assert code == 2


def test_missing_t200_corpus_exits_2(tmp_path, run_cli):
    toml = write(
        tmp_path / "t.toml",
        'corpus = "../no-such-corpus-here"\n[requirements]\n"DPO Contact" = ["GDPR-13-1B"]\n',
    )
    code, _, err = run_cli("eval", "--t200", toml, "--deterministic-only")
    assert code == 2
    assert "GDPR-T-200 corpus not found" in err


def test_t200_config_maps_all_21_requirements_to_real_gates():
    config = load_t200_config(REPO_ROOT / "data" / "eval" / "gdpr-t200.toml")
    assert len(config.requirements) == 21
    codes = {g.code for g in Engine(cache=None, audit=None).ruleset(["gdpr"]).gates}
    assert {c for cs in config.requirements.values() for c in cs} <= codes


_T200 = load_t200_config(REPO_ROOT / "data" / "eval" / "gdpr-t200.toml")


@pytest.mark.skipif(
    not _T200.corpus.is_dir(), reason=f"GDPR-T-200 corpus not present at {_T200.corpus}"
)
def test_t200_subset_deterministic(run_cli):
    code, out, err = run_cli(
        "eval", "--t200", _T200.path, "--deterministic-only", "--limit", "5", "--format", "json"
    )
    assert code == 0, err
    res = json.loads(out)["t200"]
    assert res["documents"] == 5 and res["deterministic_only"] is True
    assert res["indeterminate_counts_as"] == "not disclosed"
    assert len(res["requirements"]) == 21
    for row in res["requirements"]:
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == 5
    assert 0.0 <= res["macro"]["balanced_accuracy"] <= 1.0
    assert any("provider 'none'" in n for n in res["notes"])


def test_entities_reuses_the_span_evaluation(tmp_path, run_cli):
    text = "Write to jane.roe@example.com today."
    start = text.index("jane")
    line = json.dumps(
        {
            "text": text,
            "entities": [
                {
                    "type": "EMAIL_ADDRESS",
                    "start": start,
                    "end": start + len("jane.roe@example.com"),
                }
            ],
        }
    )
    labelled = write(tmp_path / "spans.jsonl", line + "\n")
    code, out, err = run_cli("eval", "--entities", labelled, "--format", "json")
    assert code == 0, err
    ent = json.loads(out)["entities"]
    assert ent["documents"] == 1
    email = next(t for t in ent["types"] if t["type"] == "EMAIL_ADDRESS")
    assert email["tp"] == 1 and email["missed"] == 0
