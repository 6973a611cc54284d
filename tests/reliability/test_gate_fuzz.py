"""Every gate file ends in a diagnostic: property-based fuzzing of the gate compiler, through the
path `clearance lint` takes (Engine.lint over a Registry), never an uncaught exception.

Two sources of input, both deterministic (hypothesis derandomized, no example database):
gate files generated from the grammar (with deep nesting, huge numbers and pathological
patterns mixed in) and the built-in modules' own files mutated token by token. The budget is
FUZZ_EXAMPLES examples per property (default 60, under ~30 s on one core); `make fuzz` runs more.
Crashes found are kept in tests/fixtures/fuzz/ as regression fixtures, each naming the code
it must end in (`# expect: DSL132`).

Run standalone to count crashes over a fixed mutation corpus (the numbers in
docs/reliability-compiler.md):  PYTHONPATH=. python tests/reliability/test_gate_fuzz.py 5200
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.api import Engine
from engine.providers.base import NullProvider

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "modules"
FIXTURES = ROOT / "tests" / "fixtures" / "fuzz"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
_CODE = re.compile(r"^DSL\d{3}$")

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


# --- the harness: what `clearance lint` does, on files in a scratch module folder ----------


def lint_files(files: dict[str, str], workdir: Path, run_examples: bool = True) -> list:
    """Write ``files`` as module ``m`` (plus the built-in library) and lint it the way
    `clearance lint` does; returns the diagnostics. Any exception escapes: that is the bug."""
    mod = workdir / "m"
    if workdir.exists():
        shutil.rmtree(workdir)
    mod.mkdir(parents=True)
    shutil.copytree(MODULES / "lib", workdir / "lib")
    for name, text in files.items():
        (mod / name).write_text(text, encoding="utf-8", errors="surrogatepass")
    engine = Engine(
        gate_paths=[mod],
        include_builtin=False,
        cache=None,
        audit=None,
        provider=NullProvider("fuzzing: semantic checks stay undecided"),
    )
    diags, sources = engine.lint(None, run_examples=run_examples)
    for d in diags:  # every diagnostic is coded and renders against its source
        assert _CODE.match(d.code), d
        d.render(sources.get(d.file))
    return diags


# --- mutation of the built-in modules ------------------------------------------------------

#: a gate-file token: strings, regexes, comments, words, numbers, or one other character
_TOKEN = re.compile(
    r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|/(?:[^/\\\n]|\\.)+/[A-Za-z]*|#[^\n]*'
    r"|[A-Za-z_][A-Za-z0-9_-]*|\d+(?:\.\d+)?|\s+|.",
    re.DOTALL,
)
#: tokens worth splicing in: keywords, edge numbers, pathological patterns and phrases
INTERESTING = (
    "not",
    "all {",
    "any {",
    "}",
    "{",
    "(",
    ")",
    ",",
    '"',
    "/",
    'in section("A")',
    "define",
    "gate",
    "module",
    "import",
    "require",
    "forbid",
    "when",
    "example",
    "expecting",
    "within",
    "chars",
    "like [",
    "]",
    "threshold",
    "raw",
    "near(",
    "count(",
    ">=",
    "==",
    "phrase(",
    "pii(",
    "secret(",
    "semantic",
    "regex",
    "1e309",
    "1" + "0" * 400,
    "0.5",
    "-1",
    "99999999999",
    "within 1" + "0" * 320 + " chars",
    ">= 1" + "0" * 320,
    '"\\ud800"',
    '"\\x00"',
    '"\\N{x}"',
    '"""',
    "/(?<=a)b/",
    "/a{1000}{1000}/",
    "/(a|b)\\1/",
    "/[/",
    "/\\p{Zz}/",
    "/a/zz",
    '"' + " ".join("a" * 5 for _ in range(12000)) + '"',
    "\x00",
    "\ufeff",
    "\u202e",
    "\r",
    "\t",
    "\\",
    "é",
    "ﬃ",
    "K",
    "ſ",
)
OPS = ("delete", "duplicate", "swap", "insert", "splice", "nest", "chain", "truncate")


def module_files() -> list[Path]:
    """The built-in modules' gate files (not the library: it holds no gates of its own)."""
    return sorted(p for p in MODULES.glob("*/*.gates") if p.parent.name != "lib")


def mutant_files(target: Path, text: str) -> dict[str, str]:
    """A module of the mutated file and its module's header file (defines live there)."""
    files = {target.name: text}
    header = target.parent / "module.gates"
    if header != target and header.exists():
        files["module.gates"] = header.read_text(encoding="utf-8")
    return files


def apply_op(text: str, op: str, a: int, b: int, payload: str) -> str:
    """One mutation; ``a`` and ``b`` pick positions (taken modulo the token count)."""
    toks = _TOKEN.findall(text)
    if not toks:
        return payload
    i, j = a % len(toks), b % len(toks)
    if op == "delete":
        del toks[i : i + 1 + b % 3]
    elif op == "duplicate":
        toks.insert(i, toks[i])
    elif op == "swap":
        toks[i], toks[j] = toks[j], toks[i]
    elif op == "insert":
        toks.insert(i, payload)
    elif op == "splice":
        toks.insert(i, " " + INTERESTING[b % len(INTERESTING)] + " ")
    elif op == "nest":  # wrap the expression after some `require` / `forbid` / `define =`
        depth = 1 + b % 1500
        k = next((n for n in range(i, len(toks)) if toks[n] in ("require", "forbid", "=")), i)
        kind = ("not ", "all { ", "any { ", 'in section("A") ', "(")[a % 5]
        close = {"all { ": " }", "any { ": " }", "(": ")"}.get(kind, "")
        end = k + 2
        while end < len(toks) and toks[end].isspace():
            end += 1
        toks[k + 1 : end + 1] = [" " + kind * depth] + toks[k + 1 : end + 1] + [close * depth]
    elif op == "chain":  # a chain of definitions that refer to each other
        n = 1 + b % 1300
        toks.append(
            "\n"
            + "".join(f"define zz{m} = zz{m - 1}\n" for m in range(n, 0, -1))
            + 'define zz0 = phrase("x")\n'
        )
    elif op == "truncate":
        del toks[i:]
    return "".join(toks)


def random_mutants(count: int, seed: int = 16) -> list[tuple[Path, str]]:
    """``count`` mutated built-in files, the same ones on every run (the standalone corpus)."""
    rnd = random.Random(seed)
    files = module_files()
    out = []
    for _ in range(count):
        target = rnd.choice(files)
        text = target.read_text(encoding="utf-8")
        for _ in range(rnd.randint(1, 4)):
            op = rnd.choice(OPS)
            payload = "".join(
                rnd.choice(INTERESTING)
                if rnd.random() < 0.3
                else chr(rnd.choice((rnd.randint(32, 126), rnd.randint(0, 0x2FFF))))
                for _ in range(rnd.randint(1, 6))
            )
            text = apply_op(text, op, rnd.randrange(1 << 30), rnd.randrange(1 << 30), payload)
        out.append((target, text))
    return out


# --- generated gate files ------------------------------------------------------------------

_WORD = st.text("abcdefghijklmnopqrstuvwxyzAZ_0123456789", min_size=1, max_size=8).map(
    lambda s: "x" + s
)
_NUMBER = st.one_of(
    st.integers(0, 500).map(str),
    st.sampled_from(["0.5", "1.25", "1" + "0" * 309, "1" + "0" * 20, "99999999999", "3.0", "0"]),
)
_CHARS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


def _quoted(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_STRING = st.one_of(
    _CHARS.map(_quoted),
    st.sampled_from(['"\\ud800"', '"\\x00"', '"  "', '""', '"a\\tb"', '"""multi\nline"""']),
)
_EXAMPLE = st.one_of(
    st.sampled_from(
        ['"the word x"', '"Contact privacy@acme.example"', '"# Rights\\nYou may object."', '""']
    ),
    _CHARS.filter(str.strip).map(_quoted),
)
_REGEX = st.one_of(
    st.text(
        st.characters(codec="utf-8", exclude_characters="/\n\\\x00"), min_size=1, max_size=12
    ).map(lambda s: f"/{s}/"),
    st.sampled_from(
        [
            "/(?<=a)b/",
            "/a{1000}{1000}/",
            "/(a)\\1/",
            "/[/",
            "/a/zq",
            "/\\d+/i",
            "/" + "a{1000}" * 40 + "/",
            "/(?i)x/s",
            "/.*/",
        ]
    ),
)
_NAMES = st.sampled_from(
    ["any", "EMAIL_ADDRESS", "US_SSN", "AWS_ACCESS_KEY", "bogus", "d0", "d1", "common_contact"]
)


def _leaf() -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(_STRING, min_size=0, max_size=3).map(lambda xs: f"phrase({', '.join(xs)})"),
        _REGEX.map(lambda r: "regex " + r),
        st.lists(_NAMES, max_size=3).map(lambda xs: f"pii({', '.join(xs)})"),
        st.lists(_NAMES, max_size=2).map(lambda xs: f"secret({', '.join(xs)})"),
        st.tuples(_STRING, _NUMBER, st.booleans()).map(
            lambda t: f"semantic {t[0]} threshold {t[1]}" + (" raw" if t[2] else "")
        ),
        st.sampled_from(["d0", "d1", "undefined_thing", "phrase", "count", '"a string"']),
    )


_EXPR = st.recursive(
    _leaf(),
    lambda kids: st.one_of(
        kids.map(lambda k: "not " + k),
        st.lists(kids, min_size=1, max_size=3).map(lambda ks: "all { " + " ".join(ks) + " }"),
        st.lists(kids, min_size=1, max_size=3).map(lambda ks: "any { " + " ".join(ks) + " }"),
        st.tuples(_STRING, kids).map(lambda t: f"in section({t[0]}) {t[1]}"),
        st.tuples(kids, kids, _NUMBER, st.sampled_from(["chars", "characters", "lines", ""])).map(
            lambda t: f"near({t[0]}, {t[1]}, within {t[2]} {t[3]})"
        ),
        st.tuples(kids, st.sampled_from([">=", "<=", "==", ">", "<"]), _NUMBER).map(
            lambda t: f"count({t[0]}) {t[1]} {t[2]}"
        ),
        kids.map(lambda k: f"({k})"),
    ),
    max_leaves=12,
)


@st.composite
def gate_files(draw) -> str:
    parts = ['module m { title "Fuzz" version "1" }\nimport common\n']
    for i in range(draw(st.integers(0, 2))):
        parts.append(f"define d{i} = {draw(_EXPR)}\n")
    for n in range(draw(st.integers(1, 2))):
        body = [
            f"  title {draw(_STRING)}",
            f"  cite {draw(_STRING)}",
            f"  severity {draw(st.sampled_from(['high', 'low', 'critical', 'huge', '1']))}",
        ]
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["require", "forbid", "when"]))
            expr = draw(_EXPR)
            depth = draw(st.sampled_from([0, 0, 0, 3, 70, 600]))
            wrap = draw(st.sampled_from(["not ", "any { ", 'in section("A") ']))
            expr = wrap * depth + expr + (" }" * depth if "{" in wrap else "")
            body.append(f"  {kind} {expr}")
        body.append(f"  example pass {draw(_EXAMPLE)}")
        expecting = draw(
            st.sampled_from(
                [
                    "",
                    "",
                    " expecting phrase",
                    " expecting regex, pii",
                    " expecting d0",
                    f" expecting {draw(_WORD)}",
                ]
            )
        )
        body.append(f"  example fail {draw(_EXAMPLE)}{expecting}")
        parts.append(f"gate FZ-{n} g{n} {{\n" + "\n".join(body) + "\n}\n")
    text = "".join(parts)
    if draw(st.integers(0, 3)) == 0:  # and a few raw mutations on top of the grammar's shape
        for _ in range(draw(st.integers(1, 3))):
            text = apply_op(
                text,
                draw(st.sampled_from(OPS[:5])),
                draw(st.integers(0, 1 << 20)),
                draw(st.integers(0, 1 << 20)),
                draw(_CHARS),
            )
    return text


# --- the properties ------------------------------------------------------------------------


@FUZZ
@given(text=gate_files())
def test_generated_gate_files_end_in_diagnostics(text: str, tmp_path_factory) -> None:
    lint_files({"fuzz.gates": text}, tmp_path_factory.mktemp("gen"))


@FUZZ
@given(data=st.data())
def test_mutated_builtin_modules_end_in_diagnostics(data, tmp_path_factory) -> None:
    target = data.draw(st.sampled_from(module_files()), label="file")
    text = target.read_text(encoding="utf-8")
    ops = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(OPS), st.integers(0, 1 << 30), st.integers(0, 1 << 30), _CHARS
            ),
            min_size=1,
            max_size=4,
        ),
        label="mutations",
    )
    for op in ops:
        text = apply_op(text, *op)
    lint_files(mutant_files(target, text), tmp_path_factory.mktemp("mut"))


# --- regression fixtures: inputs that crashed the compiler, and the code each must give -----


def _fixtures() -> list[Path]:
    return sorted(FIXTURES.glob("*.gates"))


def _expected(path: Path) -> str:
    m = re.search(r"^# expect: (DSL\d{3})", path.read_text(encoding="utf-8"), re.MULTILINE)
    assert m, f"{path.name} names no expected code"
    return m.group(1)


@pytest.mark.parametrize("fixture", _fixtures(), ids=lambda p: p.stem)
def test_fuzz_regression_fixture(fixture: Path, tmp_path) -> None:
    diags = lint_files({fixture.name: fixture.read_text(encoding="utf-8")}, tmp_path / "w")
    assert _expected(fixture) in {d.code for d in diags}, [d.headline() for d in diags]


def test_syntax_error_recovery_is_bounded(tmp_path) -> None:
    """Every syntax error costs a parse of the whole file: a 45 KB file of 1,500 errors stops
    after 21 of them (1 MB of re-parsing) and says so, instead of parsing 200 times."""
    fixture = FIXTURES / "many-syntax-errors.gates"
    diags = lint_files({fixture.name: fixture.read_text(encoding="utf-8")}, tmp_path / "w")
    assert len(diags) == 1_000_000 // len(fixture.read_text(encoding="utf-8"))
    assert "stopped after" in diags[-1].notes[0]


def test_fixtures_are_present() -> None:
    assert len(_fixtures()) >= 8


@pytest.mark.parametrize("name", ["nest-not-500", "define-chain-1200", "within-1e309"])
def test_cli_lint_exits_2_with_the_diagnostic(name: str, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    fixture = FIXTURES / f"{name}.gates"
    code, out, err = run_cli("lint", fixture)
    assert code == 2, err
    assert f"error[{_expected(fixture)}]" in err
    assert "internal error" not in err and "Traceback" not in err


def test_unknown_provider_is_a_usage_error(run_cli, monkeypatch) -> None:
    monkeypatch.setenv("CLEARANCE_PROVIDER", "bogus")
    code, out, err = run_cli("validate", ROOT / "data" / "samples" / "breach-letter.txt")
    assert code == 2, err
    assert "unknown semantic provider 'bogus' (from CLEARANCE_PROVIDER)" in err
    assert "internal error" not in err


def _limit_file(nots: int) -> str:
    """``any { chain-of-64-definitions, not x nots phrase }``: nots + 2 levels deep."""
    deep = "not " * nots + 'phrase("x")'
    chain = (
        "".join(f"define c{i} = c{i - 1}\n" for i in range(63, 0, -1)) + 'define c0 = phrase("y")\n'
    )
    return (
        'module m { title "t" version "1" }\n'
        + chain
        + 'gate T-1 t {\n  title "t"\n  cite "c"\n  require any { c63 '
        + deep
        + " }\n"
        + '  example pass "x y"\n  example fail "z"\n}\n'
    )


def test_the_limits_leave_real_gates_alone(tmp_path) -> None:
    """64 levels and a chain of 64 definitions compile; a 65th level is DSL132."""
    assert [d.headline() for d in lint_files({"t.gates": _limit_file(62)}, tmp_path / "a")] == []
    over = lint_files({"t.gates": _limit_file(63)}, tmp_path / "b")
    assert [(d.code, d.loc.line) for d in over] == [("DSL132", 69)]


# --- standalone: count crashes over a fixed corpus of mutants --------------------------------

#: a mutant that takes more CPU seconds than this to lint counts as a crash (a hang) in the
#: standalone run
LIMIT_S = 20


def _count_crashes(inputs, work: Path) -> Counter[str]:
    """Lint each ``(files, label)`` input, counting exceptions and CPU-time overruns."""
    crashes: Counter[str] = Counter()

    def too_slow(signum, frame):
        raise TimeoutError(f"no diagnostic within {LIMIT_S} s of CPU")

    # CPU time, not wall time: the machine this runs on may be busy with other work
    signal.signal(signal.SIGPROF, too_slow)
    for n, (files, label) in enumerate(inputs):
        if n and n % 250 == 0:
            print(f"  ... {n} run, {sum(crashes.values())} crashed", flush=True)
        signal.setitimer(signal.ITIMER_PROF, LIMIT_S)
        try:
            lint_files(files, work / "w")
        except Exception as exc:  # counting crashes is the point of this run
            crashes[f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
            (work / f"crash-{n}-{label}").write_text(
                next(iter(files.values())), encoding="utf-8", errors="surrogatepass"
            )
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    shutil.rmtree(work / "w", ignore_errors=True)
    return crashes


def _generated(count: int) -> list[str]:
    """The first ``count`` inputs of the derandomized gate_files() strategy (generation only)."""
    out: list[str] = []

    @settings(FUZZ, max_examples=count, phases=[Phase.generate])
    @given(gate_files())
    def collect(text: str) -> None:
        out.append(text)

    collect()
    return out


def main(argv: Sequence[str]) -> int:
    """``[N_MUTANTS] [--generated N]``: count crashes over the mutant corpus (default 5,200) or
    over the first N generated gate files."""
    args = list(argv)
    work = Path(tempfile.mkdtemp(prefix="gate-fuzz-"))
    if args[:1] == ["--generated"]:
        count = int(args[1]) if len(args) > 1 else 1000
        what = "generated inputs"
        inputs = [({"fuzz.gates": text}, "fuzz.gates") for text in _generated(count)]
    else:
        count = int(args[0]) if args else 5200
        what = "mutated inputs"
        inputs = [
            (mutant_files(target, text), target.name) for target, text in random_mutants(count)
        ]
    crashes = _count_crashes(inputs, work)
    total = sum(crashes.values())
    print(f"{len(inputs)} {what}, {total} crashed (inputs kept in {work})")
    for kind, k in crashes.most_common():
        print(f"  {k:5d}  {kind}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
