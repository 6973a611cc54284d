"""The CLI starts quickly: `clearance --help` and every `COMMAND --help` import none of the heavy
libraries (the HTTP stack, SQLite helpers, model runtimes, the gate compiler), and `validate`
imports the formatter it renders with and not the HTTP server; a small document that no model is
asked about imports no model runtime, no numpy, no asyncio and no sqlite-utils (the audit log is
written with the standard library, in sqlite-utils' own schema). Checked by what each run leaves
in ``sys.modules`` (deterministic), never by timing; benchmarks/bench_import.py measures the
time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


# A one-line document of no recognised type: the deterministic checks decide every gate that
# applies, so no semantic question is asked. Nothing that only answers questions (model
# runtimes, the event loop, numpy), serves HTTP or is a convenience over SQLite is needed.
NEVER_WITHOUT_QUESTIONS = {
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "anthropic",
    "onnxruntime",
    "tokenizers",
    "transformers",
    "torch",
    "sqlite_utils",
    "engine.server",
}
ONE_LINE = "We collect your email address to send you our newsletter.\n"


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


def _one_line_validate(tmp_path: Path, clearance_home: Path, provider: str) -> set[str]:
    """Validate a one-line text file with the default settings (cache and audit log on) and
    the given provider; the modules it imported. Asserts that it really validated, asked the
    provider nothing, and recorded the validation in the audit log."""
    import os
    import sqlite3

    doc = tmp_path / "notice.txt"
    doc.write_text(ONE_LINE, encoding="utf-8")
    env = {**os.environ, "CLEARANCE_PROVIDER": provider, "CLEARANCE_HOME": str(clearance_home)}
    codes, modules = _run(["validate", "-f", "text", str(doc)], env=env)
    assert codes[0] in (0, 1, 3)
    assert {"engine.api", "engine.formatters.text", "engine.audit.sqlite"} <= modules
    with sqlite3.connect(clearance_home / "audit.db") as db:
        row = db.execute("SELECT llm_calls, doc_name FROM validations").fetchall()
    assert row == [(0, "notice.txt")]  # recorded once, and no model was called
    return modules


def test_one_line_validate_with_no_provider_imports_no_numpy_or_event_loop(
    tmp_path: Path, clearance_home: Path
) -> None:
    modules = _one_line_validate(tmp_path, clearance_home, "none")
    assert not _imported(modules, NEVER_WITHOUT_QUESTIONS | {"numpy", "asyncio"})


def test_one_line_validate_with_the_offline_provider_loads_no_model_runtime(
    tmp_path: Path, clearance_home: Path
) -> None:
    # The default provider is built (its identity, with its trained heads' fingerprint, is part
    # of the report cache key) but its model, numpy and the event loop are loaded only when a
    # question is asked: the heads are read as plain floats.
    modules = _one_line_validate(tmp_path, clearance_home, "offline")
    assert {"engine.providers.offline", "engine.providers.heads"} <= modules
    assert not _imported(modules, NEVER_WITHOUT_QUESTIONS | {"numpy", "asyncio"})


def test_audit_schema_is_the_one_sqlite_utils_created(tmp_path: Path) -> None:
    """The log is created with the standard library; its schema (the SQL SQLite keeps) is the
    one sqlite-utils created before, so older and newer logs cannot be told apart."""
    import sqlite3

    import sqlite_utils

    from engine.audit.records import CHECKPOINTS, FINDINGS, RULESETS, VALIDATIONS
    from engine.audit.sqlite import _INDEXES, AuditLog

    AuditLog(tmp_path / "new.db").db_.close()
    # What AuditLog created with sqlite-utils (the calls it made), then the rest by the log.
    ref = sqlite_utils.Database(tmp_path / "ref.db")
    ref.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    ref.table("validations").create(
        VALIDATIONS,
        pk="id",
        if_not_exists=True,
        not_null=["time", "doc_sha256", "prev_hash", "row_hash"],
    )
    ref.table("findings").create(
        FINDINGS,
        pk="id",
        if_not_exists=True,
        foreign_keys=[("validation_id", "validations", "id")],
        not_null=["validation_id", "gate", "status"],
    )
    ref.table("checkpoints").create(CHECKPOINTS, pk="id", if_not_exists=True)
    ref.table("rulesets").create(RULESETS, pk=("gate", "version"), if_not_exists=True)
    for table, cols in _INDEXES:
        ref.table(table).create_index(cols, if_not_exists=True)
    ref.conn.close()
    AuditLog(tmp_path / "ref.db").db_.close()  # adds the waivers table and the rollups

    def schema(path: Path) -> list[tuple[str, ...]]:
        with sqlite3.connect(path) as db:
            return sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))

    assert schema(tmp_path / "new.db") == schema(tmp_path / "ref.db")
    with sqlite3.connect(tmp_path / "new.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# Parses every shipped gate file with the grammar's parser in a fresh interpreter, and prints
# a digest of the parse trees and where the parser's tables were cached.
PARSE_ALL = """
import hashlib, sys
from pathlib import Path
from dsl import parse
from dsl.diagnostics import DiagnosticBag
h = hashlib.sha256()
paths = sorted(Path("modules").rglob("*.gates"))
assert paths
for path in paths:
    tree = parse.parser().parse(path.read_text(encoding="utf-8"))
    h.update(tree.pretty().encode())
print(h.hexdigest(), parse._parser_cache())
"""


def test_cached_parser_tables_parse_as_freshly_built_ones(tmp_path: Path) -> None:
    """The grammar's LALR tables are built once and loaded from the cache after that; the
    parses are the same, and a damaged cache file is rebuilt rather than used or fatal."""
    import os

    env = {**os.environ, "CLEARANCE_HOME": str(tmp_path)}
    env.pop("CLEARANCE_CACHE_DIR", None)

    def parse_all() -> tuple[str, Path]:
        proc = subprocess.run(
            [sys.executable, "-c", PARSE_ALL],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        digest, cache = proc.stdout.split()
        return digest, Path(cache)

    built, cache = parse_all()  # no cache file yet: built, then written
    assert cache.parent == tmp_path / "cache" / "grammar" and cache.stat().st_size > 0
    written = cache.read_bytes()
    assert parse_all() == (built, cache)  # loaded from the file
    assert cache.read_bytes() == written  # and not rewritten
    cache.write_bytes(written[: len(written) // 2])  # a torn write (two processes, a crash)
    assert parse_all() == (built, cache)
    rebuilt = cache.read_bytes()  # rebuilt and written whole again (pickles vary run to run)
    assert len(rebuilt) > len(written) // 2
    assert parse_all() == (built, cache)
    assert cache.read_bytes() == rebuilt  # a whole file: loaded, not rebuilt
