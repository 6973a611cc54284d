"""`clearance cache stats|clear`: inspect and empty the result cache (disk, or Redis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from engine.cli.app import app
from engine.errors import UserError

if TYPE_CHECKING:  # diskcache and redis are slow to import; --help needs neither
    from engine.cache import JsonCache

cache = typer.Typer(help="Inspect or empty the result cache.", no_args_is_help=True)
app.add_typer(cache, name="cache")

DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="cache directory (default: CLEARANCE_CACHE_DIR, CLEARANCE_HOME/cache or "
        "~/.cache/clearance)",
    ),
]

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Redis/Valkey cache URL (default: CLEARANCE_CACHE_URL; when neither is set, the "
        "disk cache)",
    ),
]


def _open(directory: Path | None, url: str | None) -> JsonCache:
    """The cache named by --dir or --url, else the one validations use."""
    import os

    url = url or (None if directory else os.environ.get("CLEARANCE_CACHE_URL", "").strip())
    if url:
        from engine.cache_redis import RedisCache

        return RedisCache(url)
    from engine.cache import DiskCache

    return DiskCache(directory)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


@cache.command()
def stats(
    directory: DirOpt = None,
    url: UrlOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Entries, size on disk, hits, misses and hit rate (counted across processes)."""
    if fmt not in ("text", "json"):
        raise UserError(f"unknown format '{fmt}' (expected one of: text, json)")
    c = _open(directory, url)
    try:
        s = c.stats()
    finally:
        c.close()
    if fmt == "json":
        print(
            json.dumps(
                {
                    "directory": s.directory,
                    "entries": s.entries,
                    "size_bytes": s.size_bytes,
                    "size_limit": s.size_limit,
                    "hits": s.hits,
                    "misses": s.misses,
                    "hit_rate": s.hit_rate,
                    "policy": s.policy,
                },
                indent=2,
            )
        )
        return
    rate = "–" if s.hit_rate is None else f"{100 * s.hit_rate:.1f}%"
    if s.policy is None:
        size = f"{_size(s.size_bytes)} (limit {_size(s.size_limit)})"
    else:  # Redis: the server's memory, shared with anything else it holds
        limit = _size(s.size_limit) if s.size_limit else "none"
        size = f"{_size(s.size_bytes)} server memory (maxmemory {limit}, policy {s.policy})"
    print(
        f"cache     {s.directory}\n"
        f"entries   {s.entries}\n"
        f"size      {size}\n"
        f"hits      {s.hits}\n"
        f"misses    {s.misses}\n"
        f"hit rate  {rate}"
    )


@cache.command()
def clear(directory: DirOpt = None, url: UrlOpt = None) -> None:
    """Remove every cached report and answer, and reset the hit/miss counters."""
    c = _open(directory, url)
    try:
        n = c.clear()
    finally:
        c.close()
    print(f"removed {n} cache entries from {c.directory}")
