"""Every inline example of every built-in gate is its own test: `GDPR-13-1A::example[2]`."""

from __future__ import annotations

import pytest

from engine.api import Engine

_ENGINE = Engine(cache=None, audit=None)
_CASES = [(g, ex) for m in _ENGINE.list_modules() for g in m.gates for ex in g.examples]


@pytest.mark.parametrize(
    "gate, example", _CASES, ids=[f"{g.code}::example[{ex.index}]" for g, ex in _CASES]
)
def test_gate_example(gate, example):
    result = _ENGINE.check_example(gate, example)
    assert result.ok, (
        f"{example.file}:{example.loc.line}: expected {example.expect}, {result.problem}"
    )


def test_every_gate_is_proven_and_cited():
    gates = [g for m in _ENGINE.list_modules() for g in m.gates]
    assert len(gates) >= 10
    for g in gates:
        kinds = {ex.expect for ex in g.examples}
        assert kinds == {"pass", "fail"}, g.code
        assert g.cite and all(c.strip() for c in g.cite), g.code
        assert g.fix, f"{g.code} has no fix"
