"""`clearance lsp`: the language server for gate files, over stdio (see docs/editor.md)."""

from __future__ import annotations

import typer

from engine.cli.app import app


@app.command()
def lsp(
    stdio: bool = typer.Option(
        True, "--stdio", help="talk LSP over stdin/stdout (the only transport; editors pass it)"
    ),
) -> None:
    """Run the language server for .gates files: diagnostics, hover, completion, go to
    definition, quick fixes. Started by an editor, not by hand."""
    try:
        from engine.lsp.server import main
    except ImportError as exc:  # pygls is a dependency; a broken install says so plainly
        raise typer.BadParameter(f"the language server needs pygls: {exc}") from None
    main()
