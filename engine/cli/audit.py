"""`clearance audit ...`: query, export, verify and prune the audit log."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from engine.cli.app import app
from engine.errors import UserError

if TYPE_CHECKING:  # imported where used: sqlite-utils is slow to import, and --help needs none
    from engine.audit import AuditLog

audit = typer.Typer(
    help="Query, export, verify and prune the audit log (a SQLite file; opens in Datasette).",
    no_args_is_help=True,
)
app.add_typer(audit, name="audit")

DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="audit database (default: CLEARANCE_AUDIT_DB, CLEARANCE_HOME/audit.db or "
        "~/.local/share/clearance/audit.db)",
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="text or json")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="from this date (YYYY-MM-DD), UTC")]


@contextmanager
def _open(db: Path | None, *, readonly: bool = True) -> Iterator[AuditLog]:
    from engine.audit import AuditLog, audit_db_path

    log = AuditLog(db or audit_db_path(), readonly=readonly)
    try:
        yield log
    finally:
        log.close()


def _check_format(fmt: str, allowed: tuple[str, ...] = ("text", "json")) -> None:
    if fmt not in allowed:
        raise UserError(f"unknown format '{fmt}' (expected one of: {', '.join(allowed)})")


def _since(since: str | None) -> str | None:
    from engine.audit import parse_when

    return parse_when(since) if since else None


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _table(title: str, columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for key, label in columns:
        numeric = key in _NUMERIC
        table.add_column(
            label,
            justify="right" if numeric else "left",
            no_wrap=numeric or key in _NOWRAP,
            min_width=len(label),
        )
    for row in rows:
        table.add_row(*(_cell(key, row.get(key)) for key, _ in columns))
    # Piped output (grep, a file, CI logs) has no width to fit: don't squeeze columns into 80.
    Console(width=None if sys.stdout.isatty() else 200).print(table)


_NUMERIC = {
    "id",
    "failed",
    "passed",
    "evaluated",
    "indeterminate",
    "waived",
    "validations",
    "duration_ms",
    "avg_ms",
    "fail_pct",
    "cache_hits",
    "blocking",
    "not_applicable",
}
_NOWRAP = {"time", "doc", "day", "gate", "verdict"}
_VERDICT_STYLE = {"pass": "green", "fail": "red", "indeterminate": "yellow"}


def _cell(key: str, value: Any) -> str:
    from rich.markup import escape

    if value is None:
        return ""
    if key == "verdict":
        return f"[{_VERDICT_STYLE.get(value, 'white')}]{escape(value)}[/]"
    if key == "time":
        return str(value)[:19].replace("T", " ")
    if key == "duration_ms":
        return f"{value:.1f}"
    if key == "cache_hit":
        return "hit" if value else ""
    return escape(str(value))  # document names are data, not Rich markup


def _with_doc(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "doc": f"{r['doc_name']} {r['doc_sha256'][:12]}"} for r in rows]


_VALIDATION_COLS = [
    ("id", "#"),
    ("time", "time (UTC)"),
    ("doc", "document"),
    ("verdict", "verdict"),
    ("failed", "failed"),
    ("blocking", "blocking"),
    ("duration_ms", "ms"),
    ("cache_hit", "cache"),
    ("principal", "principal"),
]


@audit.command()
def recent(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    db: DbOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """The latest validations, newest first."""
    _check_format(fmt)
    with _open(db) as log:
        rows = log.recent(limit)
    if fmt == "json":
        _json(rows)
    else:
        _table(f"Latest {len(rows)} validations", _VALIDATION_COLS, _with_doc(rows))


def doc_sha256(doc: str) -> str:
    """A path's sha256 (of its bytes), or the hash (prefix) given as is."""
    path = Path(doc)
    if path.is_file():
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    return doc


@audit.command()
def history(
    doc: Annotated[str, typer.Argument(help="a document path, or its sha256 (prefix)")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 100,
    db: DbOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Every validation of one document, newest first, with the gates that did not pass."""
    _check_format(fmt)
    sha = doc_sha256(doc)
    with _open(db) as log:
        rows = log.history(sha, limit)
        for row in rows:
            row["not_passed"] = [
                {
                    "gate": f["gate"],
                    "status": f["status"],
                    "severity": f["severity"],
                    "line": f["line"],
                    "waiver_reason": f["waiver_reason"],
                }
                for f in log.findings(row["id"])
                if f["status"] not in ("pass", "not_applicable")
            ]
    if fmt == "json":
        _json(rows)
        return
    if not rows:
        print(f"no validations recorded for {doc} ({sha})")
        return
    for row in rows:
        row["gates_not_passed"] = ", ".join(
            f"{g['gate']} ({g['status']})" for g in row["not_passed"]
        )
    _table(
        f"History of {sha[:12]}",
        [*_VALIDATION_COLS[:4], ("gates_not_passed", "not passed"), ("principal", "principal")],
        _with_doc(rows),
    )


_GATE_COLS = [
    ("gate", "gate"),
    ("module", "module"),
    ("evaluated", "evaluated"),
    ("passed", "passed"),
    ("failed", "failed"),
    ("indeterminate", "indeterminate"),
    ("waived", "waived"),
    ("not_applicable", "n/a"),
]


@audit.command()
def stats(
    since: SinceOpt = None,
    module: Annotated[str | None, typer.Option("--module", "-m", help="module id")] = None,
    db: DbOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Validations, pass/fail rates and per-gate outcomes."""
    _check_format(fmt)
    with _open(db) as log:
        data = log.stats(since=_since(since), module=module)
    if fmt == "json":
        _json(data)
        return
    scope = (
        " ".join(
            filter(None, [f"module {module}" if module else "", f"since {since}" if since else ""])
        )
        or "all time"
    )
    print(
        f"{scope}: {data['validations']} validations, {data['passed']} passed "
        f"({_rate(data['pass_rate'])}), {data['failed']} failed ({_rate(data['fail_rate'])}), "
        f"{data['indeterminate']} indeterminate"
    )
    if data["by_gate"]:
        _table("By gate", _GATE_COLS, data["by_gate"])


def _rate(r: float | None) -> str:
    return "–" if r is None else f"{100 * r:.1f}%"


@audit.command()
def gates(
    top_failing: Annotated[
        bool, typer.Option("--top-failing", help="only gates that failed, most failures first")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 10,
    since: SinceOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = "text",
) -> None:
    """Per-gate outcomes; with --top-failing, the gates that fail most often."""
    _check_format(fmt)
    with _open(db) as log:
        if top_failing:
            rows = log.top_failing(limit=limit, since=_since(since))
            cols = [
                ("gate", "gate"),
                ("module", "module"),
                ("failed", "failed"),
                ("evaluated", "evaluated"),
                ("fail_pct", "fail %"),
            ]
        else:
            rows = log.stats(since=_since(since))["by_gate"]
            cols = _GATE_COLS
    if fmt == "json":
        _json(rows)
    else:
        _table("Top failing gates" if top_failing else "Gates", cols, rows)


@audit.command()
def trends(since: SinceOpt = None, db: DbOpt = None, fmt: FormatOpt = "text") -> None:
    """Validations per day: passed, failed, indeterminate, cache hits, average duration."""
    _check_format(fmt)
    with _open(db) as log:
        rows = log.trends(since=_since(since))
    if fmt == "json":
        _json(rows)
    else:
        _table(
            "Per day (UTC)",
            [
                ("day", "day"),
                ("validations", "validations"),
                ("passed", "passed"),
                ("failed", "failed"),
                ("indeterminate", "indeterminate"),
                ("cache_hits", "cache hits"),
                ("avg_ms", "avg ms"),
            ],
            rows,
        )


@audit.command()
def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    db: DbOpt = None,
) -> None:
    """Every validation (JSON: with its findings), in chain order."""
    _check_format(fmt, ("csv", "json"))
    with _open(db) as log:
        out = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
        try:
            n = log.export(fmt, out)
        finally:
            if output:
                out.close()
    if output:
        print(f"exported {n} validations to {output}", file=sys.stderr)


@audit.command()
def verify(db: DbOpt = None, fmt: FormatOpt = "text") -> None:
    """Walk the hash chains and check the rollups; name every row that was edited, deleted or
    inserted, and the last good row of a damaged file (exit 1)."""
    _check_format(fmt)
    with _open(db) as log:
        result = log.verify()
    if fmt == "json":
        _json(result.summary())
    elif result.ok:
        print(
            f"OK: {result.validations} validations, {result.waivers} waivers, "
            f"{result.checkpoints} checkpoints, {result.rulesets} gate sources verified; "
            f"rollups match; head #{result.head_id} {result.head_hash}"
        )
    else:
        print(f"FAILED: the audit log does not verify ({len(result.problems)} problem(s)):")
        for problem in result.problems:
            print(f"  {problem}")
        last = (
            f"validations #{result.last_good_id} {result.last_good_hash}"
            if result.last_good_id is not None
            else "none"
        )
        print(f"last good row: {last}")
    if not result.ok:
        raise SystemExit(1)


@audit.command()
def prune(
    before: Annotated[
        str, typer.Option("--before", help="delete validations before this date (YYYY-MM-DD, UTC)")
    ],
    db: DbOpt = None,
) -> None:
    """Delete old validations; a checkpoint keeps the remaining chain verifiable."""
    with _open(db, readonly=False) as log:
        n = log.prune(before)
    print(
        f"pruned {n} validations recorded before {before}" + ("; checkpoint written" if n else "")
    )


@audit.command()
def report(
    html: Annotated[Path, typer.Option("--html", help="write the HTML page here")],
    since: SinceOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="recent validations shown")
    ] = 25,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="walk the hash chain and show the result (seconds on 100,000s of validations)",
        ),
    ] = True,
    db: DbOpt = None,
) -> None:
    """A self-contained HTML report: figures, a trend chart, failing gates, recent validations.
    Exit 1 when the log does not verify (the page then opens with every problem)."""
    from engine.audit_html import render

    with _open(db) as log:
        check = log.verify() if verify else None
        page = render(log, since=_since(since), recent=limit, verify=False, check=check)
    html.write_text(page, encoding="utf-8")
    print(f"wrote {html}")
    if check is not None and not check.ok:
        print(
            f"FAILED: the audit log does not verify ({len(check.problems)} problem(s), "
            "listed at the top of the page); run `clearance audit verify`",
            file=sys.stderr,
        )
        raise SystemExit(1)
