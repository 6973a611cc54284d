"""The Typer application that every subcommand file in ``engine/cli/`` registers itself on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="clearance",
    help="Clearance: validate documents against compliance gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
