"""Batch validation: find documents under folders (globs) and validate them across processes."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from engine.errors import ClearanceError, DocumentError
from engine.ingest import media_type_for
from engine.report import Report

#: precedence when several documents end differently: failures on our side, then input errors,
#: then blocking findings, then blocking undecided checks.
_RANK = {4: 4, 2: 3, 1: 2, 3: 1, 0: 0}


def combine(codes: Iterable[int]) -> int:
    return max(codes, key=lambda c: _RANK.get(c, 5), default=0)


# -- finding documents -----------------------------------------------------------------------


def glob_match(rel: PurePosixPath, pattern: str) -> bool:
    """A glob against a path relative to the folder given: ``*.md`` matches any Markdown file at
    any depth (by name), ``drafts/*`` a path, ``**/x/**`` also at the top level."""
    text = rel.as_posix()
    if fnmatchcase(text, pattern) or fnmatchcase(rel.name, pattern):
        return True
    return pattern.startswith("**/") and glob_match(rel, pattern[3:])


def _excluded(rel: PurePosixPath, patterns: list[str]) -> bool:
    # A pattern naming a folder (``node_modules``, ``drafts``) excludes everything below it.
    parents = [PurePosixPath(*rel.parts[:i]) for i in range(1, len(rel.parts))]
    return any(glob_match(rel, p) or any(glob_match(d, p) for d in parents) for p in patterns)


def collect(
    paths: Iterable[Path], include: list[str] | None = None, exclude: list[str] | None = None
) -> list[Path]:
    """Files as given (always, whatever the globs say); folders searched recursively for
    supported documents, skipping hidden files and folders, filtered by the globs; sorted per
    folder, without duplicates."""
    include, exclude = include or [], exclude or []
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        if not p.is_dir():
            found = [p]
        else:
            found = []
            for f in sorted(p.rglob("*")):
                rel = PurePosixPath(f.relative_to(p).as_posix())
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                if media_type_for(f.name) is None:
                    continue
                if include and not any(glob_match(rel, g) for g in include):
                    continue
                if _excluded(rel, exclude):
                    continue
                found.append(f)
        for f in found:
            key = f.resolve() if f.exists() else f
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def read_manifest(manifest: Path) -> list[Path]:
    """The documents a manifest lists, for runs too large for a command line: ``.jsonl``, one
    JSON string or ``{"path": ...}`` object a line; ``.csv``, a ``path`` column (or the first
    column when there is no such header). Relative paths are taken from the manifest's folder,
    so a manifest moves with its documents."""
    import csv
    import json

    from engine.errors import UserError

    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read manifest {manifest}: {exc}") from None
    names: list[tuple[int, str]] = []
    suffix = manifest.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise UserError(f"{manifest}:{n}: not a JSON line") from None
            if isinstance(item, dict):
                item = item.get("path")
            if not isinstance(item, str) or not item:
                raise UserError(f'{manifest}:{n}: expected a path string or {{"path": ...}}')
            names.append((n, item))
    elif suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        header = [c.strip().lower() for c in rows[0]] if rows else []
        col, start = (header.index("path"), 1) if "path" in header else (0, 0)
        for n, row in enumerate(rows[start:], start + 1):
            if not row or not any(c.strip() for c in row):
                continue
            if col >= len(row) or not row[col].strip():
                raise UserError(f"{manifest}:{n}: no path in column {col + 1}")
            names.append((n, row[col].strip()))
    else:
        raise UserError(
            f"unknown manifest format '{manifest.suffix or manifest.name}' "
            "(expected one of: .csv, .jsonl)"
        )
    base = manifest.parent
    return [base / name for _, name in names]


# -- running ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One document's result: a report, or the error that stopped it."""

    path: Path
    report: Report | None
    error: str | None
    code: int


@dataclass(frozen=True)
class Job:
    """What every document of a run is validated with (picklable, for the workers)."""

    gate_paths: tuple[str, ...] = ()
    lib_paths: tuple[str, ...] = ()  # --lib: library folders searched first by `import NAME`
    modules: tuple[str, ...] | None = None
    doc_type: str | None = None
    profile: bool = False
    fail_on: str = "low"
    max_bytes: int | None = None
    jurisdictions: tuple[str, ...] | None = None
    untyped: str | None = None
    config_path: str | None = None  # the settings file the run was started with, if any
    timeout: float | None = None  # seconds one document may take (reading it included)

    def engine(self) -> Any:
        from engine.api import Engine
        from engine.config import Config, load_config

        kw: dict[str, Any] = {"fail_on": self.fail_on}
        if self.max_bytes is not None:
            kw["max_bytes"] = self.max_bytes
        config = load_config(Path(self.config_path)) if self.config_path else Config()
        return Engine(
            gate_paths=list(self.gate_paths), lib_paths=list(self.lib_paths), config=config, **kw
        )


def validate_one(engine: Any, path: Path, job: Job) -> Outcome:
    """Validate one document; a document that cannot be read is an outcome (exit 2), not an
    exception; nor is one stopped at its time limit (exit 3: it could not be decided, so it
    never passes). Failures on our side (:class:`ClearanceError`) propagate."""
    from engine.budget import Deadline, DeadlineExceeded, deadline_scope

    try:
        with deadline_scope(Deadline.after(job.timeout) if job.timeout else None):
            report = engine.validate(
                path,
                modules=list(job.modules) if job.modules else None,
                doc_type=job.doc_type,
                profile=job.profile,
                jurisdictions=(list(job.jurisdictions) if job.jurisdictions is not None else None),
                untyped=job.untyped,
            )
    except DocumentError as exc:
        return Outcome(path, None, str(exc), 2)
    except DeadlineExceeded as exc:
        return Outcome(path, None, f"{path}: {exc}; not decided", 3)
    return Outcome(path, report, None, report.exit_code)


# Worker state: one engine per process, built once by the pool's initializer.
_worker_engine: Any = None
_worker_error: str | None = None
_worker_parent: int | None = None

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Make this worker die with the process that started it. A pool's workers outlive a
    parent killed with SIGKILL (nothing runs to stop them) and would go on validating, and
    writing audit rows for verdicts nobody receives. On Linux the kernel sends SIGKILL when
    the parent goes (PR_SET_PDEATHSIG); elsewhere, and for a parent that died before the
    request took effect, ``_work`` checks the parent before each document."""
    global _worker_parent
    _worker_parent = parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the check in _work still holds
            pass
    _exit_if_orphaned()


def _exit_if_orphaned() -> None:
    if _worker_parent is not None and os.getppid() != _worker_parent:
        os._exit(1)  # the parent is gone: nobody will read this worker's results


def worker_engine(job: Job) -> tuple[Any, str | None]:
    """A worker's engine, its gates compiled now (every worker would otherwise pay for it in
    its first document); or the reason it could not be built (e.g. the audit log cannot be
    opened), which each of its documents then reports instead of crashing the worker."""
    try:
        engine = job.engine()
        engine.ruleset(list(job.modules) if job.modules else None)
    except ClearanceError as exc:
        return None, str(exc)
    return engine, None


def work_with(
    engine: Any, error: str | None, path: str, job: Job
) -> tuple[str, str | None, str | None, int]:
    """One document in a worker (a pool process or a Ray actor). The report travels back as
    JSON (the contract), not as a pickle."""
    if error is not None:
        return path, None, error, 4
    try:
        out = validate_one(engine, Path(path), job)
    except ClearanceError as exc:
        return path, None, str(exc), exc.exit_code
    return path, out.report.model_dump_json() if out.report else None, out.error, out.code


def outcome_of(path: Path, blob: str | None, error: str | None, code: int) -> Outcome:
    """The parent's side of :func:`work_with`."""
    return Outcome(path, Report.model_validate_json(blob) if blob else None, error, code)


def _init_worker(job: Job, parent: int | None = None) -> None:
    global _worker_engine, _worker_error
    if parent is not None:
        _die_with_parent(parent)
    _worker_engine, _worker_error = worker_engine(job)


def _work(path: str, job: Job) -> tuple[str, str | None, str | None, int]:
    """Runs in a pool worker."""
    _exit_if_orphaned()
    return work_with(_worker_engine, _worker_error, path, job)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(
    files: list[Path],
    job: Job,
    *,
    jobs: int | None = None,
    engine: Any = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Validate ``files``; outcomes in the order given.

    One document, or ``jobs=1``, runs here with ``engine`` (or one built from ``job``); more run
    in a pool of worker processes that each build their engine once. The audit log is written
    by whichever process validates a document, exactly once; this process writes nothing for
    documents validated in the pool. ``on_done`` sees each outcome as it completes."""
    workers = min(jobs or default_jobs(), len(files))
    if workers <= 1:
        engine = engine if engine is not None else job.engine()
        outcomes = []
        for f in files:
            try:
                out = validate_one(engine, f, job)
            except ClearanceError as exc:
                if len(files) == 1:
                    raise  # one document: exactly as `clearance validate FILE` always did
                out = Outcome(f, None, str(exc), exc.exit_code)
            outcomes.append(out)
            if on_done:
                on_done(out)
        return outcomes

    # fork is cheap (no re-import per worker) and safe here: the CLI starts no threads (its
    # progress bar has no refresh thread), so no lock can be held at fork time.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    results: dict[int, Outcome] = {}
    # The workers are forked by this thread, which waits for them below: PR_SET_PDEATHSIG
    # (which follows the forking thread, not the process) fires only when this process dies.
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(job, os.getpid())
    ) as pool:
        futures: dict[Future, int] = {
            pool.submit(_work, str(f), job): i for i, f in enumerate(files)
        }
        from concurrent.futures import as_completed

        for fut in as_completed(futures):
            i = futures[fut]
            _, blob, error, code = fut.result()
            out = outcome_of(files[i], blob, error, code)
            results[i] = out
            if on_done:
                on_done(out)
    return [results[i] for i in range(len(files))]


# -- presenting ------------------------------------------------------------------------------


def summary_table(outcomes: list[Outcome]) -> Any:
    """A Rich table: one row per document with its verdict, failed and blocking gates, time."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{len(outcomes)} documents", title_justify="left")
    table.add_column("document", overflow="fold")
    table.add_column("verdict", no_wrap=True)
    for col in ("failed", "blocking", "ms"):
        table.add_column(col, justify="right", no_wrap=True)
    style = {
        "pass": "green",
        "fail": "red",
        "indeterminate": "yellow",
        "review": "yellow",
        "error": "magenta",
    }
    for o in outcomes:
        r = o.report
        verdict = r.verdict if r else "error"
        table.add_row(
            escape(str(o.path)),
            f"[{style[verdict]}]{verdict}[/]",
            str(r.summary.failed) if r else "",
            str(r.summary.blocking) if r else "",
            f"{r.ms:.1f}" if r else "",
        )
    counts = {
        v: sum(1 for o in outcomes if (o.report.verdict if o.report else "error") == v)
        for v in style
    }
    table.caption = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    return table


def progress_for(total: int) -> Any:
    """A Rich progress bar on stderr when stderr is a terminal and there is more than one
    document; else None. It redraws only when told (no refresh thread), so worker processes
    are never forked while another thread holds a lock."""
    if total < 2 or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("validating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    )
