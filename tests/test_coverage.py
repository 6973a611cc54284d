"""`clearance test --coverage`: branch coverage of gates by their inline examples, on a small
module whose coverage is worked out by hand below."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import write
from engine.api import Engine
from engine.coverage import CoverageReport, coverage

RunCli = Callable[..., tuple[int, str, str]]

# Worked out by hand:
# COV-1 (require): any{...} true (ex 1) and false (ex 2); the define `greek` has two phrases:
#   "alpha" found (ex 1), "beta" never, and false (ex 2); regex /gamma\d/ never true, false
#   (ex 1, 2): 5 of 7 branches.
# COV-2: when phrase("contract") true (ex 1), false (ex 2); ex 2 does not apply, so it exercises
#   nothing of the forbid: near true (ex 1) but never false, each side likewise: 5 of 8.
# Module: 10 of 15 = 66.7%.
MODULE = """\
module covtest { title "Coverage test" version "1" }

define greek = phrase("alpha",
                      "beta")

gate COV-1 covered_and_not {
  title "Alpha, beta or gamma"
  cite  "Test Art. 1"
  require any {
    greek
    regex /gamma\\d/
  }
  fix "Say alpha."
  example pass "alpha here"
  example fail "nothing"
}

gate COV-2 near_sides {
  title "No secret number in a contract"
  cite  "Test Art. 2"
  when phrase("contract")
  forbid near(phrase("secret"), regex /\\d{4}/, within 20 chars)
  fix "Remove it."
  example fail "contract: secret 1234"
  example pass "secret, nothing else"
}
"""


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    write(tmp_path / "covtest" / "module.gates", MODULE)
    return tmp_path / "covtest"


def _report(module_dir: Path) -> CoverageReport:
    engine = Engine(gate_paths=[module_dir], include_builtin=False, cache=None, audit=None)
    return coverage(engine.ruleset(["covtest"]).modules)


def test_branches_counted_as_worked_out(module_dir: Path) -> None:
    rep = _report(module_dir)
    (mod,) = rep.modules
    g1, g2 = mod.gates
    assert (g1.hit, g1.total) == (5, 7)
    assert (g2.hit, g2.total) == (5, 8)
    assert (mod.hit, mod.total) == (10, 15)
    assert round(rep.percent, 1) == 66.7
    assert rep.semantic == "none in these gates"


def test_uncovered_branches_named_by_file_line_and_text(module_dir: Path) -> None:
    rep = _report(module_dir)
    g1, g2 = rep.modules[0].gates
    got1 = {(b.line, b.col, b.outcome, b.text) for b in g1.uncovered()}
    # "beta" is written in the define, on line 4; the regex in the gate, on line 11
    assert got1 == {(4, 23, "phrase", '"beta"'), (11, 5, "true", "regex /gamma\\d/")}
    assert all(b.file.endswith("module.gates") and b.clause == "require" for b in g1.uncovered())
    got2 = {(b.line, b.outcome, b.text) for b in g2.uncovered()}
    assert got2 == {
        (22, "false", 'near(phrase("secret"), regex /\\d{4}/, within 20 chars)'),
        (22, "false", 'phrase("secret")'),
        (22, "false", "regex /\\d{4}/"),
    }
    assert {b.clause for b in g2.uncovered()} == {"forbid"}


def test_threshold_sets_the_exit_code(run_cli: RunCli, module_dir: Path) -> None:
    code, out, _ = run_cli("test", module_dir, "--coverage", "--threshold", "60")
    assert code == 0, out
    assert "4 passed, 0 failed" in out
    assert "covtest" in out and "66.7% (10/15)" in out
    assert "COV-1" in out and "71.4% (5/7)" in out
    assert 'module.gates:4:23: require: 1 of 2 phrases never found: "beta"' in out
    assert "module.gates:11:5: require: never true: regex /gamma\\d/" in out
    assert "meets the threshold of 60%" in out

    code, out, _ = run_cli("test", module_dir, "--coverage", "--threshold", "70")
    assert code == 1
    assert "coverage 66.7% below the threshold of 70%" in out


def test_json_output(run_cli: RunCli, module_dir: Path) -> None:
    code, out, _ = run_cli("test", module_dir, "--coverage", "--threshold", "70", "-f", "json")
    assert code == 1
    doc = json.loads(out)
    assert (doc["passed"], doc["failed"]) == (4, 0)
    cov = doc["coverage"]
    assert (cov["covered"], cov["branches"], cov["percent"]) == (10, 15, 66.7)
    assert cov["below_threshold"] is True and cov["threshold"] == 70
    (mod,) = cov["modules"]
    assert [(g["code"], g["covered"], g["branches"]) for g in mod["gates"]] == [
        ("COV-1", 5, 7),
        ("COV-2", 5, 8),
    ]
    beta = mod["gates"][0]["uncovered"][0]
    assert beta["line"] == 4 and beta["text"] == '"beta"' and beta["outcome"] == "phrase"


def test_full_coverage_and_usage_errors(run_cli: RunCli, tmp_path: Path) -> None:
    full = MODULE.replace(
        'example fail "nothing"', 'example fail "nothing"\n  example pass "gamma1 beta"'
    )
    full = full.replace(
        'example pass "secret, nothing else"',
        'example pass "contract, secret"\n  example pass "contract 1234"\n  example pass "no c-word"',
    )
    write(tmp_path / "covtest" / "module.gates", full)
    code, out, _ = run_cli("test", tmp_path / "covtest", "--coverage", "--threshold", "100")
    assert code == 0, out
    assert "total: 100.0% (15/15)" in out
    code, _, err = run_cli("test", tmp_path / "covtest", "--threshold", "50")
    assert code == 2 and "--threshold needs --coverage" in err


def test_semantic_leaves_unmeasured_without_the_model(tmp_path: Path) -> None:
    text = MODULE.replace(
        "regex /gamma\\d/",
        'semantic "Does it mention gamma?" like ["gamma is mentioned"]',
    )
    write(tmp_path / "covtest" / "module.gates", text)
    engine = Engine(
        gate_paths=[tmp_path / "covtest"], include_builtin=False, cache=None, audit=None
    )
    rep = coverage(engine.ruleset(["covtest"]).modules, semantic=False)
    g1 = rep.modules[0].gates[0]
    # the semantic leaf's two branches are left out; without its answer, any{...} is unknown
    # on the fail example, so its false branch is not covered either
    assert g1.unmeasured == 2 and (g1.hit, g1.total) == (3, 5)
    assert rep.semantic == "not measured"
    assert "2 semantic branches not measured" in rep.render()


def test_phrases_spliced_from_a_word_list_are_named_by_the_phrase(tmp_path: Path) -> None:
    """A word list spliced into phrase(...) gives one branch per phrase; where the call's
    arguments are not the phrases one for one, each branch is named by its phrase."""
    write(
        tmp_path / "covwords" / "module.gates",
        """\
module covwords { title "Word lists" version "1" }

define colours = ["red", "green"]

gate COV-3 colours {
  title "A colour"
  cite  "Test Art. 3"
  require phrase(colours, "blue")
  fix "Name a colour."
  example pass "red here"
  example fail "nothing"
}
""",
    )
    engine = Engine(
        gate_paths=[tmp_path / "covwords"], include_builtin=False, cache=None, audit=None
    )
    (mod,) = coverage(engine.ruleset(["covwords"]).modules).modules
    missed = {(b.outcome, b.text) for b in mod.gates[0].uncovered()}
    assert missed == {("phrase", '"green"'), ("phrase", '"blue"')}
