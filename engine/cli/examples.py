"""`clearance test [PATH...]`: run every gate's inline examples; one line per failure."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli._common import LibOpt, gate_file_errors
from engine.cli.app import app
from engine.cli.lint import engine_for, module_ids_for
from engine.errors import GateFileError


@app.command("test")
def test_examples(
    paths: list[Path] = typer.Argument(
        None, help="gate files or module folders (default: built-in)"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also list passing examples"),
    lib: list[Path] = LibOpt,
) -> None:
    """Run every inline example (example pass/fail) as a test. Exit 1 if any fails."""
    paths = paths or []
    engine = engine_for(paths, lib)
    try:
        rs = engine.ruleset(module_ids_for(engine, paths))
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    results = engine.run_examples(rs.modules)
    failed = [r for r in results if not r.ok]
    for r in results:
        if not r.ok:
            print(
                f"{r.example.file}:{r.example.loc.line}:{r.example.loc.col}: FAIL {r.id} "
                f"expects {r.example.expect}: {r.problem}"
            )
        elif verbose:
            print(f"ok   {r.id} ({r.example.expect})")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)
