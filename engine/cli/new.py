"""`clearance new gate [NAME]`: start a gate file from the template, every field explained."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import typer

from engine.cli.app import app
from engine.errors import UserError

#: the template every new gate file starts from (shipped with the package, beside the grammar)
TEMPLATE = files("dsl") / "TEMPLATE.gates"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

new_app = typer.Typer(help="Start new authoring files from templates.", no_args_is_help=True)
app.add_typer(new_app, name="new")


@new_app.command("gate")
def gate(
    name: str = typer.Argument("my_gate", help="the gate's name (snake_case); also the file name"),
    code: str = typer.Option("ORG-1", "--code", help="the gate's code, e.g. ACME-7"),
    folder: Path = typer.Option(
        Path("."), "--dir", help="where to write NAME.gates (a module folder)"
    ),
) -> None:
    """Write NAME.gates from the template (every field explained), ready for `clearance lint`."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"'{name}' is not a gate name: use letters, digits and underscores, e.g. dpo_contact"
        )
    from dsl.compile import GATE_CODE_RE  # the compiler's own rule (lark stays out of --help)

    if not GATE_CODE_RE.fullmatch(code):
        raise UserError(
            f"'{code}' is not a gate code: a capital letter, capitals and digits, then parts "
            "joined by '-', '.' or '_', e.g. ACME-7, PCI-3.4, HIPAA-164.514(b)"
        )
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)  # a new module's folder
    target = folder / f"{name}.gates"
    if target.exists():
        raise UserError(f"{target} already exists; choose another name or delete it")
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.replace("gate ORG-1 my_gate {", f"gate {code} {name} {{", 1)
    target.write_text(text, encoding="utf-8")
    print(f"created {target}: edit it, then run `clearance lint {target}`")
