"""Find modules on disk, compile them lazily (only those a run asks for) and keep them compiled."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import modules as _builtin
from dsl.compile import GATE_SUFFIX, CheckNode, Gate, Module, compile_paths
from dsl.diagnostics import Code, Diagnostic, DiagnosticBag, did_you_mean
from engine.errors import GateFileError, UserError
from engine.hooks import GateSource
from gates.base import Check

BUILTIN_DIR = Path(_builtin.__file__).resolve().parent
LIB_DIR_NAME = "lib"
#: the built-in library (``import common``): searched last, from any module folder
BUILTIN_LIB = BUILTIN_DIR / LIB_DIR_NAME
#: library folders to search, separated like PATH (':' on POSIX, ';' on Windows)
LIB_PATH_ENV = "CLEARANCE_LIB_PATH"


def library_search_path(
    explicit: Iterable[Path] = (), configured: Iterable[Path] = ()
) -> list[Path]:
    """The folders ``import NAME`` searches before the ``lib/`` folders found beside the
    modules and the built-in library, in order: ``--lib`` (``explicit``), then
    ``CLEARANCE_LIB_PATH``, then ``lib-path`` in the settings file (``configured``). A folder
    named that does not exist is the user's mistake, said rather than skipped."""
    env = [Path(p) for p in os.environ.get(LIB_PATH_ENV, "").split(os.pathsep) if p.strip()]
    out: list[Path] = []
    for where, paths in (("--lib", explicit), (LIB_PATH_ENV, env), ("lib-path", configured)):
        for p in paths:
            if not p.is_dir():
                raise UserError(f"{where}: no such library folder: {p}")
            if p.resolve() not in out:
                out.append(p.resolve())
    return out


@dataclass(frozen=True)
class ModuleSource:
    id: str
    paths: tuple[Path, ...]

    def signature(self) -> tuple:
        out = []
        for p in self.paths:
            try:
                st = p.stat()
                out.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(p), 0, 0))
        return tuple(out)


def _gate_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(f"*{GATE_SUFFIX}") if p.is_file())


def discover(roots: list[Path]) -> tuple[dict[str, ModuleSource], list[Path]]:
    """Module sources under ``roots`` and the library folders to resolve imports from.
    A root is a folder of module folders, one module folder, or a single gate file."""
    found: dict[str, ModuleSource] = {}
    libs: list[Path] = []
    for root in roots:
        root = root.resolve()
        if root.is_file():
            found[root.stem] = ModuleSource(root.stem, (root,))
            continue
        if not root.is_dir():
            raise UserError(f"{root}: no such gate file or folder")
        direct = _gate_files(root)
        if direct and root.name != LIB_DIR_NAME:
            found[root.name] = ModuleSource(root.name, tuple(direct))
            if (root.parent / LIB_DIR_NAME).is_dir():
                libs.append(root.parent / LIB_DIR_NAME)
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            if sub.name == LIB_DIR_NAME:
                libs.append(sub)
                continue
            files = _gate_files(sub)
            if files:
                found[sub.name] = ModuleSource(sub.name, tuple(files))
    return found, libs


@dataclass
class Ruleset:
    """Compiled modules applied together. Immutable once built, so what is derived from it is
    computed once (the registry hands out the same Ruleset while no gate file changes)."""

    modules: list[Module]

    @cached_property
    def gates(self) -> list[Gate]:
        return [g for m in self.modules for g in m.gates]

    @cached_property
    def hash(self) -> str:
        blob = json.dumps(sorted((g.code, g.version) for g in self.gates))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @cached_property
    def checks(self) -> list[Check]:
        """Every distinct span-producing check of the ruleset (by key), in gate order."""
        seen: dict[str, Check] = {}
        for g in self.gates:
            for root in (*g.whens, *g.requires, *g.forbids):
                for n in root.walk():
                    if isinstance(n, CheckNode):
                        seen.setdefault(n.check.key, n.check)
        return list(seen.values())

    @cached_property
    def sources(self) -> dict[str, GateSource]:
        """Exactly which rule judged a document, by gate code (for the audit log)."""
        return {g.code: GateSource(g.code, g.version, g.module, g.source) for g in self.gates}


class Registry:
    """Compiled modules by id; thread-safe; recompiles a module when its files change."""

    def __init__(
        self,
        roots: list[Path] | None = None,
        include_builtin: bool = True,
        lib_paths: Iterable[Path] = (),
    ) -> None:
        self.roots = ([BUILTIN_DIR] if include_builtin else []) + [Path(r) for r in roots or []]
        #: searched first by ``import NAME`` (see :func:`library_search_path`)
        self.lib_paths = [Path(p) for p in lib_paths]
        self._lock = threading.Lock()
        self._compiled: dict[str, tuple[tuple, Module, list[Diagnostic], dict[str, str]]] = {}
        self._rulesets: dict[tuple[int, ...], Ruleset] = {}
        self._sources: dict[str, ModuleSource] | None = None
        self._libs: list[Path] = []

    def sources(self) -> dict[str, ModuleSource]:
        if self._sources is None:
            self._sources, found = discover(self.roots)
            # the search order of `import NAME`: the given folders, the lib/ folders beside the
            # modules, then the built-in library, which every module can import by name
            self._libs = list(
                dict.fromkeys(p.resolve() for p in [*self.lib_paths, *found, BUILTIN_LIB])
            )
        return self._sources

    def module_ids(self) -> list[str]:
        return sorted(self.sources())

    def compile_partial(
        self, module_id: str
    ) -> tuple[Module | None, list[Diagnostic], dict[str, str]]:
        """Compile without caching, keeping the gates that compiled even if others did not
        (for lint, which runs the examples of every gate it can)."""
        self.sources()
        return compile_paths(
            list(self.sources()[module_id].paths), self._libs, default_id=module_id, partial=True
        )

    def compile(self, module_id: str) -> tuple[Module | None, list[Diagnostic], dict[str, str]]:
        src = self.sources()[module_id]
        sig = src.signature()
        with self._lock:
            hit = self._compiled.get(module_id)
            if hit and hit[0] == sig:
                return hit[1], hit[2], hit[3]
            module, diags, texts = compile_paths(list(src.paths), self._libs, default_id=module_id)
            if module is not None:
                self._compiled[module_id] = (sig, module, diags, texts)
            return module, diags, texts

    def ruleset(self, wanted: list[str] | None = None) -> Ruleset:
        """Compile the modules asked for (all when ``wanted`` is empty) into one ruleset; any
        gate-file error raises :class:`GateFileError` carrying the rendered diagnostics."""
        ids = self.module_ids()
        chosen = list(dict.fromkeys(wanted)) if wanted else ids
        for m in chosen:
            if m not in ids:
                raise UserError(
                    f"unknown module '{m}' (available: {', '.join(ids)}).{did_you_mean(m, ids)}"
                )
        modules: list[Module] = []
        rendered: list[str] = []
        all_diags: list[Diagnostic] = []
        for m in chosen:
            module, diags, texts = self.compile(m)
            errors = [d for d in diags if d.severity == "error"]
            all_diags.extend(diags)
            rendered.extend(d.render(texts.get(d.file)) for d in errors)
            if module is not None:
                modules.append(module)
        bag = DiagnosticBag()
        seen: dict[str, str] = {}
        for module in modules:
            for g in module.gates:
                if g.code in seen:
                    bag.error(
                        Code.DUPLICATE_GATE_CODE,
                        f"gate code '{g.code}' is used by modules '{seen[g.code]}' "
                        f"and '{module.id}'",
                        g.file,
                        g.loc,
                        help="gate codes are unique across every loaded module",
                    )
                seen.setdefault(g.code, module.id)
        rendered.extend(d.render() for d in bag.items)
        all_diags.extend(bag.items)
        if rendered:
            raise GateFileError("\n\n".join(rendered), all_diags)
        # compile() returns the same Module objects until a file changes, so identity is a key
        key = tuple(id(m) for m in modules)
        with self._lock:
            found = self._rulesets.get(key)
            if found is None or [id(m) for m in found.modules] != list(key):
                found = self._rulesets[key] = Ruleset(modules)
        return found
