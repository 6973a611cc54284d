"""Plain descriptions of modules and gates, shared by the CLI and the HTTP API."""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Any

from dsl.compile import Gate, Module


def module_relative(file: str, module: Module | None) -> str:
    """``file`` relative to its module's folder (``notice.gates``), never the absolute path
    where the server keeps it: the API must not map the server's disk for its clients."""
    dirs = [os.path.dirname(os.path.abspath(f)) for f in (module.files if module else [])]
    if dirs:
        try:
            return PurePath(
                os.path.relpath(os.path.abspath(file), os.path.commonpath(dirs))
            ).as_posix()
        except ValueError:  # another drive (Windows): fall through to the bare name
            pass
    return PurePath(file).name


def gate_info(g: Gate, source: bool = False, module: Module | None = None) -> dict[str, Any]:
    info = {
        "code": g.code,
        "name": g.name,
        "module": g.module,
        "title": g.title,
        "cite": list(g.cite),
        "severity": g.severity.value,
        "doc_types": sorted(g.applies) if g.applies is not None else None,
        "on_indeterminate": g.on_indeterminate.value,
        "fix": g.fix,
        "tags": list(g.tags),
        "version": g.version,
        "examples": len(g.examples),
        "semantic": bool(g.semantic_nodes()),
        "file": module_relative(g.file, module),
        "line": g.loc.line,
    }
    if source:
        info["source"] = g.source
    return info


def module_info(m: Module) -> dict[str, Any]:
    return {
        "id": m.id,
        "title": m.title,
        "version": m.version,
        "jurisdiction": m.jurisdiction,
        "hash": m.hash,
        "gates": [gate_info(g, module=m) for g in m.gates],
    }
