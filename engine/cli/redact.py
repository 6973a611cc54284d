"""`clearance redact PATH`: write a copy of a document with PII/PHI and secrets redacted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app
from engine.errors import UserError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.samefile(b))
    except OSError:
        return False


@app.command("redact")
def redact_command(
    path: Annotated[Path, typer.Argument(help="document to redact (never modified)")],
    operator: Annotated[
        str,
        typer.Option(
            "--operator",
            "-o",
            help="replace ([TYPE]), mask (keep a few characters of PII; "
            "secrets fully) or hash (keyed SHA-256 prefix; salt from CLEARANCE_REDACT_SALT)",
        ),
    ] = "replace",
    output: Annotated[
        Path | None,
        typer.Option("--output", help="write here instead of stdout (must not be the input file)"),
    ] = None,
    only: Annotated[
        str | None, typer.Option("--only", help="only pii (PII/PHI) or only secret detectors")
    ] = None,
) -> None:
    """Redact every detected value, using the same detectors as the pii(...) and secret(...)
    gates. Overlapping detections are merged so no part of a value survives."""
    from engine.cli.pii import _kinds
    from engine.ingest import load_document
    from gates.redact import OPERATORS, SALT_ENV, find_all, redact, resolve_salt

    if operator not in OPERATORS:
        raise UserError(f"unknown operator '{operator}' (expected one of: {', '.join(OPERATORS)})")
    if output is not None and _same_file(path, output):
        raise UserError(
            f"{output}: refusing to overwrite the input document; choose another --output"
        )
    kinds = _kinds(only)
    doc = load_document(path)
    salt = None
    if operator == "hash":
        salt, generated = resolve_salt()
        if generated:
            print(
                f"clearance: note: {SALT_ENV} is not set; hashing with a random salt for this "
                "run only, so hashes will not match other runs",
                file=sys.stderr,
            )
    matches = find_all(doc.text, kinds)
    text = redact(doc.text, matches, operator, salt=salt)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{output}: cannot write: {exc.strerror}") from None
    print(
        f"redacted {len({(m.start, m.end) for m in matches})} span(s) of {doc.name} -> {output}",
        file=sys.stderr,
    )
