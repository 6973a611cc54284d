"""`clearance modules` and `clearance gate CODE`: what the rulesets contain."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from engine.cli._common import GatesOpt, gate_file_errors, make_engine
from engine.cli.app import app
from engine.errors import GateFileError


@app.command("modules")
def list_modules(
    fmt: str = typer.Option("text", "--format", "-f", help="text or json"),
    gates: list[Path] = GatesOpt,
) -> None:
    """List modules and their gates: codes, titles, citations, severities, document types."""
    engine = make_engine(gates, cache=None, audit=None)
    try:
        mods = engine.list_modules()
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    if fmt == "json":
        from engine.catalog import module_info

        print(json.dumps([module_info(m) for m in mods], indent=2))
        return
    if fmt != "text":
        raise typer.BadParameter("must be text or json", param_hint="--format")
    for m in mods:
        print(
            f"{m.id} {m.version}  {m.title}"
            + (f" [{m.jurisdiction}]" if m.jurisdiction else "")
            + f"  ({len(m.gates)} gates)"
        )
        for g in m.gates:
            types = ",".join(sorted(g.applies)) if g.applies is not None else "any"
            print(
                f"  {g.code:<16} {g.severity.value:<8} {g.title}  [{'; '.join(g.cite)}] ({types})"
            )


@app.command("gate")
def show_gate(
    code: str = typer.Argument(..., help="gate code, e.g. GDPR-13-1A"),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json"),
    gates: list[Path] = GatesOpt,
) -> None:
    """Show one gate's metadata and source."""
    engine = make_engine(gates, cache=None, audit=None)
    g = engine.gate(code)
    from engine.catalog import gate_info

    if fmt == "json":
        print(json.dumps(gate_info(g, source=True), indent=2))
        return
    info = gate_info(g)
    for k in (
        "code",
        "name",
        "module",
        "title",
        "cite",
        "severity",
        "doc_types",
        "on_indeterminate",
        "version",
        "fix",
    ):
        print(f"{k:>17}: {info[k]}")
    print(f"\n# {g.file}:{g.loc.line}\n{g.source}")
