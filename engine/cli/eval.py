"""`clearance eval`: measure gate accuracy on labelled corpora, GDPR-T-200 and the PII span set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.cli._common import GatesOpt, gate_file_errors, make_engine
from engine.cli.app import app
from engine.errors import GateFileError, UserError

FORMATS = ("text", "json")


def _provider(name: str | None, deterministic_only: bool) -> Any:
    from engine.providers.registry import make_provider

    if deterministic_only:
        if name and name != "none":
            raise UserError("--deterministic-only and --provider cannot be combined")
        return make_provider("none")
    try:
        return make_provider(name)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _offline_without_heads() -> Any:
    from engine.providers.offline import OfflineProvider

    return OfflineProvider(heads={})


@app.command("eval")
def eval_command(
    corpora: Annotated[
        list[Path] | None,
        typer.Argument(
            help="labelled corpus folders (each with a labels.json)", show_default=False
        ),
    ] = None,
    t200: Annotated[
        Path | None,
        typer.Option(
            "--t200", help="GDPR-Transparency-200 evaluation file, e.g. data/eval/gdpr-t200.toml"
        ),
    ] = None,
    entities: Annotated[
        Path | None,
        typer.Option(
            "--entities",
            help="labelled PII/secret span set (JSON lines), e.g. data/pii-eval/entities.jsonl",
        ),
    ] = None,
    heldout: Annotated[
        Path | None,
        typer.Option(
            "--heldout",
            help="held-out verdict set (labels.json listing type, jurisdiction, compliant, cite), "
            "e.g. data/corpus/frozen: blocking false alarms and missed defects",
        ),
    ] = None,
    deterministic_only: Annotated[
        bool, typer.Option("--deterministic-only", help="disable semantic checks (provider 'none')")
    ] = False,
    provider: Annotated[
        str | None, typer.Option("--provider", help="semantic provider (default: as for validate)")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="only the first N documents of GDPR-T-200 (sorted by name)"
        ),
    ] = None,
    cv: Annotated[
        bool,
        typer.Option(
            "--cv",
            help="GDPR-T-200 with the offline provider, 5-fold cross-validated by document: "
            "each fold judged by trained heads fitted on the other folds",
        ),
    ] = False,
    no_heads: Annotated[
        bool,
        typer.Option("--no-heads", help="offline provider by similarity only (no trained heads)"),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no per-document mismatch list")
    ] = False,
    gates: list[Path] = GatesOpt,
) -> None:
    """Per-gate precision, recall and F1 (positive class: the gate fails) on labelled corpora;
    per-requirement balanced accuracy on GDPR-T-200; per-type span scores for the detectors.
    Indeterminate outcomes are counted apart, never as pass. Exit 2 only for usage errors."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}' (expected one of: {', '.join(FORMATS)})")
    corpora = corpora or []
    if not corpora and t200 is None and entities is None and heldout is None:
        raise UserError(
            "give labelled corpus folders, --t200 FILE, --entities FILE or --heldout DIR"
        )
    out: dict[str, Any] = {}
    from rich.console import Console

    # tables go to stdout; progress to stderr so that `--format json` stays parseable
    # piped output is not squeezed to 80 columns (the T-200 table needs about 150); a terminal
    # keeps its width, and the tables wrap their name columns rather than hide numbers
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    progress_console = Console(stderr=True)
    show_progress = fmt == "text" and sys.stderr.isatty()

    def progress(name: str) -> None:
        if show_progress:  # one line, overwritten per document and blanked before each table
            width = max(20, progress_console.width - 1)
            progress_console.print(f"  {name}"[:width].ljust(width), end="\r", markup=False)

    if (cv or no_heads) and (deterministic_only or (provider or "offline") != "offline"):
        raise UserError("--cv and --no-heads are for the offline provider")
    if cv and (t200 is None or corpora or entities is not None):
        raise UserError("--cv evaluates GDPR-T-200 only: give --t200 FILE and nothing else")
    needs_engine = (bool(corpora) or t200 is not None or heldout is not None) and not cv
    engine = None
    if needs_engine:
        chosen = _offline_without_heads() if no_heads else _provider(provider, deterministic_only)
        engine = make_engine(gates, cache=None, audit=None, provider=chosen)
    try:
        if heldout is not None:
            from engine.evaluation.heldout import measure

            if not (heldout / "labels.json").is_file():
                raise UserError(f"{heldout}: no labels.json (a held-out verdict set)")
            held = measure(engine, heldout)
            out["heldout"] = held.as_dict()
            if fmt == "text":
                console.print(held.table(), markup=False)
                for mode in ("told", "newcomer"):
                    errors = held.errors(mode)
                    console.print(
                        f"\n{mode}: {len(errors)} documents judged wrong or sent to review",
                        markup=False,
                    )
                    if not quiet:
                        console.print("\n".join(errors), markup=False, soft_wrap=True)
        if corpora:
            from engine.evaluation.gates import evaluate_corpus, render_corpus

            results = [evaluate_corpus(c, engine, progress) for c in corpora]
            progress("")
            out["corpora"] = [r.as_dict() for r in results]
            if fmt == "text":
                for r in results:
                    render_corpus(r, console, show_mismatches=not quiet)
        if t200 is not None:
            from engine.evaluation.gates import evaluate_t200, load_t200_config, render_t200

            config = load_t200_config(t200)
            if cv:
                from engine.evaluation.gates import t200_cross_validated

                res, head_rows = t200_cross_validated(
                    config,
                    lambda p: make_engine(gates, cache=None, audit=None, provider=p),
                    limit=limit,
                    progress=progress,
                )
                out["heads_cv"] = head_rows
            else:
                res = evaluate_t200(
                    config,
                    engine,
                    deterministic_only=deterministic_only,
                    limit=limit,
                    progress=progress,
                )
            progress("")
            out["t200"] = res.as_dict()
            if fmt == "text":
                render_t200(res, console)
                if not quiet and res.errors:
                    console.print(
                        f"{len(res.errors)} document(s) with a wrong prediction "
                        "(+R: said disclosed, -R: said not disclosed); --format json "
                        "lists them all"
                    )
    except GateFileError as exc:
        raise typer.Exit(gate_file_errors(exc)) from None
    if entities is not None:
        from engine.evaluation.entities import evaluate_entities, format_table

        ent = evaluate_entities(entities)
        out["entities"] = ent.as_dict()
        if fmt == "text":
            console.print(format_table(ent), markup=False)
    if fmt == "json":
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
