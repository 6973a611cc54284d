"""The detectors measured on the committed labelled set, and the scoring rules themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.evaluation.entities import (
    EntityEvaluation,
    evaluate_entities,
    format_table,
    score_document,
)
from gates.base import Match

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "data" / "pii-eval" / "entities.jsonl"

# Floors a little under what we measure (README lists the numbers), so a regression fails.
# PERSON is lower on purpose: names in running prose with no cue are labelled and missed.
FLOOR = 0.95
PERSON_RECALL_FLOOR = 0.93


@pytest.fixture(scope="module")
def result() -> EntityEvaluation:
    return evaluate_entities(LABELLED)


def test_labelled_set_is_big_and_varied(result: EntityEvaluation) -> None:
    docs = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    assert len(docs) >= 300
    assert len({d["kind"] for d in docs}) >= 15
    assert sum(not d["entities"] for d in docs) >= 30  # documents with nothing to find
    for d in docs:
        for e in d["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(d["text"])


def test_every_detector_type_is_labelled(result: EntityEvaluation) -> None:
    """Each detector is measured: on entities.jsonl by its type, or (the secret detectors added
    with the secrets corpus) by finding labelled secrets of data/secrets-eval."""
    from gates import pii, secrets
    from gates.redact import detect_all

    labelled = {t for t, s in result.scores.items() if s.support}
    lines = [
        line
        for split in ("dev", "test")
        for line in (ROOT / "data" / "secrets-eval" / f"secrets-{split}.jsonl")
        .read_text(encoding="utf-8")
        .splitlines()
    ]
    for line in lines:
        doc = json.loads(line)
        for m in detect_all(doc["text"], ("secret",)):
            if any(m.start < e["end"] and e["start"] < m.end for e in doc["entities"]):
                labelled.add(m.detail)
    assert (set(pii.DETECTORS) | set(secrets.DETECTORS)) - labelled == set()


def test_per_type_precision_and_recall(result: EntityEvaluation) -> None:
    low = {}
    for name, s in result.scores.items():
        recall_floor = PERSON_RECALL_FLOOR if name == "PERSON" else FLOOR
        if s.precision < FLOOR or s.recall < recall_floor:
            low[name] = (round(s.precision, 3), round(s.recall, 3))
    assert low == {}


def test_overall(result: EntityEvaluation) -> None:
    assert result.micro.precision >= 0.98 and result.micro.recall >= 0.98


def test_scoring_counts_overlaps_by_type() -> None:
    r = EntityEvaluation("x", 1)
    labels = [{"type": "US_SSN", "start": 0, "end": 11}, {"type": "PERSON", "start": 20, "end": 28}]
    predicted = [Match(2, 11, "US_SSN"), Match(20, 28, "DATE_TIME"), Match(40, 45, "US_SSN")]
    score_document(0, labels, predicted, r)
    ssn, person, date = r.scores["US_SSN"], r.scores["PERSON"], r.scores["DATE_TIME"]
    assert (ssn.tp, ssn.fp, ssn.found, ssn.missed) == (1, 1, 1, 0)
    assert (person.found, person.missed) == (0, 1)
    assert (date.tp, date.fp) == (0, 1)
    assert ssn.precision == 0.5 and ssn.recall == 1.0 and ssn.f1 == pytest.approx(2 / 3)


def test_table_and_bad_files(result: EntityEvaluation, tmp_path: Path) -> None:
    table = format_table(result)
    assert "US_SSN" in table and table.splitlines()[-1].startswith("ALL")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "abc", "entities": [{"type": "X", "start": 2, "end": 9}]}\n')
    with pytest.raises(UserError, match="bad.jsonl:1"):
        evaluate_entities(bad)
    with pytest.raises(UserError, match="no such labelled set"):
        evaluate_entities(tmp_path / "missing.jsonl")


def test_cli_eval(run_cli) -> None:
    code, out, _ = run_cli("pii", "--eval", LABELLED)
    assert code == 0 and "precision" in out and "US_SSN" in out
    code, out, _ = run_cli("pii", "--eval", LABELLED, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["overall"]["recall"] >= 0.98
    assert {t["type"] for t in data["types"]} >= {"EMAIL_ADDRESS", "AWS_ACCESS_KEY"}


def test_labelled_set_is_reproducible_from_its_generator(tmp_path):
    """The committed set is exactly what the seeded generator writes (no clock, no hash order)."""
    import os
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "generate.py"
    shutil.copy(root / "data" / "pii-eval" / "generate.py", script)
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "random"}
    subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = (root / "data" / "pii-eval" / "entities.jsonl").read_bytes()
    assert (tmp_path / "entities.jsonl").read_bytes() == committed


# The held-out sets (data/pii-eval/generate_detectors.py): names in no shipped list, sentence
# shapes and distractors the rules were not tuned on. The goals, as floors.
HELD_OUT_GOALS = [
    ("person-test.jsonl", ("PERSON",), 0.90, 0.0, 0.75),  # precision, recall, F1
    ("phones-test.jsonl", ("PHONE_NUMBER", "FAX_NUMBER"), 0.95, 0.90, 0.0),
    ("dates-test.jsonl", ("DATE_TIME",), 0.95, 0.90, 0.0),
]


@pytest.mark.parametrize(
    ("name", "types", "p", "r", "f1"), HELD_OUT_GOALS, ids=[g[0] for g in HELD_OUT_GOALS]
)
def test_held_out_goals(name: str, types: tuple[str, ...], p: float, r: float, f1: float) -> None:
    res = evaluate_entities(ROOT / "data" / "pii-eval" / name, ("pii",), types)
    total = res.micro
    assert total.support >= 300
    assert (total.precision, total.recall, total.f1) >= (p, r, f1) or (
        total.precision >= p and total.recall >= r and total.f1 >= f1
    ), res.as_dict()


def test_types_restrict_what_is_scored() -> None:
    res = evaluate_entities(LABELLED, ("pii",), ("US_SSN",))
    assert set(res.scores) == {"US_SSN"}


def test_secrets_corpus_recall_at_no_more_false_positives() -> None:
    """secret(...) on the held-out secrets corpus: recall measured 0.948 (0.675 before the
    vendor, generic-assignment and URL detectors) with the same 31 false positives (all SSH
    public keys, from HIGH_ENTROPY_STRING, which predates this corpus)."""
    res = evaluate_entities(
        ROOT / "data" / "secrets-eval" / "secrets-test.jsonl", ("secret",), ("SECRET",)
    )
    s = res.scores["SECRET"]
    assert s.support == 400 and s.recall >= 0.93 and s.fp <= 31
