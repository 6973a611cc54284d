"""The documentation checks itself: every shell example of the README and the getting-started
pages runs and prints what the page says, the generated reference covers every gate, diagnostic
code, command and endpoint, and the README stays short.

An example is a fenced ``console`` block in ``README.md`` or ``docs/getting-started/``: lines
starting ``$ `` are commands (``clearance ...``, optionally after ``VAR=value`` assignments; no
pipes), the lines after each are its expected output, stdout and stderr together. Timings (``12.3 ms``),
timestamps and 64-hex hashes are normalised, and runs of spaces and of table rules are folded,
so Rich tables that widen with a longer timing still match. A line ``...`` matches any number of
lines. The commands of a getting-started page share a fresh ``CLEARANCE_HOME``, in page order, so
the auditor's page sees the validations recorded earlier on it; each block of the README has its
own.

To refresh the recorded output after a deliberate change of the CLI's wording, run
``CLEARANCE_DOCS_UPDATE=1 pytest tests/test_docs.py`` and read the diff before committing.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT

GETTING_STARTED = ROOT / "docs" / "getting-started"
BLOCK_RE = re.compile(r"^```console\n(.*?)^```\n", re.M | re.S)
ASSIGN_RE = re.compile(r"^[A-Z_][A-Z0-9_]*=")
UPDATE = bool(os.environ.get("CLEARANCE_DOCS_UPDATE"))


@dataclass
class Example:
    page: Path
    block: int  # which console block of the page, from 0
    line: int  # 1-based line of the command in the page
    command: str
    expected: list[str]


def examples(page: Path) -> list[Example]:
    """Every ``$ clearance ...`` command of the page's console blocks, with its output."""
    text = page.read_text(encoding="utf-8")
    out: list[Example] = []
    for n, block in enumerate(BLOCK_RE.finditer(text)):
        first = text.count("\n", 0, block.start(1)) + 1
        current: Example | None = None
        for i, line in enumerate(block.group(1).splitlines()):
            if line.startswith("$ "):
                current = Example(page, n, first + i, line[2:], [])
                out.append(current)
            elif current is not None:
                current.expected.append(line)
    return out


def normalise(line: str) -> str:
    line = re.sub(
        r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?", "<time>", line
    )
    line = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", line)
    line = re.sub(r"\b\d[\d,]*\.\d ?ms\b", "<ms>", line)
    line = re.sub(r"(?<![\d.])\d[\d,]*\.\d(?![\d.])", "<n.n>", line)  # a timing column (ms)
    line = re.sub(r"([━─═])\1+", r"\1", line)
    return re.sub(r"\s+", " ", line).strip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line after normalising; a line ``...`` stands for any number of lines."""
    exp = [normalise(x) for x in expected]
    act = [normalise(x) for x in actual]
    while exp and not exp[-1]:
        exp.pop()
    while act and not act[-1]:
        act.pop()

    def walk(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == "...":
            return any(walk(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and exp[i] == act[j] and walk(i + 1, j + 1)

    return walk(0, 0)


def run(command: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run one documented command through the real CLI entry point, in this process (the
    offline model and the compiled gates then load once per page, not once per command)."""
    from engine.cli import main

    words = shlex.split(command)
    for key in [k for k in os.environ if k.startswith(("CLEARANCE_", "ANTHROPIC_"))]:
        monkeypatch.delenv(key)  # the documented defaults, whatever the caller's shell has
    env = {"CLEARANCE_HOME": str(home), "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    while words and ASSIGN_RE.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert words and words[0] == "clearance", f"only clearance commands are run: {command!r}"
    out, err = io.StringIO(), io.StringIO()
    with monkeypatch.context() as m:
        m.chdir(ROOT)  # the pages' paths are relative to the repository
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(words[1:])
    for key in env:
        monkeypatch.delenv(key, raising=False)
    # stderr first: diagnostics go there as they happen, the report to stdout after them
    return (err.getvalue() + out.getvalue()).splitlines()


README = ROOT / "README.md"
PAGES = sorted(GETTING_STARTED.glob("*.md"))


def test_getting_started_pages_have_examples():
    assert {p.name for p in PAGES} >= {"compliance-officer.md", "release-owner.md", "auditor.md"}
    for page in PAGES:
        if page.name != "index.md":
            assert examples(page), f"{page.name} has no console example"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: p.name)
def test_examples_print_what_the_page_says(page, tmp_path, monkeypatch):
    failures = []
    lines = page.read_text(encoding="utf-8").split("\n")
    # the README's blocks stand alone (each its own CLEARANCE_HOME); a guide's build on each other
    per_block = page == README
    results = [
        (ex, run(ex.command, tmp_path / (f"home{ex.block}" if per_block else "home"), monkeypatch))
        for ex in examples(page)
    ]
    for ex, actual in reversed(results):  # from the bottom, so earlier line numbers hold
        if not matches(ex.expected, actual):
            failures.append(
                f"{page.relative_to(ROOT)}:{ex.line}: $ {ex.command}\n"
                "--- the page says\n"
                + "\n".join(ex.expected)
                + "\n--- it printed\n"
                + "\n".join(actual)
            )
            # the command is line ex.line (1-based); its recorded output follows it
            lines[ex.line : ex.line + len(ex.expected)] = [x.rstrip() for x in actual]
    if UPDATE and failures:
        page.write_text("\n".join(lines), encoding="utf-8")
    assert not failures, "\n\n".join(reversed(failures))


def test_normalise_folds_timings_and_table_widths_but_not_counts():
    a = "│ data/samples/a.md │ fail    │      1 │ 1654.1 │"
    b = "│ data/samples/a.md │ fail │ 1 │ 24.2 │"
    assert normalise(a) == normalise(b)
    assert normalise("FAIL (memo; 4 passed; 2.2 ms)") == normalise(
        "FAIL (memo; 4 passed; 123.4 ms)"
    )
    assert normalise("4 passed") != normalise("5 passed")
    assert matches(["one", "...", "four"], ["one", "two", "three", "four"])
    assert not matches(["one", "four"], ["one", "two", "four"])


# --- the generated reference -------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path_factory.mktemp("docs")
    gen_docs.generate(out)
    return gen_docs, out / gen_docs.GENERATED


def test_gate_catalogue_has_every_gate_with_its_citation_and_fix(generated):
    from engine.api import Engine

    _, out = generated
    for module in Engine(cache=None, audit=None).list_modules():
        page = (out / "gates" / f"{module.id}.md").read_text(encoding="utf-8")
        for gate in module.gates:
            assert f"## {gate.code} `{gate.name}`" in page
            for cite in gate.cite:
                assert cite.replace("|", "\\|") in page
            if gate.fix:
                assert gate.fix in page


def test_diagnostics_reference_describes_every_code_in_the_source(generated):
    gen_docs, out = generated
    page = (out / "diagnostics.md").read_text(encoding="utf-8")
    codes = gen_docs.codes_in_source([ROOT / "dsl", ROOT / "gates", ROOT / "engine"])
    assert len(codes) >= 30
    for code in codes:
        assert f"## {code} " in page
    assert "(undocumented)" not in page
    # the rendered example is the compiler's real output on the fixture
    assert "error[DSL103]: unknown check kind 'regexp'" in page


def test_cli_reference_lists_every_command(generated):
    from engine.cli import load_commands
    from engine.cli.app import app

    _, out = generated
    load_commands()
    page = (out / "cli.md").read_text(encoding="utf-8")
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        assert f"`clearance {name.replace('_', '-')}" in page or f"`clearance {name}" in page, name


def test_http_reference_lists_every_endpoint(generated):
    from engine.server import create_app

    _, out = generated
    page = (out / "http.md").read_text(encoding="utf-8")
    for path, methods in create_app().openapi()["paths"].items():
        for method in methods:
            assert f"## {method.upper()} `{path}`" in page


def test_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).exists(), f"README links to missing {target}"
