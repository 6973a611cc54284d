"""`clearance validate PATH...`: validate documents; exit 0 pass, 1 blocking, 2 input, 3 undecided."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engine.cli._common import GatesOpt, ModuleOpt, emit, gate_file_errors, make_engine
from engine.cli.app import app
from engine.errors import DocumentError, GateFileError
from engine.formatters.base import get_formatter
from engine.ingest import MAX_BYTES, media_type_for

#: precedence when several documents end differently: input errors, then blocking findings,
#: then blocking undecided checks.
_RANK = {2: 3, 1: 2, 3: 1, 0: 0}


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the supported documents inside them (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                              and media_type_for(f.name) is not None))
        else:
            out.append(p)
    return out


def combine(codes: list[int]) -> int:
    return max(codes, key=lambda c: _RANK.get(c, 4), default=0)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="documents (or folders of documents) to validate"),
    module: list[str] = ModuleOpt,
    doc_type: str = typer.Option(None, "--doc-type", "-t", help="document type (default: inferred)"),
    fmt: str = typer.Option("text", "--format", "-f", help="text, json, sarif, junit or html"),
    output: Path = typer.Option(None, "--output", "-o", help="write the report to a file"),
    profile: bool = typer.Option(False, "--profile", help="per-gate and per-check timings"),
    fail_on: str = typer.Option("low", "--fail-on", help="lowest severity that blocks"),
    gates: list[Path] = GatesOpt,
    max_bytes: int = typer.Option(MAX_BYTES, "--max-bytes", help="largest document accepted"),
) -> None:
    """Validate documents against the gates of the chosen modules."""
    from dsl.ast import Severity

    try:
        sev = Severity(fail_on)
    except ValueError:
        raise typer.BadParameter(f"must be one of {', '.join(s.value for s in Severity)}",
                                 param_hint="--fail-on") from None
    engine = make_engine(gates, fail_on=sev, max_bytes=max_bytes)
    formatter = get_formatter(fmt)
    reports, codes = [], []
    try:
        engine.ruleset(module or None)
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    files = expand(paths)
    if not files:
        sys.stderr.write("clearance: error: no documents found\n")
        raise typer.Exit(2)
    for path in files:
        try:
            report = engine.validate(path, modules=module or None, doc_type=doc_type,
                                     profile=profile)
        except DocumentError as exc:
            sys.stderr.write(f"clearance: error: {exc}\n")
            codes.append(2)
            continue
        reports.append(report)
        codes.append(report.exit_code)
    if reports:
        rendered = formatter.render(reports)
        if output:
            output.write_text(rendered + ("" if rendered.endswith("\n") else "\n"), encoding="utf-8")
        else:
            emit(rendered)
    raise typer.Exit(combine(codes))
