"""The CLI starts quickly: `clearance --help` and every `COMMAND --help` import none of the heavy
libraries (the HTTP stack, SQLite helpers, model runtimes, the gate compiler), and `validate`
imports the formatter it renders with and not the HTTP server. Checked by what each run leaves in
``sys.modules`` (deterministic), never by timing; benchmarks/bench_import.py measures the time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLES

# Runs the real entry point in a fresh interpreter (from the repository root, so the working
# tree's code is imported) and prints the exit codes and every module that got imported.
RUNNER = """
import contextlib, io, json, sys
from engine.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
print(json.dumps({"codes": codes, "modules": sorted(sys.modules)}))
"""

# Nothing the CLI needs to print help: the HTTP stack, the audit log's SQLite helpers, model
# runtimes and clients, the cache, numpy, the gate language and the check kinds.
NEVER_FOR_HELP = {
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "sqlite_utils",
    "diskcache",
    "anthropic",
    "onnxruntime",
    "tokenizers",
    "transformers",
    "torch",
    "numpy",
    "lark",
    "dsl.compile",
    "gates",
    "engine.api",
    "engine.audit",
    "engine.server",
    "engine.formatters.text",
}
# `clearance --help` lists commands only; typer builds a command's own help with pydantic.
NEVER_FOR_TOP_HELP = NEVER_FOR_HELP | {"pydantic", "engine.report"}
# A text-format validation needs the engine but not the HTTP layer, a model client or the
# other report formats (run with CLEARANCE_PROVIDER=none: no model is asked).
NEVER_FOR_VALIDATE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "anthropic",
    "onnxruntime",
    "engine.server",
    "engine.formatters.sarif",
    "engine.formatters.html",
    "engine.formatters.junit",
}


def _run(*argvs: list[str], env: dict[str, str] | None = None) -> tuple[list[int], set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(argvs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["codes"], set(out["modules"])


def _imported(modules: set[str], names: set[str]) -> set[str]:
    """The names in ``names`` imported, as packages or as any of their submodules."""
    return {n for n in names if any(m == n or m.startswith(n + ".") for m in modules)}


def _commands() -> list[list[str]]:
    """Every command and subcommand, as argv prefixes (`audit recent`, `keys create`...)."""
    import typer.main

    from engine.cli import load_commands
    from engine.cli.app import app

    load_commands()
    found: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if path:
            found.append(path)
        for name, sub in (subs or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_top_level_help_imports_nothing_heavy():
    codes, modules = _run(["--help"])
    assert codes == [0]
    assert not _imported(modules, NEVER_FOR_TOP_HELP)


def test_every_command_help_imports_nothing_heavy():
    commands = _commands()
    assert {"validate", "serve", "audit", "keys"} <= {c[0] for c in commands}
    codes, modules = _run(*([*c, "--help"] for c in commands))
    assert codes == [0] * len(commands)
    assert not _imported(modules, NEVER_FOR_HELP)


def test_validate_imports_only_what_it_uses(tmp_path, clearance_home):
    import os

    env = {**os.environ, "CLEARANCE_PROVIDER": "none", "CLEARANCE_HOME": str(clearance_home)}
    doc = SAMPLES / "privacy-notice.md"
    codes, modules = _run(["validate", str(doc)], env=env)
    assert codes[0] in (0, 1, 3)  # a verdict was reached (2 would be an input error)
    assert {"engine.api", "engine.formatters.text"} <= modules  # it really validated
    assert not _imported(modules, NEVER_FOR_VALIDATE)


@pytest.mark.parametrize("fmt", ["sarif", "json"])
def test_a_format_imports_its_own_formatter(fmt, clearance_home):
    import os

    env = {**os.environ, "CLEARANCE_PROVIDER": "none", "CLEARANCE_HOME": str(clearance_home)}
    codes, modules = _run(["validate", "-f", fmt, str(SAMPLES / "privacy-notice.md")], env=env)
    assert codes[0] in (0, 1, 3)
    assert f"engine.formatters.{fmt}" in modules
    assert not _imported(modules, {"engine.formatters.html", "engine.formatters.junit"})
