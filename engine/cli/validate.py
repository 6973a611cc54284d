"""`clearance validate PATH...`: validate documents; exit 0 pass, 1 blocking, 2 input, 3 undecided."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from engine.batch import Job, Outcome, collect, combine, default_jobs, progress_for, run
from engine.cli._common import GatesOpt, ModuleOpt, emit, gate_file_errors, make_engine
from engine.cli.app import app
from engine.errors import GateFileError
from engine.formatters.base import get_formatter
from engine.ingest import MAX_BYTES

__all__ = ["combine", "expand", "validate"]


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded (recursively) to the supported documents inside them."""
    return collect(paths)


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
    include: list[str] = typer.Option(None, "--include", "-i", help="in folders, only files "
                                      "matching this glob, e.g. '*.md' or 'policies/**' "
                                      "(repeatable)"),
    exclude: list[str] = typer.Option(None, "--exclude", "-x", help="in folders, skip files or "
                                      "folders matching this glob, e.g. 'drafts' (repeatable)"),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="worker processes for several "
                             "documents [default: CPU count]"),
) -> None:
    """Validate documents against the gates of the chosen modules. Folders are searched
    recursively; several documents are validated in parallel across processes."""
    from dsl.ast import Severity

    try:
        sev = Severity(fail_on)
    except ValueError:
        raise typer.BadParameter(f"must be one of {', '.join(s.value for s in Severity)}",
                                 param_hint="--fail-on") from None
    formatter = get_formatter(fmt)
    files = collect(paths, include, exclude)
    workers = min(jobs or default_jobs(), len(files))
    # In-process runs use this engine; a pool's workers build their own, so here only the
    # gates are checked (and nothing is opened that this process would not use).
    engine = (make_engine(gates, fail_on=sev, max_bytes=max_bytes) if workers <= 1
              else make_engine(gates, fail_on=sev, max_bytes=max_bytes, cache=None, audit=None))
    try:
        engine.ruleset(module or None)
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    if not files:
        sys.stderr.write("clearance: error: no documents found\n")
        raise typer.Exit(2)
    job = Job(gate_paths=tuple(str(g) for g in gates or []), modules=tuple(module or ()) or None,
              doc_type=doc_type, profile=profile, fail_on=sev.value, max_bytes=max_bytes)

    progress = progress_for(len(files))
    task = None

    def done(out: Outcome) -> None:
        if out.error:
            line = f"clearance: error: {out.error}"
            if progress is not None:
                progress.console.print(line, markup=False, highlight=False)
            else:
                sys.stderr.write(line + "\n")
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=out.path.name, refresh=True)

    if progress is not None:
        progress.start()
        task = progress.add_task("", total=len(files))
        progress.refresh()
    try:
        outcomes = run(files, job, jobs=workers, engine=engine if workers <= 1 else None,
                       on_done=done)
    finally:
        if progress is not None:
            progress.stop()

    reports = [o.report for o in outcomes if o.report is not None]
    if reports:
        rendered = formatter.render(reports)
        if output:
            output.write_text(rendered + ("" if rendered.endswith("\n") else "\n"), encoding="utf-8")
        else:
            emit(rendered)
    if fmt == "text" and len(outcomes) > 1:
        from rich.console import Console

        from engine.batch import summary_table

        # Piped output (CI logs, grep) has no width to fit: don't squeeze the table into 80.
        Console(width=None if sys.stdout.isatty() else 160).print(summary_table(outcomes))
    raise typer.Exit(combine(o.code for o in outcomes))
