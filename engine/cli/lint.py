"""`clearance lint [PATH...]`: compiler diagnostics for gate files, examples included."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli._common import LibOpt, make_engine
from engine.cli.app import app

if TYPE_CHECKING:  # the CLI imports the engine lazily where it can
    from engine.api import Engine


def module_ids_for(engine: Engine, paths: list[Path]) -> list[str] | None:
    """The module ids found under ``paths`` (None = every built-in module)."""
    if not paths:
        return None
    from engine.loader import discover

    found, _ = discover(paths)
    return sorted(found)


def engine_for(paths: list[Path], lib: list[Path] | None = None) -> Engine:
    """An engine for the gate files under ``paths`` (the built-in modules when none), whose
    imports search ``lib``, then the library path of the environment and the settings file."""
    from engine.config import Config, resolve_config
    from engine.loader import BUILTIN_DIR

    builtin = any(p.resolve() == BUILTIN_DIR or BUILTIN_DIR in p.resolve().parents for p in paths)
    extra = [p for p in paths if p.resolve() != BUILTIN_DIR]
    # of the settings file, only its library path applies to authoring commands
    settings = Config(lib_path=resolve_config().lib_path)
    return make_engine(
        extra,
        include_builtin=builtin or not paths,
        cache=None,
        audit=None,
        config=settings,
        lib_paths=lib or [],
    )


@app.command()
def lint(
    paths: list[Path] = typer.Argument(
        None, help="gate files or module folders (default: built-in)"
    ),
    no_examples: bool = typer.Option(False, "--no-examples", help="skip running inline examples"),
    lib: list[Path] = LibOpt,
) -> None:
    """Check gate files: syntax, names, regexes, citations, examples. Exit 2 on any error."""
    paths = paths or []
    engine = engine_for(paths, lib)
    ids = module_ids_for(engine, paths)
    diags, sources = engine.lint(ids, run_examples=not no_examples)
    for d in diags:
        sys.stderr.write(d.render(sources.get(d.file)) + "\n\n")
    sys.stderr.flush()
    errors = sum(1 for d in diags if d.severity == "error")
    warnings = len(diags) - errors
    # trained heads (data/heads) whose gate's question changed: answered by similarity meanwhile
    from engine.providers.heads import stale_heads

    stale = stale_heads(engine.ruleset(ids).gates) if not errors else []
    for w in stale:
        sys.stderr.write(f"warning[HEAD001]: {w}\n  = help: run `clearance train` to retrain\n\n")
    warnings += len(stale)
    n_gates = sum(len(m.gates) for m in engine.list_modules()) if not errors else None
    summary = f"{errors} error(s), {warnings} warning(s)"
    if n_gates is not None:
        summary += f" in {n_gates} gates"
    print(f"clearance lint: {summary}")
    raise typer.Exit(2 if errors else 0)
