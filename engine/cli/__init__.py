"""The ``clearance`` command: a thin shell over :mod:`engine.api`. One file per subcommand."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from engine.cli.app import app
from engine.errors import ClearanceError, UserError

_loaded = False


def load_commands() -> None:
    """Import every subcommand module in this package so each registers itself on ``app``."""
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name not in ("app",) and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code. The one place where errors become exit codes (see
    docs/design/errors.md): your input is wrong (UserError) 2, Clearance failed (ServiceError,
    or a bare ClearanceError) 4, a usage error click's own code, interrupted 130, a bug 70."""
    try:
        load_commands()
        # standalone_mode=False: click returns typer.Exit's code instead of raising it
        rc = app(args=argv, prog_name="clearance", standalone_mode=False)
    except SystemExit as exc:  # typer raises this for --help and explicit exits
        return int(exc.code or 0)
    except UserError as exc:  # the input is wrong: say what to fix
        print(f"clearance: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ClearanceError as exc:  # Clearance failed (storage, provider): not the input
        print(f"clearance: failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("clearance: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # usage errors and anything unexpected: one line, no traceback
        # Typer vendors its own click, so its exceptions are matched by shape, not class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        if isinstance(exc, typer.Abort):
            return 130
        print(
            f"clearance: internal error: {type(exc).__name__}: {exc} "
            "(set CLEARANCE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        import os

        if os.environ.get("CLEARANCE_DEBUG"):
            raise
        return 70
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
