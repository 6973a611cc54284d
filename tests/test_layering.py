"""Import contracts: the language never imports the engine, and the core never imports the
shells (CLI, HTTP server), so one engine API serves them all."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

SHELLS = ("engine.cli", "engine.server")


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "path", files("dsl") + files("gates"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_language_and_checks_never_import_the_engine(path):
    bad = {m for m in imports(path) if m == "engine" or m.startswith("engine.")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def _is_shell(path: Path) -> bool:
    rel = path.relative_to(ROOT).with_suffix("")
    dotted = ".".join(rel.parts)
    return any(dotted == s or dotted.startswith(s + ".") for s in SHELLS)


@pytest.mark.parametrize(
    "path", [p for p in files("engine") if not _is_shell(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_core_never_imports_the_cli_or_http_layer(path):
    bad = {m for m in imports(path) if any(m == s or m.startswith(s + ".") for s in SHELLS)}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
