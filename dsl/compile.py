"""Compile parsed gate files into gates: resolve names and imports, build checks, validate
metadata, and hash each gate's compiled form into its version."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import re2

from dsl import ast
from dsl.ast import DOC_TYPES, OnIndeterminate, Severity
from dsl.diagnostics import Code, Diagnostic, DiagnosticBag, Loc, did_you_mean, one_of
from dsl.parse import CLAUSES, MAX_NESTING, SYNTAX_CODES, parse_file
from gates import KINDS, CheckError, CheckSpec
from gates.base import Check
from gates.proximity import SCOPES, proximity
from gates.semantic import SemanticCheck

#: a gate file larger than this is refused (a gate file is a checklist, not a corpus).
MAX_GATE_FILE_BYTES = 2 * 1024 * 1024
GATE_SUFFIX = ".gates"

FUNCTIONS = ("phrase", "pii", "secret", "near", "count", "followed_by")
KIND_NAMES = tuple(KINDS.names())
GATE_FIELDS = {
    "title": "text",
    "cite": "texts",
    "severity": "name",
    "applies": "names",
    "fix": "text",
    "message": "text",
    "tags": "words",
    "version": "word",
    "on_indeterminate": "name",
    "why": "text",
    "owner": "text",
    "references": "texts",
}
#: the gate fields a ``defaults { ... }`` block may give (a gate's own value wins).
DEFAULT_FIELDS = {k: GATE_FIELDS[k] for k in ("applies", "severity", "on_indeterminate", "tags")}
MODULE_FIELDS = {
    "title": "text",
    "version": "word",
    "jurisdiction": "text",
    "description": "text",
    "owner": "text",
}
#: a gate code: a capital letter and capitals or digits, then parts joined by '-', '.' or '_',
#: each part optionally followed by (a)-style sub-parts, as regulations number their
#: provisions: GDPR-13-1A, PCI-3.4, CCPA-1798.120, HIPAA-164.514(b)(2). No '/' or ':' (a code
#: is a URL path segment in the HTTP API and the prefix of an example id, CODE::example[N]).
GATE_CODE_RE = re.compile(r"[A-Z][A-Z0-9]*(?:[-._][A-Z0-9]+(?:\([A-Za-z0-9]+\))*)+")
#: how many definitions may refer to one another in a chain (d2 = d1, d1 = d0, ...) (DSL132).
MAX_DEFINE_CHAIN = 64
#: how many checks and operators one gate may hold once its definitions are expanded: the
#: evaluator and the gate's version hash walk the expanded tree, so definitions that use each
#: other twice over (define b = all { a a }) would otherwise double it at every step (DSL133).
MAX_EXPANDED = 10_000
#: the largest ``within N chars`` distance and ``count(...)`` bound: far past any document
#: (ingestion stops at 20 MB), and small enough for every integer type the scanner uses.
MAX_AMOUNT = 1_000_000_000
#: what a gate lacks: not said of a gate the parser recovered (the part may be what it cut)
_MISSING = frozenset({Code.NO_CITATION, Code.NO_TITLE, Code.NO_EXAMPLES, Code.CHECKS_NOTHING})
#: the diagnostic code for a check whose pattern RE2 refuses to compile (e.g. too large).
_RE2_CODES = {"regex": Code.BAD_REGEX, "phrase": Code.BAD_PHRASES}


# --- compiled expression tree --------------------------------------------------------------


@dataclass(eq=False)
class Node:
    loc: Loc

    @property
    def cost(self) -> int:
        return 1

    @property
    def spanning(self) -> bool:
        """Whether the node yields text spans (so near/count can use it)."""
        return False

    def canonical(self) -> Any:
        raise NotImplementedError

    def walk(self) -> Iterator[Node]:
        yield self


@dataclass(eq=False)
class CheckNode(Node):
    check: Check
    label: str  # the define name it came from, or the check's own description

    @property
    def cost(self) -> int:
        return self.check.cost

    @property
    def spanning(self) -> bool:
        return True

    def canonical(self) -> Any:
        return self.check.canonical()


@dataclass(eq=False)
class SemanticNode(Node):
    check: SemanticCheck
    label: str

    @property
    def cost(self) -> int:
        return self.check.cost

    def canonical(self) -> Any:
        return self.check.canonical()


@dataclass(eq=False)
class NotNode(Node):
    child: Node

    @property
    def cost(self) -> int:
        return self.child.cost

    def canonical(self) -> Any:
        return {"not": self.child.canonical()}

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.child.walk()


@dataclass(eq=False)
class AllNode(Node):
    children: list[Node]

    @property
    def cost(self) -> int:
        return sum(c.cost for c in self.children)

    @functools.cached_property
    def ordered(self) -> list[Node]:
        """The children cheapest first: the order the evaluator tries them in."""
        return sorted(self.children, key=lambda c: c.cost)

    @property
    def spanning(self) -> bool:
        return all(c.spanning for c in self.children)

    def canonical(self) -> Any:
        return {"all": [c.canonical() for c in self.children]}

    def walk(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            yield from c.walk()


@dataclass(eq=False)
class AnyNode(AllNode):
    @property
    def spanning(self) -> bool:
        return all(c.spanning for c in self.children)

    def canonical(self) -> Any:
        return {"any": [c.canonical() for c in self.children]}


@dataclass(eq=False)
class NearNode(Node):
    a: Node
    b: Node
    within: int

    @property
    def cost(self) -> int:
        return self.a.cost + self.b.cost

    @property
    def spanning(self) -> bool:
        return True

    def canonical(self) -> Any:
        return {"near": [self.a.canonical(), self.b.canonical()], "within": self.within}

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.a.walk()
        yield from self.b.walk()


@dataclass(eq=False)
class CountNode(Node):
    child: Node
    op: str
    n: int

    @property
    def cost(self) -> int:
        return self.child.cost

    @property
    def spanning(self) -> bool:
        return True

    def canonical(self) -> Any:
        return {"count": self.child.canonical(), "op": self.op, "n": self.n}

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.child.walk()


@dataclass(eq=False)
class SectionNode(Node):
    headings: tuple[str, ...]
    child: Node

    @property
    def cost(self) -> int:
        return self.child.cost

    @property
    def spanning(self) -> bool:
        return self.child.spanning

    def canonical(self) -> Any:
        return {
            "in_section": sorted(h.casefold() for h in self.headings),
            "expr": self.child.canonical(),
        }

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.child.walk()


# --- compiled gates and modules ------------------------------------------------------------


@dataclass
class Example:
    index: int  # 1-based, in source order within the gate
    expect: str  # pass | fail
    text: str
    expecting: tuple[str, ...]
    file: str
    loc: Loc


@dataclass
class Gate:
    code: str
    name: str
    module: str
    title: str
    cite: tuple[str, ...]
    severity: Severity
    applies: frozenset[str] | None  # None: applies to every document type
    on_indeterminate: OnIndeterminate
    requires: list[Node]
    forbids: list[Node]
    whens: list[Node]
    fix: str | None
    message: str | None
    tags: tuple[str, ...]
    declared_version: str | None
    why: str | None
    examples: list[Example]
    file: str
    loc: Loc
    source: str
    version: str = ""

    def canonical(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "module": self.module,
            "title": self.title,
            "cite": list(self.cite),
            "severity": self.severity.value,
            "applies": sorted(self.applies) if self.applies is not None else None,
            "on_indeterminate": self.on_indeterminate.value,
            "requires": [n.canonical() for n in self.requires],
            "forbids": [n.canonical() for n in self.forbids],
            "when": [n.canonical() for n in self.whens],
            "fix": self.fix,
            "message": self.message,
            "version": self.declared_version,
        }

    @functools.cached_property
    def when_node(self) -> AllNode | None:
        """The ``when`` conditions as one node (built once, not per document)."""
        return AllNode(self.loc, list(self.whens)) if self.whens else None

    @functools.cached_property
    def require_node(self) -> AllNode | None:
        return AllNode(self.loc, list(self.requires)) if self.requires else None

    @functools.cached_property
    def forbid_node(self) -> AnyNode | None:
        return AnyNode(self.loc, list(self.forbids)) if self.forbids else None

    def semantic_nodes(self) -> tuple[SemanticNode, ...]:
        return self._semantic_nodes

    @functools.cached_property
    def _semantic_nodes(self) -> tuple[SemanticNode, ...]:
        # asked for per gate per validation (reports list every question of a gate)
        return tuple(
            n
            for root in (*self.whens, *self.requires, *self.forbids)
            for n in root.walk()
            if isinstance(n, SemanticNode)
        )


@dataclass
class Module:
    id: str
    title: str
    version: str
    jurisdiction: str | None
    description: str | None
    gates: list[Gate]
    files: list[str]
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        blob = json.dumps(sorted((g.code, g.version) for g in self.gates))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def gate_version(gate: Gate) -> str:
    blob = json.dumps(gate.canonical(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- reading gate files --------------------------------------------------------------------


def read_gate_file(path: Path, bag: DiagnosticBag) -> str | None:
    """Read a gate file as UTF-8 text, or record why not (the only I/O the language does)."""
    shown = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_GATE_FILE_BYTES:
            bag.error(
                Code.FILE_TOO_LARGE,
                f"gate file is {size:,} bytes, over the {MAX_GATE_FILE_BYTES:,}-byte limit",
                shown,
                help="split it into several files in the module folder",
            )
            return None
        data = path.read_bytes()
    except OSError as exc:
        bag.error(Code.FILE_UNREADABLE, f"cannot read gate file: {exc.strerror}", shown)
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bag.error(
            Code.FILE_NOT_TEXT,
            f"gate file is not UTF-8 (invalid byte at offset {exc.start})",
            shown,
            help="save the file as UTF-8",
        )
        return None
    if "\x00" in text:
        bag.error(Code.FILE_NOT_TEXT, "gate file contains NUL bytes; is it a binary file?", shown)
        return None
    if not text.strip():
        bag.error(
            Code.FILE_EMPTY, "gate file is empty", shown, help="add gates, or delete the file"
        )
        return None
    return text.replace("\r\n", "\n")


# --- compiler ------------------------------------------------------------------------------


class Compiler:
    """Compiles the files of one module (plus the library files they import)."""

    def __init__(self, bag: DiagnosticBag, lib_paths: list[Path] | None = None) -> None:
        self.bag = bag
        self.lib_paths = lib_paths or []
        self.defines: dict[str, tuple[ast.DefineDecl, str]] = {}
        #: word lists (``define x = ["a", "b"]``) and parameterised definitions
        #: (``define f(x) = ...``), kept apart: neither compiles to a node on its own
        self.lists: dict[str, tuple[ast.DefineDecl, str]] = {}
        self.macros: dict[str, tuple[ast.DefineDecl, str]] = {}
        self._words: dict[str, tuple[str, ...] | None] = {}
        #: names referred to anywhere (for the unused-definition warning)
        self._used: set[str] = set()
        #: parameterised definitions being expanded, innermost last
        self._expanding: list[str] = []
        #: expansions so far: definitions that call each other twice over grow exponentially
        self._expansions = 0
        self._resolved: dict[str, Node | None] = {}
        self._resolving: set[str] = set()
        #: definition -> how many definitions long its longest chain of references is
        self._chain: dict[str, int] = {}
        #: compiled node -> (height, expanded size); definitions' nodes are shared, so their
        #: shape is known wherever they are used
        self._shape: dict[Node, tuple[int, int]] = {}
        self._depth = 0  # expression levels open above the one being compiled
        self.sources: dict[str, str] = {}

    # imports ---------------------------------------------------------------------------
    def _resolve_import(self, imp: ast.ImportDecl, importer: Path) -> Path | None:
        candidates: list[Path] = []
        if imp.is_path:
            candidates.append(importer.parent / imp.target)
        else:
            candidates.extend(p / f"{imp.target}{GATE_SUFFIX}" for p in self.lib_paths)
        for c in candidates:
            try:
                if c.is_file():
                    return c
            except OSError:  # e.g. a name too long for the file system: not found either
                continue
        available = sorted(
            {p.stem for lib in self.lib_paths if lib.is_dir() for p in lib.glob(f"*{GATE_SUFFIX}")}
        )
        help_ = (
            one_of(available, imp.target)
            if available and not imp.is_path
            else "import a library by name (modules/lib/NAME.gates) or by relative path"
        )
        d = self.bag.error(
            Code.IMPORT_NOT_FOUND,
            f"cannot find import '{imp.target}'",
            _display(importer),  # as the file's other diagnostics show it, with its source
            imp.loc,
            help=help_,
        )
        if not imp.is_path and self.lib_paths:
            d.notes.append(
                "searched, in order: "
                + ", ".join(_display(p) for p in self.lib_paths)
                + " (add a folder with --lib, CLEARANCE_LIB_PATH or lib-path in clearance.toml)"
            )
        return None

    def read(self, path: Path) -> str | None:
        """A gate file's text (the language server reads the editor's unsaved buffers instead)."""
        return read_gate_file(path, self.bag)

    def load_files(self, paths: list[Path]) -> list[ast.GateFile]:
        """Parse the module's files and, transitively, the library files they import."""
        files: list[ast.GateFile] = []
        seen: set[Path] = set()
        queue = [p.resolve() for p in paths]
        while queue:
            p = queue.pop(0)
            if p in seen:
                continue
            seen.add(p)
            text = self.read(p)
            if text is None:
                continue
            shown = _display(p)
            self.sources[shown] = text
            gf = parse_file(text, shown, self.bag)
            files.append(gf)
            for imp in gf.imports:
                target = self._resolve_import(imp, p)
                if target is not None:
                    queue.append(target.resolve())
        return files

    # module ----------------------------------------------------------------------------
    def compile_module(self, paths: list[Path], default_id: str | None = None) -> Module | None:
        files = self.load_files(paths)
        own = {_display(p.resolve()) for p in paths}
        headers = [(m, f.path) for f in files for m in f.modules]
        header = None
        for m, path in headers:
            if path not in own:
                self.bag.error(
                    Code.MODULE_CONFLICT,
                    "a library file cannot declare a module",
                    path,
                    m.id_loc,
                    help="move the module header into the module's own folder",
                )
            elif header is None:
                header = (m, path)
            elif m.id != header[0].id:
                self.bag.error(
                    Code.MODULE_CONFLICT,
                    f"module '{m.id}' conflicts with module "
                    f"'{header[0].id}' declared in {header[1]}",
                    path,
                    m.id_loc,
                    help="one folder holds one module",
                )
        if header is None and default_id is None:
            self.bag.error(
                Code.NO_MODULE_HEADER,
                "no module header in these gate files",
                sorted(own)[0] if own else "<none>",
                help='add: module ID { title "..." version "1.0" }',
            )
            return None
        props = self._props(header[0].props, MODULE_FIELDS, header[1]) if header else {}
        module_id = header[0].id if header else str(default_id)

        for f in files:
            for d in f.defines:
                known = self._declared(d.name)
                if known is not None and (f.path in own) != (known[1] in own):
                    self._shadow(d, f.path, known, own)
                    continue
                if known is not None:
                    prev, prev_file = known
                    self.bag.error(
                        Code.DUPLICATE_DEFINE,
                        f"'{d.name}' is defined twice",
                        f.path,
                        d.name_loc,
                        help=f"first defined at {prev_file}:{prev.name_loc.line}:"
                        f"{prev.name_loc.col}; rename one of them",
                    )
                    continue
                if d.name in KIND_NAMES or d.name in FUNCTIONS:
                    self.bag.error(
                        Code.DUPLICATE_DEFINE,
                        f"'{d.name}' is a built-in name and cannot be defined",
                        f.path,
                        d.name_loc,
                        help="choose another name",
                    )
                    continue
                self._table(d)[d.name] = (d, f.path)
        self._check_params()
        for name in self.lists:
            self._list_words(name)
        for name in self.defines:
            self._define(name)
        defaults = self._module_defaults(header, files, own)

        gates: list[Gate] = []
        codes: dict[str, tuple[str, Loc]] = {}
        for f in files:
            if f.path not in own and f.gates:
                for g in f.gates:
                    self.bag.error(
                        Code.GATES_IN_LIBRARY,
                        "library files may hold definitions only, not gates",
                        f.path,
                        g.code_loc,
                    )
                continue
            for g in f.gates:
                if g.code in codes:
                    pf, pl = codes[g.code]
                    self.bag.error(
                        Code.DUPLICATE_GATE_CODE,
                        f"duplicate gate code '{g.code}'",
                        f.path,
                        g.code_loc,
                        help=f"first used at {pf}:{pl.line}:{pl.col}; gate codes are "
                        "stable and never reused",
                    )
                    continue
                codes[g.code] = (f.path, g.code_loc)
                gate = self.compile_gate(g, module_id, f.path, defaults.get(f.path, {}))
                if gate is not None:
                    gates.append(gate)
        self._warn_unused(own)
        return Module(
            id=module_id,
            title=str(props.get("title", module_id)),
            version=str(props.get("version", "0")),
            jurisdiction=props.get("jurisdiction"),
            description=props.get("description"),
            gates=gates,
            files=sorted(own),
            sources=self.sources,
        )

    # definitions -----------------------------------------------------------------------
    def _table(self, d: ast.DefineDecl) -> dict[str, tuple[ast.DefineDecl, str]]:
        if d.words is not None:
            return self.lists
        return self.macros if d.params is not None else self.defines

    def _declared(self, name: str) -> tuple[ast.DefineDecl, str] | None:
        return self.defines.get(name) or self.lists.get(name) or self.macros.get(name)

    def _shadow(
        self, d: ast.DefineDecl, file: str, known: tuple[ast.DefineDecl, str], own: set[str]
    ) -> None:
        """A module's own definition and a library's of the same name: the module's wins, with
        a warning (a library can then add a name without breaking the modules that import it)."""
        prev, prev_file = known
        mine, mine_file, lib_file = (d, file, prev_file) if file in own else (prev, prev_file, file)
        self.bag.warning(
            Code.SHADOWED_NAME,
            f"'{d.name}' shadows the definition of the same name in {lib_file}",
            mine_file,
            mine.name_loc,
            help="this module's definition is used; rename it to use the library's",
        )
        if file in own:
            for table in (self.defines, self.lists, self.macros):
                table.pop(d.name, None)
            self._table(d)[d.name] = (d, file)

    def _check_params(self) -> None:
        for name, (decl, file) in self.macros.items():
            seen: set[str] = set()
            for p, loc in decl.params or ():
                if p in seen or p in KIND_NAMES or p in FUNCTIONS:
                    self.bag.error(
                        Code.DUPLICATE_DEFINE,
                        f"parameter '{p}' of '{name}' is "
                        + ("given twice" if p in seen else "a built-in name"),
                        file,
                        loc,
                        help="choose another name",
                    )
                elif self._declared(p) is not None:
                    self.bag.warning(
                        Code.SHADOWED_NAME,
                        f"parameter '{p}' of '{name}' shadows the definition '{p}'",
                        file,
                        loc,
                        help=f"inside '{name}', '{p}' is the argument; rename the parameter "
                        "to use the definition there",
                    )
                seen.add(p)

    def _list_words(self, name: str, trail: tuple[str, ...] = ()) -> tuple[str, ...] | None:
        """A word list's words, its nested lists spliced in (None if it has errors)."""
        if name in self._words:
            return self._words[name]
        decl, file = self.lists[name]
        if name in trail or len(trail) >= MAX_DEFINE_CHAIN:
            self.bag.error(
                Code.DEFINE_CYCLE,
                f"word list '{name}' includes itself",
                file,
                decl.name_loc,
                help="a list cannot contain itself, directly or through another list",
            )
            self._words[name] = None
            return None
        words: list[str] = []
        ok = True
        for w in decl.words or ():
            if isinstance(w, ast.Text):
                if not w.value.strip():
                    self.bag.error(Code.BAD_PHRASES, "empty phrase", file, w.loc)
                    ok = False
                words.append(w.value)
                continue
            if w.name not in self.lists:
                self.bag.error(
                    Code.UNDEFINED_NAME,
                    f"'{w.name}' is not a word list",
                    file,
                    w.loc,
                    help=(
                        one_of(self.lists, w.name)
                        if self.lists
                        else 'a list holds quoted words and other lists: ["a", other_list]'
                    ),
                )
                ok = False
                continue
            self._used.add(w.name)
            inner = self._list_words(w.name, (*trail, name))
            if inner is None:
                ok = False
            else:
                words.extend(inner)
        got = tuple(words) if ok else None
        self._words.setdefault(name, got)
        return got

    def _warn_unused(self, own: set[str]) -> None:
        if self.bag.errors:  # a gate that failed to compile may be what uses it
            return
        for table in (self.defines, self.lists, self.macros):
            for name, (decl, file) in table.items():
                if file in own and name not in self._used:
                    self.bag.warning(
                        Code.UNUSED_DEFINE,
                        f"'{name}' is defined but never used",
                        file,
                        decl.name_loc,
                        help="use it in a gate or another definition, or delete it",
                    )

    # metadata --------------------------------------------------------------------------
    def _props(
        self,
        props: list[ast.Prop],
        allowed: dict[str, str],
        file: str,
        clauses: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: dict[str, Loc] = {}
        for p in props:
            if p.name not in allowed:
                # the clauses (require, forbid, ...) are listed too: `requrie` reads as a field
                self.bag.error(
                    Code.UNKNOWN_FIELD,
                    f"unknown field '{p.name}'",
                    file,
                    p.name_loc,
                    help=one_of([*allowed, *clauses], p.name),
                )
                near = did_you_mean(p.name, [*allowed, *clauses])
                if near:  # a typo'd field counts as given, so 'no title' is not said twice
                    out.setdefault("_typos", set()).add(near.split("'")[1])
                continue
            if p.name in seen:
                prev = seen[p.name]
                self.bag.error(
                    Code.DUPLICATE_FIELD,
                    f"field '{p.name}' is given twice",
                    file,
                    p.name_loc,
                    help=f"first given at line {prev.line}; keep one",
                )
                continue
            seen[p.name] = p.name_loc
            shape = allowed[p.name]
            values = p.values
            if shape in ("text", "word", "name") and len(values) > 1:
                self.bag.error(
                    Code.BAD_FIELD_VALUE, f"field '{p.name}' takes one value", file, p.value_locs[1]
                )
                continue
            v0 = values[0]
            if shape == "text":
                if not isinstance(v0, ast.Text):
                    self.bag.error(
                        Code.BAD_FIELD_VALUE,
                        f"field '{p.name}' takes a quoted string",
                        file,
                        p.value_locs[0],
                        help=f'write {p.name} "..."',
                    )
                    continue
                out[p.name] = v0.value
            elif shape == "texts":
                bad = [i for i, v in enumerate(values) if not isinstance(v, ast.Text)]
                if bad:
                    self.bag.error(
                        Code.BAD_FIELD_VALUE,
                        f"field '{p.name}' takes quoted strings",
                        file,
                        p.value_locs[bad[0]],
                    )
                    continue
                out[p.name] = tuple(v.value for v in values)  # type: ignore[union-attr]
            elif shape == "word":
                out[p.name] = _word(v0)
            elif shape == "words":
                out[p.name] = tuple(_word(v) for v in values)
            elif shape in ("name", "names"):
                bad = [i for i, v in enumerate(values) if not isinstance(v, ast.Ref)]
                if bad:
                    self.bag.error(
                        Code.BAD_FIELD_VALUE,
                        f"field '{p.name}' takes a bare word, not a string",
                        file,
                        p.value_locs[bad[0]],
                    )
                    continue
                names = [(v.name, v.loc) for v in values]  # type: ignore[union-attr]
                out[p.name] = names[0] if shape == "name" else names
        return out

    def _meta(self, props: dict[str, Any], file: str) -> dict[str, Any]:
        """The inheritable fields of ``props`` as values (severity, on_indeterminate, applies,
        tags); a field with a bad value is reported and left out."""
        out: dict[str, Any] = {}
        if "severity" in props:
            word, loc = props["severity"]
            try:
                out["severity"] = Severity(word)
            except ValueError:
                self.bag.error(
                    Code.UNKNOWN_SEVERITY,
                    f"unknown severity '{word}'",
                    file,
                    loc,
                    help=one_of([s.value for s in Severity], word),
                )
        if "on_indeterminate" in props:
            word, loc = props["on_indeterminate"]
            try:
                out["on_indeterminate"] = OnIndeterminate(word)
            except ValueError:
                self.bag.error(
                    Code.UNKNOWN_POLICY,
                    f"unknown on_indeterminate policy '{word}'",
                    file,
                    loc,
                    help=one_of([p.value for p in OnIndeterminate], word),
                )
        if "applies" in props:
            kinds: set[str] = set()
            for word, loc in props["applies"]:
                if word == "any":
                    kinds = set()
                    break
                if word not in DOC_TYPES:
                    self.bag.error(
                        Code.UNKNOWN_DOC_TYPE,
                        f"unknown document type '{word}'",
                        file,
                        loc,
                        help=one_of(DOC_TYPES, word),
                    )
                kinds.add(word)
            out["applies"] = frozenset(kinds) if kinds else None
        if "tags" in props:
            out["tags"] = props["tags"]
        return out

    def _defaults(self, decls: list[ast.DefaultsDecl], file: str, where: str) -> dict[str, Any]:
        """One ``defaults`` block's values, each with where it was given (for the warning
        about a gate that restates it)."""
        out: dict[str, Any] = {}
        for i, d in enumerate(decls):
            if i:
                self.bag.error(
                    Code.DUPLICATE_FIELD,
                    f"defaults are given twice in this {where}",
                    file,
                    d.loc,
                    help=f"first given at line {decls[0].loc.line}; merge them into one block",
                )
                continue
            props = self._props(d.props, DEFAULT_FIELDS, file)
            props.pop("_typos", None)
            for k, v in self._meta(props, file).items():
                out[k] = (v, f"{file}:{d.loc.line}")
        return out

    def _module_defaults(
        self,
        header: tuple[ast.ModuleDecl, str] | None,
        files: list[ast.GateFile],
        own: set[str],
    ) -> dict[str, dict[str, Any]]:
        """Per gate file of the module, what its gates inherit: the file's ``defaults`` over
        the module header's."""
        module = self._defaults(header[0].defaults, header[1], "module") if header else {}
        out: dict[str, dict[str, Any]] = {}
        for f in files:
            if f.path not in own:
                for d in f.defaults:
                    self.bag.error(
                        Code.GATES_IN_LIBRARY,
                        "library files may hold definitions only, not defaults",
                        f.path,
                        d.loc,
                        help="put the defaults block in a module file or the module header",
                    )
                continue
            out[f.path] = {**module, **self._defaults(f.defaults, f.path, "file")}
        return out

    def compile_gate(
        self,
        g: ast.GateDecl,
        module_id: str,
        file: str,
        inherited: dict[str, tuple[Any, str]] | None = None,
    ) -> Gate | None:
        before, mark = len(self.bag.errors), len(self.bag.items)
        recovered = any(
            d.code in SYNTAX_CODES
            and d.file == file
            and d.loc
            and g.loc.start <= d.loc.start < g.loc.end
            for d in self.bag.items
        )
        props = self._props(g.props, GATE_FIELDS, file, CLAUSES)
        if not GATE_CODE_RE.fullmatch(g.code):
            upper = g.code.upper()
            self.bag.error(
                Code.BAD_GATE_CODE,
                f"'{g.code}' is not a gate code",
                file,
                g.code_loc,
                help="a gate code is capitals and digits in parts joined by '-', '.' or '_', "
                "with optional (a)-style sub-parts, e.g. GDPR-13-1A, PCI-3.4, HIPAA-164.514(b)"
                + (f". Did you mean '{upper}'?" if GATE_CODE_RE.fullmatch(upper) else ""),
            )
        typos = props.pop("_typos", set())
        if (
            "cite" not in props
            and "cite" not in typos
            and not any(p.name == "cite" for p in g.props)
        ):
            self.bag.error(
                Code.NO_CITATION,
                f"gate {g.code} has no citation",
                file,
                g.code_loc,
                help='every gate cites its regulation, e.g. cite "GDPR Art. 13(1)(a)"',
            )
        if (
            "title" not in props
            and "title" not in typos
            and not any(p.name == "title" for p in g.props)
        ):
            self.bag.error(
                Code.NO_TITLE,
                f"gate {g.code} has no title",
                file,
                g.code_loc,
                help='add a one-line title, e.g. title "Notice names the controller"',
            )
        inherited = inherited or {}
        mine = self._meta(props, file)
        for k, v in mine.items():
            if k in inherited and inherited[k][0] == v:
                loc = next(p.loc for p in g.props if p.name == k)
                self.bag.warning(
                    Code.RESTATED_DEFAULT,
                    f"gate {g.code} restates the inherited {k}",
                    file,
                    loc,
                    help=f"the defaults at {inherited[k][1]} give it already; delete this line",
                )
        meta = {k: v for k, (v, _) in inherited.items()} | mine
        severity: Severity = meta.get("severity", Severity.medium)
        policy: OnIndeterminate = meta.get("on_indeterminate", OnIndeterminate.block)
        applies: frozenset[str] | None = meta.get("applies")
        if not g.requires and not g.forbids and not typos & {"require", "forbid"}:
            self.bag.error(
                Code.CHECKS_NOTHING,
                f"gate {g.code} checks nothing",
                file,
                g.code_loc,
                help="add require EXPR (fails when EXPR is false) or forbid EXPR "
                "(fails when EXPR matches)",
            )
        whens = [self.expr(e, file) for e in g.whens]
        requires = [self.expr(e, file) for e in g.requires]
        forbids = [self.expr(e, file) for e in g.forbids]
        examples = self._examples(g, file)
        if recovered:
            # the parser cut a broken item out of this gate: its other mistakes are said, not
            # the parts the cut removed, and it is not run (it is not the gate that was written)
            self.bag.items[mark:] = [d for d in self.bag.items[mark:] if d.code not in _MISSING]
            return None
        if len(self.bag.errors) > before or None in (*whens, *requires, *forbids):
            return None
        roots = [n for n in (*whens, *requires, *forbids) if n is not None]
        size = sum(self._shape[n][1] for n in roots)
        if size > MAX_EXPANDED:
            self.bag.error(
                Code.TOO_LARGE,
                f"gate {g.code} expands to {size:,} checks and operators "
                f"once its definitions are expanded; at most {MAX_EXPANDED:,} may",
                file,
                g.code_loc,
                help="split it into several gates, or share less through definitions",
            )
            return None
        gate = Gate(
            code=g.code,
            name=g.name,
            module=module_id,
            title=props.get("title", g.name),
            cite=props.get("cite", ()),
            severity=severity,
            applies=applies,
            on_indeterminate=policy,
            requires=[n for n in requires if n is not None],
            forbids=[n for n in forbids if n is not None],
            whens=[n for n in whens if n is not None],
            fix=props.get("fix"),
            message=props.get("message"),
            tags=meta.get("tags", ()),
            declared_version=props.get("version"),
            why=props.get("why"),
            examples=examples,
            file=file,
            loc=g.loc,
            source=g.source,
        )
        gate.version = gate_version(gate)
        return gate

    def _examples(self, g: ast.GateDecl, file: str) -> list[Example]:
        out = []
        for i, ex in enumerate(g.examples, start=1):
            if ex.expect not in ("pass", "fail"):
                self.bag.error(
                    Code.BAD_EXAMPLE,
                    f"an example expects 'pass' or 'fail', not '{ex.expect}'",
                    file,
                    ex.expect_loc,
                    help=one_of(("pass", "fail"), ex.expect),
                )
                continue
            known = set(KIND_NAMES) | set(self.defines) | set(self.macros) | _detector_names()
            for name, loc in ex.expecting:
                if name not in known:
                    self.bag.error(
                        Code.UNKNOWN_EXPECTING,
                        f"'{name}' in expecting is not a check kind, detector or definition",
                        file,
                        loc,
                        help="name what should fire: a kind (regex, phrase, pii, "
                        f"secret, semantic), a detector or a definition."
                        f"{did_you_mean(name, known)}",
                    )
            if not ex.text.strip():
                self.bag.error(Code.BAD_EXAMPLE, "example text is empty", file, ex.loc)
            out.append(
                Example(i, ex.expect, ex.text, tuple(n for n, _ in ex.expecting), file, ex.loc)
            )
        kinds = {e.expect for e in out}
        missing = [k for k in ("pass", "fail") if k not in kinds]
        if missing and not any(
            d.code == Code.BAD_EXAMPLE for d in self.bag.items if d.file == file
        ):
            self.bag.error(
                Code.NO_EXAMPLES,
                f"gate {g.code} has no '{missing[0]}' example"
                + (" and no 'fail' example" if len(missing) == 2 else ""),
                file,
                g.code_loc,
                help='prove the gate: add example pass "..." and example fail "..."',
            )
        return out

    # expressions -----------------------------------------------------------------------
    def _define(self, name: str) -> Node | None:
        if name not in self._resolved:
            if name in self._resolving:  # reached again through a parameterised definition
                decl, file = self.defines[name]
                self.bag.error(
                    Code.DEFINE_CYCLE,
                    f"'{name}' is defined in terms of itself",
                    file,
                    decl.name_loc,
                    help="a definition cannot refer to itself",
                )
                self._resolved[name] = None
                return None
            self._resolve_defines(name)
        return self._resolved[name]

    def _resolve_defines(self, root: str) -> None:
        """Compile definition ``root`` and those it uses, dependencies first. The walk keeps its
        own stack: a chain of a thousand definitions must not exhaust Python's (DSL132 bounds
        the chain, but only once it is measured)."""
        path = [root]
        pending = [iter(_define_refs(self.defines[root][0].expr, self.defines))]
        self._resolving.add(root)
        while path:
            for dep in pending[-1]:
                if dep in self._resolved:
                    continue
                if dep in self._resolving:
                    decl, file = self.defines[dep]
                    self.bag.error(
                        Code.DEFINE_CYCLE,
                        f"'{dep}' is defined in terms of itself",
                        file,
                        decl.name_loc,
                        help="a definition cannot refer to itself",
                    )
                    self._resolved[dep] = None  # its body then compiles to nothing, silently
                    continue
                path.append(dep)
                pending.append(iter(_define_refs(self.defines[dep][0].expr, self.defines)))
                self._resolving.add(dep)
                break
            else:
                name = path.pop()
                pending.pop()
                self._resolving.discard(name)
                if name not in self._resolved:
                    self._resolved[name] = self._compile_define(name)

    def _compile_define(self, name: str) -> Node | None:
        """Compile one definition whose dependencies are all resolved."""
        decl, file = self.defines[name]
        deps = list(dict.fromkeys(_define_refs(decl.expr, self.defines)))
        if any(self._resolved.get(d) is None for d in deps):
            return None  # a dependency failed and said so
        chain = 1 + max((self._chain[d] for d in deps), default=0)
        self._chain[name] = chain
        if chain > MAX_DEFINE_CHAIN:
            links, at = [name], name
            while len(links) < 4 and (
                nxt := [d for d in _define_refs(self.defines[at][0].expr, self.defines)]
            ):
                at = max(nxt, key=lambda d: self._chain.get(d, 0))
                links.append(at)
            self.bag.error(
                Code.TOO_DEEP,
                f"definition chain too deep: '{name}' is the end of a chain "
                f"of {chain} definitions that refer to one another",
                file,
                decl.name_loc,
                help=f"at most {MAX_DEFINE_CHAIN} may; the chain runs "
                f"{' -> '.join(links)} -> ...; refer to the checks directly",
            )
            return None
        outer, self._depth = self._depth, 0  # a definition's shape does not depend on its use
        assert decl.expr is not None  # word lists live in self.lists
        try:
            return self.expr(decl.expr, file, label=name)
        finally:
            self._depth = outer

    def expr(self, e: ast.Expr, file: str, label: str | None = None) -> Node | None:
        """Compile an expression, keeping every gate's expanded tree within MAX_NESTING levels
        and MAX_EXPANDED nodes (DSL132 / DSL133)."""
        if isinstance(e, ast.Ref) and e.name in self.defines:
            self._used.add(e.name)
            return self._use_define(e, file)
        if isinstance(e, ast.Bound):
            assert isinstance(e.node, Node)
            return e.node
        if isinstance(e, ast.Invalid):
            return None  # the parser reported it
        if self._depth >= MAX_NESTING:  # the parser's limit makes this rare: a hand-built tree
            self.bag.error(
                Code.TOO_DEEP, f"expression nests more than {MAX_NESTING} deep", file, e.loc
            )
            return None
        self._depth += 1
        try:
            node = self._expr(e, file, label)
        finally:
            self._depth -= 1
        if node is None:
            return None
        kids = _children(node)
        size = 1 + sum(self._shape[k][1] for k in kids)
        if size > MAX_EXPANDED:
            self.bag.error(
                Code.TOO_LARGE,
                f"expression expands to {size:,} checks and operators once "
                f"its definitions are expanded; at most {MAX_EXPANDED:,} may",
                file,
                e.loc,
                help="a definition used twice is counted twice: definitions "
                "that use each other several times grow exponentially",
            )
            return None
        self._shape[node] = (1 + max((self._shape[k][0] for k in kids), default=0), size)
        return node

    def _use_define(self, e: ast.Ref, file: str) -> Node | None:
        node = self._define(e.name)
        if node is None:
            return None
        height = self._shape[node][0]
        if self._depth + height > MAX_NESTING:
            self.bag.error(
                Code.TOO_DEEP,
                f"expression nests more than {MAX_NESTING} deep with "
                f"'{e.name}' expanded ({self._depth} levels here, {height} in "
                f"'{e.name}')",
                file,
                e.loc,
                help="flatten the definitions: all { ... } and any { ... } take "
                "many checks at once",
            )
            return None
        return node

    def _expand(self, e: ast.Call, file: str) -> Node | None:
        """A call of a parameterised definition: its body with the arguments in place of the
        parameters. Expression arguments are compiled where they are written (so their
        mistakes point there); quoted words and word lists are passed on as written."""
        name = e.name
        decl, dfile = self.macros[name]
        self._used.add(name)
        params = decl.params or []
        if e.comparison is not None or len(e.args) != len(params):
            self.bag.error(
                Code.BAD_ARGUMENTS,
                f"'{name}' takes {len(params)} argument(s): " + ", ".join(p for p, _ in params),
                file,
                e.loc if e.comparison is None else e.comparison[2],
                help=f"defined at {dfile}:{decl.name_loc.line}",
            )
            return None
        self._expansions += 1
        if self._expansions > MAX_EXPANDED:
            if self._expansions == MAX_EXPANDED + 1:  # said once per module
                self.bag.error(
                    Code.TOO_LARGE,
                    f"parameterised definitions are expanded more than {MAX_EXPANDED:,} "
                    "times in this module",
                    file,
                    e.loc,
                    help="a definition that calls another twice doubles at every level: "
                    "call each once, or define the shared part without parameters",
                )
            return None
        if name in self._expanding or len(self._expanding) >= MAX_DEFINE_CHAIN:
            self.bag.error(
                Code.DEFINE_CYCLE if name in self._expanding else Code.TOO_DEEP,
                f"'{name}' is defined in terms of itself"
                if name in self._expanding
                else f"parameterised definitions nest more than {MAX_DEFINE_CHAIN} deep",
                dfile,
                decl.name_loc,
                help="a definition cannot refer to itself",
            )
            return None
        binding: dict[str, ast.Expr] = {}
        for (p, _), arg in zip(params, e.args, strict=True):
            if isinstance(arg, ast.Text | ast.Within | ast.Same) or (
                isinstance(arg, ast.Ref) and arg.name in self.lists
            ):
                binding[p] = arg
                continue
            node = self.expr(arg, file)
            if node is None:
                return None
            binding[p] = ast.Bound(arg.loc, node)
        assert decl.expr is not None
        body = _substitute(decl.expr, binding)
        self._expanding.append(name)
        outer, self._depth = self._depth, 0
        try:
            return self.expr(body, dfile, label=name)
        finally:
            self._expanding.pop()
            self._depth = outer

    def _expr(self, e: ast.Expr, file: str, label: str | None) -> Node | None:
        if isinstance(e, ast.Ref) and e.name in self.lists:
            self._used.add(e.name)
            self.bag.error(
                Code.STRING_NOT_A_CHECK,
                f"'{e.name}' is a word list, not a check",
                file,
                e.loc,
                help=f"find its words with phrase({e.name})",
            )
            return None
        if isinstance(e, ast.Ref) and e.name in self.macros:
            self._used.add(e.name)
            self.bag.error(
                Code.NEEDS_ARGUMENTS,
                f"'{e.name}' needs arguments",
                file,
                e.loc,
                help=f"write {e.name}("
                + ", ".join(p for p, _ in self.macros[e.name][0].params or ())
                + ")",
            )
            return None
        if isinstance(e, ast.Ref):
            if e.name in KIND_NAMES or e.name in FUNCTIONS:
                self.bag.error(
                    Code.NEEDS_ARGUMENTS,
                    f"'{e.name}' needs arguments",
                    file,
                    e.loc,
                    help=_usage(e.name),
                )
                return None
            self.bag.error(
                Code.UNDEFINED_NAME,
                f"undefined name '{e.name}'",
                file,
                e.loc,
                help=(
                    one_of(self.defines, e.name)
                    if self.defines
                    else "define it first: define NAME = EXPR"
                ),
            )
            return None
        if isinstance(e, ast.Not):
            child = self.expr(e.child, file)
            return NotNode(e.loc, child) if child else None
        if isinstance(e, (ast.All, ast.Any_)):
            kids = [self.expr(c, file) for c in e.children]
            if any(k is None for k in kids):
                return None
            cls = AllNode if isinstance(e, ast.All) else AnyNode
            return cls(e.loc, kids)  # type: ignore[arg-type]
        if isinstance(e, ast.InSection):
            child = self.expr(e.child, file)
            if not all(h.strip() for h in e.headings):
                self.bag.error(Code.EMPTY_HEADING, "empty section heading", file, e.loc)
                return None
            return SectionNode(e.loc, tuple(e.headings), child) if child else None
        if isinstance(e, ast.RegexCheck):
            if e.kind != "regex":
                self._unknown_kind(e.kind, e.kind_loc, file, "regex")
                return None
            return self._check(
                CheckSpec("regex", (e.pattern, e.flags)), e.loc, e.pattern_loc, [], file, label
            )
        if isinstance(e, ast.TextCheck):
            if e.kind != "semantic":
                self._unknown_kind(e.kind, e.kind_loc, file, "semantic")
                return None
            opts = (("like", tuple(e.like)), ("threshold", e.threshold), ("raw", e.raw))
            try:
                sem = SemanticCheck.from_spec(CheckSpec("semantic", (e.text,), opts))
            except CheckError as exc:
                self.bag.error(exc.code, exc.message, file, e.text_loc, help=exc.help)
                return None
            return SemanticNode(e.loc, sem, label or sem.describe())
        if isinstance(e, ast.Call):
            return self._call(e, file, label)
        if isinstance(e, ast.Text):
            self.bag.error(
                Code.STRING_NOT_A_CHECK,
                "a quoted string is not a check here",
                file,
                e.loc,
                help='use phrase("...") to find wording, or semantic "question?"',
            )
            return None
        if isinstance(e, ast.Within):
            self.bag.error(
                Code.WITHIN_OUTSIDE_NEAR,
                "'within' belongs inside near(a, b, within N chars)",
                file,
                e.loc,
            )
            return None
        if isinstance(e, ast.Same):
            self.bag.error(
                Code.WITHIN_OUTSIDE_NEAR,
                f"'same {e.unit}' belongs inside followed_by(a, b, same {e.unit})",
                file,
                e.loc,
            )
            return None
        raise AssertionError(f"unhandled expression {e!r}")  # pragma: no cover

    def _unknown_kind(self, kind: str, loc: Loc, file: str, shape: str) -> None:
        self.bag.error(
            Code.UNKNOWN_KIND,
            f"unknown check kind '{kind}'",
            file,
            loc,
            help=one_of(KIND_NAMES + FUNCTIONS[3:], kind),
        )

    def _check(
        self,
        spec: CheckSpec,
        loc: Loc,
        arg_loc: Loc,
        arg_locs: list[Loc],
        file: str,
        label: str | None,
    ) -> Node | None:
        factory = KINDS.get(spec.kind)
        assert factory is not None  # the callers pass the kinds they know
        try:
            check = factory.from_spec(spec)
        except CheckError as exc:
            where = arg_locs[exc.arg_index] if exc.arg_index is not None and arg_locs else arg_loc
            self.bag.error(exc.code, exc.message, file, where, help=exc.help)
            return None
        except re2.error as exc:  # a pattern the check builds itself, refused by RE2 (too large)
            raw = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            self.bag.error(
                _RE2_CODES.get(spec.kind, Code.CHECK_NOT_COMPILABLE),
                f"{spec.kind} check cannot be compiled: {raw}",
                file,
                arg_loc,
                help="RE2 caps the size of a compiled pattern: use fewer or shorter "
                "phrases (a run of spaces in a phrase matches any whitespace, "
                "which costs the most), or split the check",
            )
            return None
        return CheckNode(loc, check, label or check.describe())

    def _call(self, e: ast.Call, file: str, label: str | None) -> Node | None:
        if e.name in self.macros:
            return self._expand(e, file)
        if e.comparison is not None and e.name != "count":
            self.bag.error(
                Code.NOT_COMPARABLE,
                f"only count(...) can be compared, not {e.name}(...)",
                file,
                e.comparison[2],
                help="write count(EXPR) >= N",
            )
            return None
        if e.name in ("phrase",):
            words: list[str] = []
            locs: list[Loc] = []
            for a in e.args:
                if isinstance(a, ast.Text):
                    words.append(a.value)
                    locs.append(a.loc)
                elif isinstance(a, ast.Ref) and a.name in self.lists:
                    self._used.add(a.name)
                    got = self._list_words(a.name)
                    if got is None:
                        return None  # the list's own error says why
                    words.extend(got)
                    locs.extend(a.loc for _ in got)
                else:
                    self.bag.error(
                        Code.BAD_PHRASES,
                        "phrase(...) takes quoted strings and word lists",
                        file,
                        a.loc,
                        help='write phrase("data controller", "controller") or '
                        'phrase(LIST) after define LIST = ["...", "..."]'
                        + (
                            did_you_mean(a.name, list(self.lists)) if isinstance(a, ast.Ref) else ""
                        ),
                    )
                    return None
            return self._check(
                CheckSpec("phrase", tuple(words)), e.loc, e.name_loc, locs, file, label
            )
        if e.name in ("pii", "secret"):
            names = []
            for a in e.args:
                if not isinstance(a, ast.Ref):
                    self.bag.error(
                        Code.UNKNOWN_DETECTOR,
                        f"{e.name}(...) takes detector names",
                        file,
                        a.loc,
                        help=f"write e.g. {e.name}(any)",
                    )
                    return None
                names.append(a.name)
            return self._check(
                CheckSpec(e.name, tuple(names)),
                e.loc,
                e.name_loc,
                [a.loc for a in e.args],
                file,
                label,
            )
        if e.name == "followed_by" or (
            e.name == "near" and any(isinstance(a, ast.Same) for a in e.args)
        ):
            return self._proximity(e, file, label)
        if e.name == "near":
            return self._near(e, file)
        if e.name == "count":
            return self._count(e, file)
        if e.name in ("regex", "semantic"):
            self.bag.error(
                Code.NO_PARENTHESES,
                f"{e.name} is written without parentheses",
                file,
                e.name_loc,
                help=_usage(e.name),
            )
            return None
        self._unknown_kind(e.name, e.name_loc, file, "call")
        return None

    def _near(self, e: ast.Call, file: str) -> Node | None:
        exprs = [a for a in e.args if not isinstance(a, ast.Within)]
        within = [a for a in e.args if isinstance(a, ast.Within)]
        if len(exprs) != 2 or len(within) != 1:
            self.bag.error(
                Code.BAD_ARGUMENTS,
                "near takes two checks and a distance",
                file,
                e.loc,
                help=_usage("near"),
            )
            return None
        distance = self._distance(within[0], file)
        if distance is None:
            return None
        a, b = (self.expr(x, file) for x in exprs)
        if a is None or b is None:
            return None
        for node, src in ((a, exprs[0]), (b, exprs[1])):
            if not node.spanning:
                self.bag.error(
                    Code.NEEDS_SPANS,
                    "near(...) needs checks that find text; this one does not",
                    file,
                    src.loc,
                    help="use regex, phrase, pii or secret inside near; combine a "
                    "semantic question with all { ... } instead",
                )
                return None
        return NearNode(e.loc, a, b, distance)

    def _distance(self, w: ast.Within, file: str) -> int | None:
        """``within N chars`` as a number of characters, or None (reported)."""
        if w.unit not in (None, "chars", "characters"):
            self.bag.error(
                Code.UNKNOWN_UNIT,
                f"unknown distance unit '{w.unit}'",
                file,
                w.unit_loc,
                help=one_of(("chars", "characters"), w.unit),
            )
            return None
        if not 0 <= w.amount <= MAX_AMOUNT or w.amount != int(w.amount):
            self.bag.error(
                Code.AMOUNT_OUT_OF_RANGE,
                f"the distance must be a whole number of characters from 0 to {MAX_AMOUNT:,}",
                file,
                w.loc,
            )
            return None
        return int(w.amount)

    def _proximity(self, e: ast.Call, file: str, label: str | None) -> Node | None:
        """``followed_by(a, b, within N chars, same paragraph)``, and ``near`` with a scope."""
        exprs = [a for a in e.args if not isinstance(a, ast.Within | ast.Same)]
        within = [a for a in e.args if isinstance(a, ast.Within)]
        same = [a for a in e.args if isinstance(a, ast.Same)]
        if len(exprs) != 2 or len(within) > 1 or len(same) > 1 or not (within or same):
            self.bag.error(
                Code.BAD_ARGUMENTS,
                f"{e.name} takes two checks and a distance (within N chars), a scope "
                "(same sentence, same paragraph) or both",
                file,
                e.loc,
                help=_usage(e.name),
            )
            return None
        distance = self._distance(within[0], file) if within else None
        if within and distance is None:
            return None
        scope = same[0].unit if same else None
        if same and scope not in SCOPES:
            self.bag.error(
                Code.UNKNOWN_UNIT,
                f"unknown scope 'same {scope}'",
                file,
                same[0].unit_loc,
                help=one_of(SCOPES, scope),
            )
            return None
        sides = []
        for x in exprs:
            node = self.expr(x, file)
            if node is None:
                return None
            checks = _span_checks(node)
            if checks is None:
                self.bag.error(
                    Code.NEEDS_SPANS,
                    f"{e.name}(...) needs checks that find text; this one does not",
                    file,
                    x.loc,
                    help="use regex, phrase, pii or secret (or a definition of one, or "
                    "any { ... } of them) on each side",
                )
                return None
            sides.append(checks)
        check = proximity(sides[0], sides[1], distance, scope, ordered=e.name == "followed_by")
        return CheckNode(e.loc, check, label or check.describe())

    def _count(self, e: ast.Call, file: str) -> Node | None:
        if len(e.args) != 1 or e.comparison is None:
            self.bag.error(
                Code.BAD_ARGUMENTS,
                "count takes one check and a comparison",
                file,
                e.loc,
                help=_usage("count"),
            )
            return None
        op, n, loc = e.comparison
        if not 0 <= n <= MAX_AMOUNT or n != int(n):
            self.bag.error(
                Code.AMOUNT_OUT_OF_RANGE,
                f"count compares with a whole number from 0 to {MAX_AMOUNT:,}",
                file,
                loc,
            )
            return None
        child = self.expr(e.args[0], file)
        if child is None:
            return None
        if not child.spanning:
            self.bag.error(
                Code.NEEDS_SPANS,
                "count(...) needs a check that finds text",
                file,
                e.args[0].loc,
                help="count regex, phrase, pii or secret matches",
            )
            return None
        return CountNode(e.loc, child, op, int(n))


def _span_checks(node: Node) -> list[Check] | None:
    """The checks whose matches are the node's spans: a check, or ``any`` of checks (None for
    anything the evaluator must combine itself: all, near, count, in section, semantic)."""
    if isinstance(node, CheckNode):
        return [node.check]
    if type(node) is AnyNode:
        out: list[Check] = []
        for c in node.children:
            got = _span_checks(c)
            if got is None:
                return None
            out.extend(got)
        return out
    return None


def _substitute(e: ast.Expr, binding: dict[str, ast.Expr]) -> ast.Expr:
    """``e`` with every parameter reference replaced by its argument (a new tree)."""
    if isinstance(e, ast.Ref):
        return binding.get(e.name, e)
    if isinstance(e, ast.Not | ast.InSection):
        return replace(e, child=_substitute(e.child, binding))
    if isinstance(e, ast.All | ast.Any_):
        return replace(e, children=[_substitute(c, binding) for c in e.children])
    if isinstance(e, ast.Call):
        return replace(e, args=[_substitute(a, binding) for a in e.args])
    return e


def _children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, AllNode):
        return tuple(node.children)
    if isinstance(node, NearNode):
        return (node.a, node.b)
    if isinstance(node, (NotNode, CountNode, SectionNode)):
        return (node.child,)
    return ()


def _define_refs(e: ast.Expr | None, defines: dict[str, Any]) -> Iterator[str]:
    """The definitions an expression refers to, in source order (its own stack: see
    _resolve_defines)."""
    stack = [e] if e is not None else []
    while stack:
        x = stack.pop()
        if isinstance(x, ast.Ref):
            if x.name in defines:
                yield x.name
        elif isinstance(x, ast.Not | ast.InSection):
            stack.append(x.child)
        elif isinstance(x, ast.All | ast.Any_):
            stack.extend(reversed(x.children))
        elif isinstance(x, ast.Call):
            stack.extend(reversed(x.args))


def _word(v: Any) -> str:
    if isinstance(v, ast.Text):
        return v.value
    if isinstance(v, ast.Ref):
        return v.name
    return f"{v:g}"


def _usage(name: str) -> str:
    return {
        "regex": "write regex /pattern/flags, e.g. regex /data\\s+controller/i",
        "semantic": 'write semantic "Question?" like ["statement"] threshold 0.5',
        "phrase": 'write phrase("one", "or another")',
        "pii": "write pii(EMAIL_ADDRESS, US_SSN) or pii(any)",
        "secret": "write secret(any)",
        "near": "write near(CHECK, CHECK, within 300 chars) or near(CHECK, CHECK, same sentence)",
        "followed_by": "write followed_by(CHECK, CHECK, within 250 chars, same paragraph)",
        "count": "write count(CHECK) >= 2",
    }.get(name, "")


def _detector_names() -> set[str]:
    from gates.pii import PiiCheck
    from gates.secrets import SecretCheck

    return set(PiiCheck.registry) | set(SecretCheck.registry)


def _display(path: Path) -> str:
    """A path as shown in diagnostics: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def compile_paths(
    paths: list[Path],
    lib_paths: list[Path] | None = None,
    default_id: str | None = None,
    partial: bool = False,
) -> tuple[Module | None, list[Diagnostic], dict[str, str]]:
    """Compile one module from its gate files. Returns the module (None if it has errors, unless
    ``partial``: then the gates that compiled), every diagnostic, and each file's source text."""
    bag = DiagnosticBag()
    compiler = Compiler(bag, lib_paths)
    module = compiler.compile_module(paths, default_id)
    if bag.errors and not partial:
        return None, bag.sorted(), compiler.sources
    return module, bag.sorted(), compiler.sources
