"""Options and helpers shared by the CLI subcommands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from engine.errors import GateFileError

if TYPE_CHECKING:  # the engine is imported when a command builds one, not for --help
    from engine.api import Engine

GatesOpt = typer.Option(None, "--gates", "-g", help="extra gate file or module folder (repeatable)")
LibOpt = typer.Option(
    None,
    "--lib",
    help="library folder for `import NAME` (repeatable; searched before CLEARANCE_LIB_PATH, "
    "lib-path in clearance.toml, the lib/ folders beside the modules and the built-in library)",
)
ModuleOpt = typer.Option(
    None, "--module", "-m", help="module id to apply (repeatable; default all)"
)


def make_engine(gates: list[Path] | None = None, **kw: Any) -> Engine:
    """The engine a command runs on (imported here: the gate compiler and the check kinds
    are slow to import, and `--help` needs none of them)."""
    from engine.api import Engine

    return Engine(gate_paths=gates or [], **kw)


def emit(text: str) -> None:
    """Write a rendered report to stdout. The formatters already show control characters in
    names escaped; this is the last line of defence for anything else (document text in an HTML
    report, say): no ESC, carriage return or bidi override reaches the terminal, only newlines
    and tabs go out as they are."""
    if text:
        text = terminal_safe(text)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but newline and tab shown escaped (see
    :func:`engine.formatters.base.shown`)."""
    from engine.formatters.base import shown_lines

    return shown_lines(text)


def gate_file_errors(exc: GateFileError) -> int:
    """Print rendered diagnostics for gate-file errors; exit code 2."""
    sys.stderr.write(str(exc) + "\n")
    n = sum(1 for d in exc.diagnostics if d.severity == "error")
    sys.stderr.write(f"clearance: {n} error(s) in gate files\n")
    return 2
