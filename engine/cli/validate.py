"""`clearance validate PATH...`: validate documents; exit 0 pass, 1 blocking, 2 input, 3 undecided."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli._common import GatesOpt, LibOpt, ModuleOpt, emit, gate_file_errors, make_engine
from engine.cli.app import app
from engine.errors import GateFileError
from engine.ingest import MAX_BYTES

# The engine, the batch runner, the settings and the formatters are imported by the command,
# not here: `clearance --help` imports every command module, and must not pay for them.
if TYPE_CHECKING:
    from engine.batch import Outcome
    from engine.report import Report

__all__ = ["expand", "type_explanation", "validate"]


def type_explanation(report: Report) -> str:
    """One line on how the document's type was told, for --explain-type."""
    d = report.document
    where = d.path or d.name
    if d.doc_type_source == "given":
        return f"{where}: type {d.doc_type} (given)"
    if d.doc_type_source == "config":
        return f"{where}: type {d.doc_type} (settings: {', '.join(d.doc_type_signals)})"
    signals = "; ".join(d.doc_type_signals) or "none"
    if d.doc_type:
        return (
            f"{where}: type {d.doc_type} (inferred, confidence {d.doc_type_confidence:.2f}; "
            f"signals: {signals}; runners-up: {', '.join(d.doc_type_likely[1:]) or 'none'})"
        )
    return (
        f"{where}: type not told (likely: {', '.join(d.doc_type_likely) or 'none'}; "
        f"signals of the leader: {signals}); policy {report.untyped_policy or 'n/a'}"
    )


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded (recursively) to the supported documents inside them."""
    from engine.batch import collect

    return collect(paths)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(
        None, help="documents (or folders of documents) to validate"
    ),
    module: list[str] = ModuleOpt,
    doc_type: str = typer.Option(
        None, "--doc-type", "-t", help="document type (default: inferred)"
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text, json, sarif, junit or html"),
    output: Path = typer.Option(None, "--output", "-o", help="write the report to a file"),
    profile: bool = typer.Option(False, "--profile", help="per-gate and per-check timings"),
    fail_on: str = typer.Option(
        None,
        "--fail-on",
        help="lowest severity that blocks [default: the settings' fail-on, else low]",
    ),
    jurisdiction: list[str] = typer.Option(
        None,
        "--jurisdiction",
        "-J",
        help="the documents' "
        "jurisdiction, e.g. us, us-ca, eu, uk (repeatable): "
        "only modules declaring it apply",
    ),
    untyped: str = typer.Option(
        None,
        "--untyped",
        help="when no type is given or inferred: "
        "review (default: exit 3), fail (exit 1) or universal (only the "
        "gates that need no type decide)",
    ),
    config: Path = typer.Option(
        None,
        "--config",
        help="settings file [default: the nearest "
        "clearance.toml, or [tool.clearance] in pyproject.toml]",
    ),
    explain_type: bool = typer.Option(
        False, "--explain-type", help="print how each document's type was told (to stderr)"
    ),
    timeout: float = typer.Option(
        None,
        "--timeout",
        min=0.1,
        envvar="CLEARANCE_TIMEOUT",
        help="seconds one document may take; past it the work stops "
        "and the document counts as undecided (exit 3) [default: no "
        "limit]",
    ),
    gates: list[Path] = GatesOpt,
    lib: list[Path] = LibOpt,
    max_bytes: int = typer.Option(MAX_BYTES, "--max-bytes", help="largest document accepted"),
    include: list[str] = typer.Option(
        None,
        "--include",
        "-i",
        help="in folders, only files matching this glob, e.g. '*.md' or 'policies/**' (repeatable)",
    ),
    exclude: list[str] = typer.Option(
        None,
        "--exclude",
        "-x",
        help="in folders, skip files or folders matching this glob, e.g. 'drafts' (repeatable)",
    ),
    jobs: int = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        help="worker processes for several documents [default: CPU count]",
    ),
    manifest: Path = typer.Option(
        None,
        "--manifest",
        help="also validate the documents listed in this file: .csv (a 'path' column) or "
        '.jsonl (a path or {"path": ...} a line); relative to the manifest\'s folder',
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="local (processes on this machine) or ray (actors on a Ray cluster; -j is the "
        "number of actors)",
    ),
    address: str = typer.Option(
        None,
        "--address",
        help="--executor ray: the cluster to join, e.g. ray://head:10001 or auto [default: "
        "start a local one]",
    ),
) -> None:
    """Validate documents against the gates of the chosen modules. Folders are searched
    recursively; several documents are validated in parallel across processes."""
    from dsl.ast import Severity
    from engine.batch import Job, collect, combine, default_jobs, progress_for, read_manifest, run
    from engine.config import normalise_jurisdictions, parse_untyped, resolve_config
    from engine.formatters.base import get_formatter

    settings = resolve_config(config)
    try:
        sev = Severity(fail_on) if fail_on else settings.fail_on or Severity.low
    except ValueError:
        raise typer.BadParameter(
            f"must be one of {', '.join(s.value for s in Severity)}", param_hint="--fail-on"
        ) from None
    wanted = normalise_jurisdictions(jurisdiction) if jurisdiction else None
    policy = parse_untyped(untyped).value if untyped else None
    gates = [*(gates or []), *settings.gates]
    formatter = get_formatter(fmt)
    if executor not in ("local", "ray"):
        raise typer.BadParameter("must be one of local, ray", param_hint="--executor")
    if address and executor != "ray":
        raise typer.BadParameter("only with --executor ray", param_hint="--address")
    if not paths and manifest is None:
        raise typer.BadParameter("give documents, folders or --manifest FILE", param_hint="PATHS")
    listed = read_manifest(manifest) if manifest is not None else []
    files = collect([*(paths or []), *listed], include, exclude)
    workers = min(jobs or default_jobs(), len(files))
    # In-process runs use this engine; a pool's (or Ray's) workers build their own, so here
    # only the gates are checked (and nothing is opened that this process would not use).
    engine = (
        make_engine(gates, fail_on=sev, max_bytes=max_bytes, config=settings, lib_paths=lib)
        if workers <= 1 and executor == "local"
        else make_engine(
            gates,
            fail_on=sev,
            max_bytes=max_bytes,
            cache=None,
            audit=None,
            config=settings,
            lib_paths=lib,
        )
    )
    try:
        engine.ruleset(module or None)
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    if not files:
        sys.stderr.write("clearance: error: no documents found\n")
        raise typer.Exit(2)
    job = Job(
        gate_paths=tuple(str(g) for g in gates or []),
        lib_paths=tuple(str(p) for p in lib or []),
        modules=tuple(module or ()) or None,
        doc_type=doc_type,
        profile=profile,
        fail_on=sev.value,
        max_bytes=max_bytes,
        jurisdictions=tuple(wanted) if wanted is not None else None,
        untyped=policy,
        config_path=str(settings.path) if settings.path else None,
        timeout=timeout,
    )

    progress = progress_for(len(files))
    task = None

    def done(out: Outcome) -> None:
        if explain_type and out.report is not None:
            sys.stderr.write(type_explanation(out.report) + "\n")
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
        if executor == "ray":
            from engine.batch_ray import run_ray  # lazily: Ray costs seconds to import and start

            outcomes = run_ray(files, job, address=address, jobs=jobs, on_done=done)
        else:
            outcomes = run(
                files, job, jobs=workers, engine=engine if workers <= 1 else None, on_done=done
            )
    finally:
        if progress is not None:
            progress.stop()

    reports = [o.report for o in outcomes if o.report is not None]
    if reports:
        rendered = formatter.render(reports)
        if output:
            output.write_text(
                rendered + ("" if rendered.endswith("\n") else "\n"), encoding="utf-8"
            )
        else:
            emit(rendered)
    if fmt == "text" and len(outcomes) > 1:
        from rich.console import Console

        from engine.batch import summary_table

        # Piped output (CI logs, grep) has no width to fit: don't squeeze the table into 80.
        Console(width=None if sys.stdout.isatty() else 160).print(summary_table(outcomes))
    raise typer.Exit(combine(o.code for o in outcomes))
