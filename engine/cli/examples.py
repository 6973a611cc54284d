"""`clearance test [PATH...]`: run every gate's inline examples; one line per failure.
``--coverage`` adds the branch coverage of each gate's expressions by its examples."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from engine.cli._common import LibOpt, gate_file_errors
from engine.cli.app import app
from engine.cli.lint import engine_for, module_ids_for
from engine.errors import GateFileError, UserError


@app.command("test")
def test_examples(
    paths: list[Path] = typer.Argument(
        None, help="gate files or module folders (default: built-in)"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="also list passing examples"),
    coverage: bool = typer.Option(
        False,
        "--coverage",
        help="report which branches of each gate's when/require/forbid its examples exercise",
    ),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="with --coverage: exit 1 when total branch coverage (percent) is below this",
        min=0,
        max=100,
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json"),
    lib: list[Path] = LibOpt,
) -> None:
    """Run every inline example (example pass/fail) as a test. Exit 1 if any fails (or, with
    --coverage --threshold N, if branch coverage is below N percent)."""
    if fmt not in ("text", "json"):
        raise UserError(f"unknown format '{fmt}': expected one of: json, text")
    if threshold is not None and not coverage:
        raise UserError("--threshold needs --coverage")
    paths = paths or []
    engine = engine_for(paths, lib)
    try:
        rs = engine.ruleset(module_ids_for(engine, paths))
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    results = engine.run_examples(rs.modules)
    failed = [r for r in results if not r.ok]
    lines = []
    for r in results:
        if not r.ok:
            lines.append(
                f"{r.example.file}:{r.example.loc.line}:{r.example.loc.col}: FAIL {r.id} "
                f"expects {r.example.expect}: {r.problem}"
            )
        elif verbose:
            lines.append(f"ok   {r.id} ({r.example.expect})")
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    report = None
    if coverage:
        from engine.coverage import coverage as measure

        report = measure(rs.modules)
    below = report is not None and report.below(threshold)
    if fmt == "json":
        doc: dict = {
            "passed": len(results) - len(failed),
            "failed": len(failed),
            "failures": [
                {
                    "id": r.id,
                    "file": r.example.file,
                    "line": r.example.loc.line,
                    "expect": r.example.expect,
                    "problem": r.problem,
                }
                for r in failed
            ],
        }
        if report is not None:
            doc["coverage"] = report.to_json(threshold)
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            print(line)
        print(summary)
        if report is not None:
            print(report.render(every_branch=verbose))
            if threshold is not None:
                verdict = "below" if below else "meets"
                print(f"coverage {report.percent:.1f}% {verdict} the threshold of {threshold:g}%")
    sys.stdout.flush()
    raise typer.Exit(1 if failed or below else 0)
