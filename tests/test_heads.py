"""Trained heads: fitting, calibration inside CV, stale detection, and the offline provider's use of them."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from engine.api import Engine
from engine.document import Document
from engine.providers import heads as H
from engine.providers import offline
from engine.providers.offline import Band, OfflineProvider
from gates.base import Question

needs_model = pytest.mark.skipif(
    offline.load_embedder()[0] is None, reason="offline model packages are not installed"
)

NOTICE = """# Privacy notice

Acme Ltd is the data controller. Contact us at privacy@acme.example.

## Retention

We keep your personal data for two years after you close your account, then delete it.
"""


def synthetic(n_docs: int = 40, seed: int = 3) -> tuple[list[H.DocVectors], list[bool], np.ndarray]:
    """Documents of random unit vectors; a disclosing one also holds a passage near ``signal``."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=384).astype(np.float32)
    signal /= np.linalg.norm(signal)
    docs, labels = [], []
    for i in range(n_docs):
        v = rng.normal(size=(15, 384)).astype(np.float32)
        y = i % 2 == 0
        if y:
            v[4] = signal + 0.6 * v[4] / np.linalg.norm(v[4])
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        docs.append(H.DocVectors(f"doc{i:02}", v, [(k, k + 1) for k in range(15)]))
        labels.append(y)
    return docs, labels, signal


def test_training_is_reproducible_and_separates_held_out_documents():
    H.single_thread_blas()
    docs, labels, signal = synthetic()

    def seeds(v):
        return v @ signal

    train, test = docs[:30], docs[30:]
    a = H.fit_calibrated(train, labels[:30], seeds, signal[None, :], seed=0)
    b = H.fit_calibrated(train, labels[:30], seeds, signal[None, :], seed=0)
    assert np.array_equal(a.weights, b.weights) and a.platt == b.platt
    p = H.probabilities(a, test)
    y = np.array(labels[30:])
    assert (p[y] >= a.threshold).all() and (p[~y] < a.threshold).all()
    assert 0.0 < a.threshold < 1.0


def test_folds_split_by_document_and_are_fixed_by_the_seed():
    names = [f"d{i}" for i in range(23)]
    folds = H.folds_by_document(names)
    assert folds == H.folds_by_document(list(reversed(names)))
    assert sorted(set(folds.values())) == [0, 1, 2, 3, 4]
    assert (
        max(list(folds.values()).count(f) for f in range(5))
        - min(list(folds.values()).count(f) for f in range(5))
        <= 1
    )


def test_platt_scaling_is_monotone_and_calibrates():
    scores = np.linspace(-3, 3, 200)
    y = scores + np.random.default_rng(0).normal(scale=1.0, size=200) > 0
    a, c = H.fit_platt(scores, y)
    assert a > 0
    p = 1 / (1 + np.exp(-(a * scores + c)))
    assert abs(p.mean() - y.mean()) < 0.05


def head_for(question: str, gate: str, weights: np.ndarray, bias: float = 0.0) -> H.Head:
    return H.Head(
        gate=gate,
        question=question,
        question_sha=H.question_hash(question),
        model=offline.MODEL_ID,
        weights=weights.astype(np.float32),
        bias=bias,
        platt_a=1.0,
        platt_b=0.0,
        decided_above=0.6,
        decided_below=0.4,
        meta={"seed": 0},
    )


def test_head_files_round_trip(tmp_path):
    w = np.random.default_rng(1).normal(size=384).astype(np.float32)
    h = head_for("Does it?", "X-1", w, 0.25)
    H.write_head(h, tmp_path)
    (back,) = H.read_head_files(tmp_path)[0]
    v = np.random.default_rng(2).normal(size=(3, 384)).astype(np.float32)
    assert np.allclose(back.passage_probabilities(v), h.passage_probabilities(v), atol=1e-4)
    assert back.meta == {"seed": 0}
    (tmp_path / "broken.json").write_text("{")
    assert len(H.read_head_files(tmp_path)[1]) == 1


def retention_gate_question() -> str:
    gate = Engine(cache=None, audit=None).gate("GDPR-13-2A")
    return next(iter(gate.semantic_nodes())).check.question.text


def test_a_head_whose_question_changed_is_stale_and_lint_says_so(tmp_path, monkeypatch, run_cli):
    head = head_for(
        "Does the notice say how long data is kept (old wording)?", "GDPR-13-2A", np.zeros(384)
    )
    H.write_head(head, tmp_path)
    gates = Engine(cache=None, audit=None).ruleset(["gdpr"]).gates
    (warning,) = H.stale_heads(gates, tmp_path)
    assert warning.startswith("GDPR-13-2A: trained head is stale")
    # the current question finds no head under its text: it falls back to similarity
    assert H.question_hash(retention_gate_question()) not in H.load_heads(tmp_path)
    monkeypatch.setattr(H, "HEADS_DIR", tmp_path)
    code, out, err = run_cli("lint", "--no-examples")
    assert "warning[HEAD001]: GDPR-13-2A: trained head is stale" in err
    assert "clearance train" in err and code == 0


@needs_model
def test_a_question_with_a_head_is_answered_by_it_one_without_by_similarity():
    embedder, _ = offline.load_embedder()
    direction = embedder.embed(["Retention: we keep your personal data for two years."])[0]
    asked = Question(
        "Does the notice say how long personal data is kept?",
        like=("We retain your personal data for a defined period of time.",),
    )
    other = Question(
        "Does the notice describe automated decision-making?",
        like=("We use automated decision-making with legal effects on you.",),
    )
    # a head that is sure of passages along ``direction``: 12 * cosine - 6
    head = head_for(asked.text, "TEST-1", direction * 12, -6.0)
    provider = OfflineProvider(
        heads={head.question_sha: head}, band=Band(0.02, 0.02), embedding_cache=None
    )
    doc = Document(NOTICE, media_type="text/markdown")
    result = asyncio.run(provider.answer(doc, [asked, other])).answers
    yes, sim = result[asked.id], result[other.id]
    assert (
        yes.verdict == "yes"
        and yes.rationale.startswith("yes (score ")
        and "by head TEST-1" in yes.rationale
    )
    assert (yes.decided_above, yes.decided_below) == (0.6, 0.4)
    assert yes.evidence[0].quote.startswith("We keep your personal data")
    assert 0.6 <= yes.score <= 1.0 and yes.confidence == round(yes.score, 3)
    assert "line 7" in yes.rationale
    assert "similarity" in sim.rationale and sim.decided_above is not None
    # a different set of heads is a different provider identity (no stale cached answers)
    assert provider.identity() != OfflineProvider(heads={}, embedding_cache=None).identity()


def test_shipped_heads_are_current_and_documented():
    heads, problems = H.read_head_files()
    if not heads:
        pytest.skip("no trained heads shipped in data/heads")
    assert problems == []
    gates = Engine(cache=None, audit=None).ruleset(None).gates
    assert H.stale_heads(gates) == []
    for h in heads:
        assert h.model == offline.MODEL_ID
        for key in ("training_set_sha256", "seed", "cv", "requirements", "hyperparameters"):
            assert key in h.meta, (h.gate, key)
        assert 0.0 <= h.decided_below < h.decided_above <= 1.0
        assert h.meta["cv"]["at_threshold"]["balanced_accuracy"] is not None


def test_train_without_the_corpus_says_so_and_exits_2(tmp_path, run_cli):
    toml = tmp_path / "t200.toml"
    toml.write_text(
        'corpus = "%s"\nmodule = "gdpr"\n[requirements]\n'
        '"Data Retention Period" = ["GDPR-13-2A"]\n' % (tmp_path / "absent")
    )
    code, out, err = run_cli("train", "--eval", str(toml))
    assert code == 2
    assert "training corpus is not at" in err and "../shared/corpus/gdpr-t200" in err
    code, _, err = run_cli("train", "--eval", str(toml), "--module", "hipaa")
    assert code == 2 and "no training data for module 'hipaa'" in err


def test_heads_json_carries_no_document_text():
    for path in H.HEADS_DIR.glob("*.json"):
        d = json.loads(path.read_text())
        assert set(d) >= {"weights", "question_sha", "training_set_sha256"}
        assert not any(k in d for k in ("passages", "text", "examples"))


def test_eval_cross_validation_flags_are_checked(run_cli):
    code, _, err = run_cli("eval", "data/samples", "--cv")
    assert code == 2 and "--cv evaluates GDPR-T-200 only" in err
    code, _, err = run_cli(
        "eval", "--t200", "data/eval/gdpr-t200.toml", "--cv", "--deterministic-only"
    )
    assert code == 2 and "offline provider" in err
