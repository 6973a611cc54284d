"""Demand-driven evaluation (a `require` stops at the first match, `all`/`any` short-cut) gives
exactly what evaluating every node in full gives, gate by gate, semantic answers included."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_scan_equivalence import DOCS

from engine.api import Engine, _scanner
from engine.evaluate import DocContext, evaluate_gate
from engine.ingest import document_from_text
from engine.providers.base import Answer
from gates.regex import RegexCheck

ROOT = Path(__file__).resolve().parents[1]
CORPUS = sorted(
    p
    for d in ("gdpr", "hipaa")
    for p in (ROOT / "data" / "corpus" / d).iterdir()
    if p.suffix in (".md", ".txt")
)
RULESET = Engine(cache=None, audit=None, provider=None).ruleset()


def _outcomes(text: str, eager: bool, answers: dict[str, Answer]) -> list[tuple]:
    ctx = DocContext(document_from_text(text), eager=eager)
    ctx.prefilter(_scanner(RULESET))
    ctx.answers.update(answers)
    out = []
    for g in RULESET.gates:
        o = evaluate_gate(g, ctx)
        out.append((g.code, o.v, o.applicable, o.pending, o.hits))
    return out


def _answers(seed: int) -> dict[str, Answer]:
    """Some questions answered yes, some no, some unclear, the rest pending."""
    rng = random.Random(seed)
    got = {}
    for g in RULESET.gates:
        for n in g.semantic_nodes():
            pick = rng.random()
            if pick < 0.6:
                got[n.check.question.id] = Answer(
                    ("yes", "no", "unclear")[int(pick * 5) % 3], 0.9, "scripted"
                )
    return got


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_documents_evaluate_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for answers in ({}, _answers(len(text))):
        assert _outcomes(text, False, answers) == _outcomes(text, True, answers)


def test_generated_documents_evaluate_the_same() -> None:
    for i, text in enumerate(DOCS):
        answers = _answers(i)
        assert _outcomes(text, False, answers) == _outcomes(text, True, answers), f"doc {i}"


def _gates(tmp_path: Path, body: str):
    (tmp_path / "m").mkdir(exist_ok=True)
    (tmp_path / "m" / "m.gates").write_text(
        'module m { title "M" version "1" }\n' + body, encoding="utf-8"
    )
    return Engine(
        cache=None, audit=None, provider=None, gate_paths=[tmp_path / "m"], include_builtin=False
    ).ruleset()


def test_a_require_stops_at_its_first_match_and_a_forbid_lists_every_one(tmp_path) -> None:
    text = "term. " * 2000
    rs = _gates(
        tmp_path,
        """
gate M-1 needs_term { title "t" cite "x" require regex /term/ example pass "term" example fail "x" }
""",
    )
    (gate,) = rs.gates
    ctx = DocContext(document_from_text(text))
    assert evaluate_gate(gate, ctx).v is True
    check = next(c for c in rs.checks if isinstance(c, RegexCheck))
    assert check.key not in ctx._matches  # stopped early: the 2,000 matches were never built

    rs = _gates(
        tmp_path,
        """
gate M-1 no_term { title "t" cite "x" forbid regex /term/ example pass "x" example fail "term" }
""",
    )
    out = evaluate_gate(rs.gates[0], DocContext(document_from_text(text)))
    assert out.v is False and len(out.hits) == 2000


def test_a_scoped_require_looks_past_matches_outside_its_section(tmp_path) -> None:
    text = "term " * 50 + "\n\n# Retention\n\nnothing here\n\n# Contact\n\nterm\n"
    rs = _gates(
        tmp_path,
        """
gate M-1 retention { title "t" cite "x" require in section("Retention") regex /term/
  example pass "# Retention\\nterm" example fail "term" }
gate M-2 contact { title "t" cite "x" require in section("Contact") regex /term/
  example pass "# Contact\\nterm" example fail "term" }
""",
    )
    ctx = DocContext(document_from_text(text))
    assert [evaluate_gate(g, ctx).v for g in rs.gates] == [False, True]
