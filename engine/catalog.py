"""Plain descriptions of modules and gates, shared by the CLI and the HTTP API."""

from __future__ import annotations

from typing import Any

from dsl.compile import Gate, Module


def gate_info(g: Gate, source: bool = False) -> dict[str, Any]:
    info = {
        "code": g.code, "name": g.name, "module": g.module, "title": g.title,
        "cite": list(g.cite), "severity": g.severity.value,
        "doc_types": sorted(g.applies) if g.applies is not None else None,
        "on_indeterminate": g.on_indeterminate.value, "fix": g.fix, "tags": list(g.tags),
        "version": g.version, "examples": len(g.examples),
        "semantic": bool(g.semantic_nodes()), "file": g.file, "line": g.loc.line,
    }
    if source:
        info["source"] = g.source
    return info


def module_info(m: Module) -> dict[str, Any]:
    return {"id": m.id, "title": m.title, "version": m.version, "jurisdiction": m.jurisdiction,
            "hash": m.hash, "gates": [gate_info(g) for g in m.gates]}
