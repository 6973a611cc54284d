"""`clearance pii PATH`: list the PII/PHI and secrets the gates' detectors find, masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app
from engine.errors import UserError

FORMATS = ("text", "json")
ONLY = ("pii", "secret")


def _kinds(only: str | None) -> tuple[str, ...]:
    if only is None:
        return ONLY
    if only not in ONLY:
        raise UserError(f"unknown --only '{only}' (expected one of: {', '.join(ONLY)})")
    return (only,)


@app.command("pii")
def pii_command(
    path: Annotated[
        Path | None, typer.Argument(help="document to scan", show_default=False)
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    only: Annotated[
        str | None, typer.Option("--only", help="only pii (PII/PHI) or only secret detectors")
    ] = None,
    eval_path: Annotated[
        Path | None,
        typer.Option(
            "--eval",
            help="instead of scanning, score the detectors on a labelled JSON-lines set "
            "(e.g. data/pii-eval/entities.jsonl) and print per-type precision/recall/F1",
        ),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--types",
            help="with --eval: score only these entity types (comma-separated, e.g. "
            "PERSON or PHONE_NUMBER,FAX_NUMBER)",
        ),
    ] = None,
) -> None:
    """List detected entities (type, span, line:col, score, masked value). Values are never
    printed in full: PII is masked and secrets show at most a known prefix and the length."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}' (expected one of: {', '.join(FORMATS)})")
    kinds = _kinds(only)
    if eval_path is not None:
        wanted = tuple(t.strip() for t in types.split(",") if t.strip()) if types else None
        _evaluate(eval_path, fmt, kinds, wanted)
        return
    if types is not None:
        raise UserError("--types only applies with --eval")
    if path is None:
        raise UserError("give a document PATH to scan, or --eval FILE to score the detectors")

    from engine.ingest import load_document
    from gates.redact import detect_all

    doc = load_document(path)
    entities = []
    for m in detect_all(doc.text, kinds):
        line, col = doc.line_col(m.start)
        entities.append(
            {
                "type": m.detail,
                "start": m.start,
                "end": m.end,
                "line": line,
                "col": col,
                "score": round(m.score, 3),
                "text": m.display or "",
            }
        )
    if fmt == "json":
        print(
            json.dumps({"document": doc.name, "entities": entities}, indent=2, ensure_ascii=False)
        )
        return
    if not entities:
        print(f"{doc.name}: no PII/PHI or secrets found")
        return
    for e in entities:
        print(f"{doc.name}:{e['line']}:{e['col']}  {e['type']:<20} {e['score']:.2f}  {e['text']}")
    print(f"{len(entities)} entit{'y' if len(entities) == 1 else 'ies'} found")


def _evaluate(
    path: Path, fmt: str, kinds: tuple[str, ...], types: tuple[str, ...] | None = None
) -> None:
    from engine.evaluation.entities import evaluate_entities, format_table

    result = evaluate_entities(path, kinds, types)
    if fmt == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_table(result))
