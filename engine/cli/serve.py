"""`clearance serve`: run the HTTP API (FastAPI on uvicorn)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from engine.cli._common import GatesOpt
from engine.cli.app import app


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port")] = 8080,
    workers: Annotated[
        int,
        typer.Option("--workers", "-w", min=1, help="worker processes (each loads its own engine)"),
    ] = 1,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="accept requests without an API key (local development only)"
        ),
    ] = False,
    # Defaults live in engine.server.Settings (not imported here: FastAPI is slow to import
    # and every other command would pay for it).
    max_body: Annotated[
        int | None,
        typer.Option("--max-body", help="largest request body in bytes [default: 8 MiB]"),
    ] = None,
    max_document: Annotated[
        int | None,
        typer.Option("--max-document", help="largest document in bytes [default: 5 MiB]"),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="seconds one validation may take: past it the client gets 504 and "
            "the work stops at its next check [default: 30]",
        ),
    ] = None,
    max_inflight: Annotated[
        int | None,
        typer.Option(
            "--max-inflight",
            help="validations admitted and not finished per worker (queued, "
            "running, or stopping after a 504) before 503 [default: 64]",
        ),
    ] = None,
    retry_after: Annotated[
        int | None,
        typer.Option(
            "--retry-after", min=0, help="seconds a 503 asks clients to wait [default: 2]"
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="validations running at once per worker (CPU-bound: more "
            "only time-slice) [default: 4]",
        ),
    ] = None,
    gates: list[Path] = GatesOpt,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="settings file [default: CLEARANCE_CONFIG, else the nearest "
            "clearance.toml or [tool.clearance]]",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="log every request")
    ] = True,
) -> None:
    """Serve the HTTP API: POST /v1/validate, /v1/modules, /v1/gates/{code}, /v1/audit/...,
    /v1/waivers; OpenAPI docs at /docs. Clients authenticate with keys from `clearance keys`."""
    import uvicorn

    # Workers are separate processes that import the app by name: settings travel in the
    # environment, which they inherit.
    env = {
        "CLEARANCE_SERVE_NO_AUTH": "1" if no_auth else "",
        "CLEARANCE_SERVE_GATES": os.pathsep.join(str(g.resolve()) for g in gates or []),
    }
    for var, value in (
        ("MAX_BODY", max_body),
        ("MAX_DOCUMENT", max_document),
        ("TIMEOUT", timeout),
        ("MAX_INFLIGHT", max_inflight),
        ("THREADS", threads),
        ("RETRY_AFTER", retry_after),
    ):
        if value is not None:
            env[f"CLEARANCE_SERVE_{var}"] = str(value)
    if config is not None:
        if not config.is_file():
            sys.stderr.write(f"clearance: error: {config}: no such settings file\n")
            raise typer.Exit(2)
        env["CLEARANCE_CONFIG"] = str(config.resolve())
    os.environ.update(env)
    if no_auth:
        where = (
            ""
            if host in ("127.0.0.1", "localhost", "::1")
            else (f" AND LISTENING ON {host}, NOT ONLY ON LOOPBACK")
        )
        sys.stderr.write(
            f"clearance: WARNING: --no-auth: authentication is DISABLED{where}; "
            "for local development only\n"
        )
    if workers > 1:
        sys.stderr.write(_shared_state_note(workers))
    extra = {}
    for name, module in (("loop", "uvloop"), ("http", "httptools")):
        try:
            __import__(module)
            extra[name] = module
        except ImportError:  # optional speed-ups; uvicorn's pure-Python fallbacks work
            pass
    uvicorn.run(
        "engine.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        proxy_headers=False,
        **extra,  # type: ignore[arg-type]
    )


def _shared_state_note(workers: int) -> str:
    """What N worker processes share, said once at start-up (what is supported, and the limit)."""
    from engine.audit.records import audit_disabled, audit_location, is_url, shown_location
    from engine.errors import ClearanceError

    try:
        where = audit_location()
    except ClearanceError as exc:  # a malformed CLEARANCE_AUDIT_URL: say so before forking
        sys.stderr.write(f"clearance: error: {exc}\n")
        raise typer.Exit(2) from exc
    cache = os.environ.get("CLEARANCE_CACHE_URL", "").strip()
    cache_note = (
        "the Redis cache" if cache else "the disk cache (one folder: processes of one host only)"
    )
    if audit_disabled():
        audit_note = "no audit log (CLEARANCE_NO_AUDIT)"
    elif is_url(where):
        audit_note = f"the PostgreSQL audit log {shown_location(where)}"
    else:
        # Supported: SQLite in WAL mode takes writers from several processes of one host; each
        # worker's group commit waits for the file's write lock, so the chain stays one chain.
        # Not supported: the same file from several hosts (a network filesystem's locks).
        audit_note = (
            f"the SQLite audit log {where} (one host only; for several hosts set "
            "CLEARANCE_AUDIT_URL=postgresql://...)"
        )
    return f"clearance: {workers} workers share {audit_note} and {cache_note}\n"
