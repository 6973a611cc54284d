"""The labelled GDPR corpus through the real engine: labels are complete and name real gates, and
each gate keeps the precision/recall it reaches today (floors, so a regression fails)."""

from __future__ import annotations

import json

import pytest

from engine.api import Engine
from engine.evaluation.gates import REPO_ROOT, CorpusEvaluation, evaluate_corpus, load_corpus
from engine.providers.base import NullProvider

CORPUS = REPO_ROOT / "data" / "corpus" / "gdpr"
_ENGINE = Engine(cache=None, audit=None)
GATES = {g.code for g in _ENGINE.ruleset(["gdpr"]).gates}

# Floors measured with the offline provider (see README, "Measured accuracy"); precision and
# recall per gate, positive class "the gate fails". A gate that never fails on the corpus and is
# never expected to has no precision/recall and is checked through the micro figures.
FLOORS: dict[str, tuple[float, float]] = {
    # With the calibrated (GDPR-T-200) thresholds the offline model is lenient on short notices:
    # a boilerplate page "complies with the GDPR" (legal basis, transfers), a US-style notice
    # (statutory requirement, objection), "crash reports and usage statistics" (source).
    # The same misses over fewer positives since the gates carry the law's conditions: a
    # notice that never mentions a transfer, direct marketing or legitimate interests, or data
    # from other sources, is not applicable to GDPR-13-1F, -13-2B-OBJECT and -14-2F (labels
    # changed accordingly, see data/corpus/gdpr and docs/gate-conditions.md).
    "GDPR-13-1C-BASIS": (1.0, 0.8),
    "GDPR-13-2B-OBJECT": (1.0, 0.83),
    # with the provider's unsure band one more 13-2E answer is "unclear" (review), leaving
    # 6 of 7 decided positives
    "GDPR-13-2E": (1.0, 0.85),
}
MICRO_FLOOR = (0.95, 0.95)
#: deterministic checks alone: precision of what they decide, and how much they leave undecided.
DETERMINISTIC_PRECISION_FLOOR = 0.95


def test_labels_cover_every_file_and_every_gate():
    corpus = load_corpus(CORPUS)
    assert corpus.module == "gdpr"
    assert len(corpus.documents) >= 25
    assert corpus.unlabelled == [], f"files without labels: {corpus.unlabelled}"
    for doc in corpus.documents:
        assert set(doc.expected) == GATES, (
            f"{doc.name}: missing {sorted(GATES - set(doc.expected))}, "
            f"unknown {sorted(set(doc.expected) - GATES)}"
        )


def test_labels_file_is_the_documented_shape():
    data = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
    assert set(data) == {"module", "documents"}
    for entry in data["documents"].values():
        assert set(entry) == {"doc_type", "expected"}
        assert set(entry["expected"].values()) <= {"pass", "fail", "not_applicable"}


@pytest.fixture(scope="module")
def offline() -> CorpusEvaluation:
    return evaluate_corpus(CORPUS, _ENGINE)


@pytest.fixture(scope="module")
def deterministic() -> CorpusEvaluation:
    engine = Engine(cache=None, audit=None, provider=NullProvider("disabled for the test"))
    return evaluate_corpus(CORPUS, engine)


def test_offline_micro_floor(offline):
    if offline.provider != "offline":
        pytest.skip(f"offline model not available (provider {offline.provider})")
    micro = offline.micro
    # a score inside the provider's unsure band is an honest "unclear": the gate goes to review
    # (never a pass). Allow a handful of those, no more than 1% of all outcomes.
    outcomes = micro.tp + micro.fp + micro.fn + micro.tn + micro.indeterminate
    assert micro.indeterminate <= outcomes // 100, offline.mismatches
    assert micro.precision >= MICRO_FLOOR[0], offline.mismatches
    assert micro.recall >= MICRO_FLOOR[1], offline.mismatches


@pytest.mark.parametrize("gate", sorted(GATES))
def test_gate_floor(offline, gate):
    if offline.provider != "offline":
        pytest.skip(f"offline model not available (provider {offline.provider})")
    p_floor, r_floor = FLOORS.get(gate, (1.0, 1.0))
    s = offline.scores[gate]
    wrong = [m for m in offline.mismatches if m.gate == gate]
    if s.precision is not None:
        assert s.precision >= p_floor, wrong
    if s.recall is not None:
        assert s.recall >= r_floor, wrong


def test_deterministic_checks_are_precise_and_never_guess(deterministic):
    micro = deterministic.micro
    # what the cheap checks decide on their own is right; the rest is left undecided (never
    # passed silently), for the semantic provider or a reviewer
    assert micro.precision >= DETERMINISTIC_PRECISION_FLOOR, deterministic.mismatches
    assert micro.indeterminate_expected_ok <= micro.indeterminate_expected_fail
