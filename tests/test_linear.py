"""Cost grows linearly with input: 8x the input may cost at most 20x the time (never 64x)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from benchmarks.bench_speed import make_text
from engine.api import Engine, _scanner
from engine.evaluate import DocContext, Hit, _near, evaluate_gate
from engine.ingest import document_from_text
from engine.providers.base import NullProvider

#: 8x the input; linear work gives ~8x, quadratic ~64x. Generous so a busy machine cannot flake.
BOUND = 20.0


def _best(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6)


def _ratio(make: Callable[[int], Callable[[], object]], n: int) -> float:
    small, big = make(n), make(8 * n)
    small()  # warm caches (compiled sets, Unicode tables) outside the timing
    return _best(big) / _best(small)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(cache=None, audit=None, provider=NullProvider())


def _deterministic(engine: Engine, text: str) -> Callable[[], object]:
    rs = engine.ruleset()
    scanner = _scanner(rs)
    doc = document_from_text(text)

    def run() -> object:
        ctx = DocContext(doc)  # a new context: encoding and detectors paid, as for a new document
        ctx.prefilter(scanner)
        return [evaluate_gate(g, ctx) for g in rs.gates]

    return run


def test_deterministic_layer_is_linear(engine: Engine) -> None:
    assert _ratio(lambda n: _deterministic(engine, make_text(n)[0]), 24_000) < BOUND


def test_one_long_line_is_linear(engine: Engine) -> None:
    """No newlines at all: line/column mapping, sections and windowed regexes stay linear."""

    def make(n: int) -> Callable[[], object]:
        return _deterministic(engine, make_text(n)[0].replace("\n", " "))

    assert _ratio(make, 24_000) < BOUND


def test_many_headings_that_all_match_are_linear(engine: Engine) -> None:
    def make(n: int) -> Callable[[], object]:
        text = "".join(f"## Data section {i}\nWe keep data for 6 years.\n\n" for i in range(n))
        doc = document_from_text(text, name="x.md")

        def run() -> object:
            ctx = DocContext(doc)
            for heads in [("data",), ("section",), ("data", "section")]:
                ctx._sections.pop(heads, None)
                ctx.section_scope(heads)
            return ctx

        return run

    assert _ratio(make, 400) < BOUND


def test_near_with_long_and_dense_spans_is_linear() -> None:
    def make(n: int) -> Callable[[], object]:
        # one huge span (a key block) and dense short spans on both sides
        a = [Hit(i * 10, i * 10 + 4, "a", "phrase") for i in range(n)]
        b = [Hit(0, n * 10, "b", "secret")] + [
            Hit(i * 10 + 5, i * 10 + 8, "c", "regex") for i in range(n)
        ]
        return lambda: _near(a, b, 400)

    assert _ratio(make, 2_000) < BOUND


def test_many_candidates_that_fail_are_linear(engine: Engine) -> None:
    """Phrase candidates RE2 finds but Python's word boundaries reject ("xcontrollers")."""

    def make(n: int) -> Callable[[], object]:
        return _deterministic(engine, "xcontrollers é415-555-0134 " * n)

    assert _ratio(make, 600) < BOUND


def test_non_ascii_offsets_are_linear(engine: Engine) -> None:
    """Byte -> character offset mapping for many matches in a non-ASCII text."""

    def make(n: int) -> Callable[[], object]:
        return _deterministic(engine, "Zoë Müller 电话 415-555-0134, keep data 6 years. " * n)

    assert _ratio(make, 400) < BOUND


def test_validate_end_to_end_is_linear(engine: Engine) -> None:
    def make(n: int) -> Callable[[], object]:
        text = make_text(n)[0]
        return lambda: engine.validate(document_from_text(text), doc_type="privacy_notice")

    assert _ratio(make, 16_000) < BOUND


def test_deterministic_validation_uses_no_event_loop_or_thread(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gates without a pending semantic question never pay for asyncio or a thread; documents
    are parallelised with processes (engine.batch), not here."""
    import asyncio
    import threading

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("deterministic validation must not start a loop or a thread")

    monkeypatch.setattr(asyncio, "run", forbidden)
    monkeypatch.setattr(asyncio, "new_event_loop", forbidden)
    monkeypatch.setattr(threading.Thread, "start", forbidden)
    report = engine.validate(
        document_from_text("Deploy with AKIAIOSFODNN7EXAMPLE in the config."), modules=["secrets"]
    )
    assert report.verdict == "fail"
    assert report.llm.calls == 0


def test_no_provider_answers_pending_questions_without_an_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no semantic provider (`--provider none`), pending questions are answered `unclear`
    on the spot: the report is the one the asynchronous path gives, without its ~1 ms loop."""
    import asyncio

    from engine.providers.base import NullProvider

    class AsyncOnly(NullProvider):
        def answer_now(self, doc, questions):  # type: ignore[no-untyped-def]
            return None

    text = make_text(8_000)[0]
    want = Engine(cache=None, audit=None, provider=AsyncOnly()).validate(
        document_from_text(text), doc_type="privacy_notice"
    )
    assert any(g.status.value == "indeterminate" for g in want.gates)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no event loop is needed to answer nothing")

    monkeypatch.setattr(asyncio, "run", forbidden)
    got = Engine(cache=None, audit=None, provider=NullProvider()).validate(
        document_from_text(text), doc_type="privacy_notice"
    )

    def shape(report):  # type: ignore[no-untyped-def]
        return (
            [(g.gate, g.status, g.spans, g.semantic) for g in report.gates],
            report.verdict,
            report.llm.model_dump(),
        )

    assert shape(got) == shape(want)
