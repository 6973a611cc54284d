"""`clearance keys create|list|revoke`: API keys for the HTTP server (stored hashed)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from engine.cli.app import app
from engine.keys import ROLES, KeyStore

keys = typer.Typer(
    help="Manage API keys for `clearance serve` (stored hashed in the audit database).",
    no_args_is_help=True,
)
app.add_typer(keys, name="keys")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="audit database holding the keys, a SQLite file or a postgresql:// URL "
        "(default: as for `clearance audit`)",
    ),
]


@keys.command("create")
def create(
    role: Annotated[str, typer.Option("--role", help=f"one of: {', '.join(ROLES)}")],
    name: Annotated[str, typer.Option("--name", help="who uses the key (the audit principal)")],
    db: DbOpt = None,
) -> None:
    """Create a key and print it once: it cannot be shown again."""
    store = KeyStore(db)
    try:
        key, raw = store.create(name, role)
    finally:
        store.close()
    print(raw)
    # The secret goes alone to stdout (scripts capture it); the note to stderr.
    sys.stderr.write(
        f"key #{key.id} '{key.name}' ({key.role}) created; it is shown only once, store it now\n"
    )


@keys.command("list")
def list_(
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    db: DbOpt = None,
) -> None:
    """List keys (id, name, role, prefix, created, revoked); never the secrets."""
    store = KeyStore(db)
    try:
        rows = store.list_keys()
    finally:
        store.close()
    if fmt == "json":
        print(json.dumps([k.__dict__ for k in rows], indent=2))
        return
    if fmt != "text":
        raise typer.BadParameter("must be text or json", param_hint="--format")
    if not rows:
        print("no API keys (create one with `clearance keys create --role R --name N`)")
    for k in rows:
        state = f"revoked {k.revoked}" if k.revoked else "active"
        print(f"{k.id:>4}  {k.name:<24} {k.role:<9} {k.key_prefix}…  created {k.created}  {state}")


@keys.command("revoke")
def revoke(
    key_id: Annotated[int, typer.Argument(help="the key's id (see `clearance keys list`)")],
    db: DbOpt = None,
) -> None:
    """Revoke a key; requests using it get 401 from then on."""
    store = KeyStore(db)
    try:
        key = store.revoke(key_id)
    finally:
        store.close()
    print(f"key #{key.id} '{key.name}' revoked {key.revoked}")
