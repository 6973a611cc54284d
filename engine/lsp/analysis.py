"""What the language server knows about an open gate file: its module compiled with the editor's
unsaved buffers (the diagnostics `clearance lint FOLDER` gives), and every name in it (defines,
gates, imports, detectors) with where it is written. No LSP types here: plain positions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dsl import ast
from dsl.ast import DOC_TYPES, OnIndeterminate, Severity
from dsl.compile import (
    FUNCTIONS,
    GATE_FIELDS,
    GATE_SUFFIX,
    KIND_NAMES,
    MODULE_FIELDS,
    Compiler,
    Module,
)
from dsl.diagnostics import Code, Diagnostic, DiagnosticBag, Loc
from engine.loader import BUILTIN_DIR, LIB_DIR_NAME

#: what may open a line inside a gate: its fields and its clauses
GATE_KEYWORDS = (*GATE_FIELDS, "require", "forbid", "when", "example")
TOP_KEYWORDS = ("module", "import", "define", "defaults", "gate")
COMBINATORS = ("all", "any", "not", "in section")
#: ``help`` text of a diagnostic that suggests a replacement (dsl.diagnostics.did_you_mean)
DID_YOU_MEAN = re.compile(r"Did you mean '([^']+)'\?")
_WORD = re.compile(r"[A-Za-z0-9_][\w.\-]*")


def shown(path: Path) -> str:
    """A path as diagnostics show it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def detectors() -> dict[str, dict[str, str]]:
    """Detector descriptions by kind (``pii``, ``secret``) and name."""
    from gates.pii import PiiCheck
    from gates.secrets import SecretCheck

    return {
        "pii": {n: d.description for n, d in PiiCheck.registry.items()},
        "secret": {n: d.description for n, d in SecretCheck.registry.items()},
    }


class _BufferCompiler(Compiler):
    """The compiler, reading open files from the editor's buffers and keeping the parsed files."""

    def __init__(self, bag: DiagnosticBag, lib_paths: list[Path], buffers: dict[Path, str]):
        super().__init__(bag, lib_paths)
        self.buffers = buffers
        self.files: list[ast.GateFile] = []

    def read(self, path: Path) -> str | None:
        text = self.buffers.get(path)
        if text is None:
            return super().read(path)
        return text.replace("\r\n", "\n")

    def load_files(self, paths: list[Path]) -> list[ast.GateFile]:
        self.files = super().load_files(paths)
        return self.files


def module_of(path: Path) -> tuple[list[Path], list[Path], str]:
    """The files `clearance lint` compiles with ``path`` when given its folder, the library
    folders imports resolve from, and the module's default id. A file in a ``lib`` folder is a
    library: compiled on its own. The built-in library is searched last, from any folder."""
    folder = path.parent
    if folder.name == LIB_DIR_NAME:
        return [path], [folder], path.stem
    files = sorted(p.resolve() for p in folder.glob(f"*{GATE_SUFFIX}") if p.is_file())
    if path not in files:
        files.append(path)  # a new file, not saved yet
    libs = [folder.parent / LIB_DIR_NAME, BUILTIN_DIR / LIB_DIR_NAME]
    return files, list(dict.fromkeys(p for p in libs if p.is_dir())), folder.name


@dataclass
class Analysis:
    """One compilation of the module an open file belongs to."""

    path: Path
    diagnostics: list[Diagnostic]
    #: file text by resolved path: every file the compilation read (the module's, its imports)
    texts: dict[Path, str]
    files: dict[Path, ast.GateFile]
    defines: dict[str, tuple[ast.DefineDecl, Path]]
    lib_paths: list[Path]
    module: Module | None
    detectors: dict[str, dict[str, str]] = field(default_factory=detectors)

    # --- names --------------------------------------------------------------------------
    def gate_decls(self) -> Iterator[tuple[ast.GateDecl, Path]]:
        for path, f in self.files.items():
            for g in f.gates:
                yield g, path

    def word_at(self, path: Path, line: int, col: int) -> tuple[str, Loc] | None:
        """The word (a name, a gate code, a detector) under a 0-based line and column."""
        text = self.texts.get(path)
        if text is None:
            return None
        lines = text.split("\n")
        if not 0 <= line < len(lines):
            return None
        start_of_line = sum(len(x) + 1 for x in lines[:line])
        for m in _WORD.finditer(lines[line]):
            if m.start() <= col <= m.end():
                word = m.group().rstrip(".-")
                s = start_of_line + m.start()
                loc = Loc(
                    line + 1, m.start() + 1, line + 1, m.start() + 1 + len(word), s, s + len(word)
                )
                return word, loc
        return None

    def hover(self, path: Path, line: int, col: int) -> str | None:
        """Markdown for the word under the cursor: a gate's title, citation and fix; a define's
        body; a detector's description; a document type; a check kind's usage."""
        got = self.word_at(path, line, col)
        if got is None:
            return None
        word, _ = got
        for g, _p in self.gate_decls():
            if word in (g.code, g.name):
                return _gate_markdown(g)
        if word in self.defines:
            decl, where = self.defines[word]
            body = self.texts[where][decl.loc.start : decl.loc.end]
            return f"```\n{body}\n```\n\n*{shown(where)}:{decl.loc.line}*"
        for kind, table in self.detectors.items():
            if word in table:
                return f"**{word}** ({kind} detector)\n\n{table[word]}"
        if word in DOC_TYPES:
            return f"**{word}**: a document type (`applies {word}`, `--doc-type {word}`)"
        usage = _USAGE.get(word)
        if usage:
            return f"**{word}**: {usage}"
        return None

    def definition(self, path: Path, line: int, col: int) -> tuple[Path, Loc] | None:
        """Where the define or the import under the cursor is."""
        text = self.texts.get(path)
        f = self.files.get(path)
        if text is None or f is None:
            return None
        for imp in f.imports:
            if imp.loc.line - 1 <= line <= imp.loc.end_line - 1:
                target = self.resolve_import(imp, path)
                return (target, Loc(1, 1, 1, 1, 0, 0)) if target else None
        got = self.word_at(path, line, col)
        if got is None:
            return None
        word, _ = got
        if word in self.defines:
            decl, where = self.defines[word]
            return where, decl.name_loc
        for g, where in self.gate_decls():
            if word == g.code:
                return where, g.code_loc
        return None

    def resolve_import(self, imp: ast.ImportDecl, importer: Path) -> Path | None:
        """The file an import names, as the compiler resolves it."""
        if imp.is_path:
            candidates = [importer.parent / imp.target]
        else:
            candidates = [lib / f"{imp.target}{GATE_SUFFIX}" for lib in self.lib_paths]
        return next((c.resolve() for c in candidates if c.is_file()), None)

    # --- completion ---------------------------------------------------------------------
    def completions(self, path: Path, line: int, col: int) -> list[tuple[str, str, str]]:
        """(label, kind, detail) for what may be written at the cursor: inside ``pii(``/
        ``secret(`` the detectors; after ``applies``/``severity``/``on_indeterminate`` their
        words; at the start of a line the fields (in a gate) or declarations (outside);
        elsewhere the check kinds, combinators and defines."""
        text = self.texts.get(path, "")
        lines = text.split("\n")
        before = lines[line][:col] if 0 <= line < len(lines) else ""
        offset = sum(len(x) + 1 for x in lines[:line]) + len(before)
        call = re.search(r"\b(pii|secret)\s*\(([^()]*)$", before)
        if call:
            return [("any", "detector", f"every {call.group(1)} detector")] + [
                (n, "detector", d) for n, d in sorted(self.detectors[call.group(1)].items())
            ]
        if re.search(r"\bexpecting\s+[\w, ]*$", before):  # what must fire: kind, detector, define
            return (
                [(k, "check", "check kind") for k in KIND_NAMES]
                + [
                    (n, "detector", d)
                    for t in self.detectors.values()
                    for n, d in sorted(t.items())
                ]
                + [(n, "define", shown(w)) for n, (_, w) in sorted(self.defines.items())]
            )
        field_ = re.match(r"\s*(applies|severity|on_indeterminate)\b", before)
        if field_:
            words = {
                "applies": [*DOC_TYPES, "any"],
                "severity": [s.value for s in Severity],
                "on_indeterminate": [p.value for p in OnIndeterminate],
            }[field_.group(1)]
            return [(w, "value", field_.group(1)) for w in words]
        if re.fullmatch(r"\s*[A-Za-z_]*", before):
            block = _enclosing_block(text[:offset])
            if block == "gate":
                return [(k, "field", GATE_FIELDS.get(k, "clause")) for k in GATE_KEYWORDS]
            if block == "module":
                return [(k, "field", v) for k, v in MODULE_FIELDS.items()]
            if block is None:
                return [(k, "keyword", "declaration") for k in TOP_KEYWORDS]
        out = [(k, "check", _USAGE.get(k, "")) for k in (*KIND_NAMES, *FUNCTIONS[3:])]
        out += [(k, "keyword", _USAGE.get(k.split()[0], "")) for k in COMBINATORS]
        out += [
            (name, "define", f"{shown(where)}:{decl.loc.line}")
            for name, (decl, where) in sorted(self.defines.items())
        ]
        return out


_USAGE = {
    "regex": "`regex /pattern/flags`: an RE2 pattern (flags i, s, m)",
    "phrase": '`phrase("a", "b", ...)`: case-insensitive phrases with word boundaries',
    "pii": "`pii(NAME, ...)` or `pii(any)`: PII/PHI detectors",
    "secret": "`secret(NAME, ...)` or `secret(any)`: credential detectors",
    "semantic": '`semantic "question?" like [...] threshold T`: a yes/no question',
    "near": "`near(a, b, within N chars)` or `near(a, b, same sentence|paragraph)`: a match of a "
    "and one of b at most N apart, or in the same sentence or paragraph",
    "followed_by": "`followed_by(a, b, within N chars, same sentence|paragraph)`: a match of a "
    "and, after it, one of b, within the distance and/or the scope",
    "defaults": "`defaults { applies ... severity ... on_indeterminate ... tags ... }`: what the "
    "gates of this file (or, in a module header, of the module) inherit",
    "count": "`count(e) >= N`: the number of distinct matches",
    "all": "`all { e1 e2 ... }`: every sub-expression holds",
    "any": "`any { e1 e2 ... }`: at least one holds",
    "not": "`not e`: negation",
    "in": '`in section("Heading") e`: e only inside those sections',
    "require": "`require EXPR`: the gate fails when EXPR is false",
    "forbid": "`forbid EXPR`: the gate fails when EXPR matches",
    "when": "`when EXPR`: the gate is not applicable when EXPR is false",
}


def _gate_markdown(g: ast.GateDecl) -> str:
    props = {p.name: p.values for p in g.props}

    def text(name: str) -> str | None:
        vals = [v.value for v in props.get(name, []) if isinstance(v, ast.Text)]
        return "; ".join(vals) if vals else None

    out = [f"**{g.code}** `{g.name}`"]
    if text("title"):
        out.append(str(text("title")))
    if text("cite"):
        out.append(f"*Cites:* {text('cite')}")
    sev = [v.name for v in props.get("severity", []) if isinstance(v, ast.Ref)]
    if sev:
        out.append(f"*Severity:* {sev[0]}")
    if text("fix"):
        out.append(f"*Fix:* {text('fix')}")
    return "\n\n".join(out)


def _enclosing_block(text: str) -> str | None:
    """Which declaration (``gate``, ``module``, ``define``) the end of ``text`` is inside, by
    counting braces outside strings, regexes and comments; None at top level. A rough scan: it
    must work on half-typed files the parser refuses."""
    stack: list[str] = []
    clean = re.sub(r'"""[\s\S]*?(?:"""|$)|"(?:\\.|[^"\\\n])*"?|#[^\n]*', '""', text)
    for m in re.finditer(r"\b(gate|module|define|all|any)\b|[{}]", clean):
        tok = m.group()
        if tok == "{":
            opener = _last_keyword(clean[: m.start()])
            stack.append(opener)
        elif tok == "}" and stack:
            stack.pop()
    for opener in reversed(stack):
        if opener in ("gate", "module"):
            return opener
    return None


def _last_keyword(text: str) -> str:
    found = re.findall(r"\b(gate|module|define|all|any)\b", text[-400:])
    return found[-1] if found else ""


def analyse(path: Path, buffers: dict[Path, str]) -> Analysis:
    """Compile the module of ``path`` (resolved), reading open files from ``buffers``."""
    files, libs, default_id = module_of(path)
    bag = DiagnosticBag()
    compiler = _BufferCompiler(bag, libs, buffers)
    module = compiler.compile_module(files, default_id)
    texts: dict[Path, str] = {}
    for shown, text in compiler.sources.items():
        texts[Path(shown).resolve()] = text
    parsed = {Path(f.path).resolve(): f for f in compiler.files}
    defines = {
        name: (decl, Path(file).resolve()) for name, (decl, file) in compiler.defines.items()
    }
    return Analysis(path, bag.sorted(), texts, parsed, defines, libs, module)


def example_diagnostics(module: Module) -> list[Diagnostic]:
    """DSL123 for each inline example that does not behave as declared, as `clearance lint`
    reports them (with the engine's semantic provider, as lint uses)."""
    from engine.api import Engine

    engine = Engine(include_builtin=False, cache=None, audit=None)
    out = []
    for g in module.gates:
        for ex in g.examples:
            res = engine.check_example(g, ex)
            if not res.ok:
                out.append(
                    Diagnostic(
                        Code.EXAMPLE_MISBEHAVES,
                        f"example {ex.index} of {g.code} expects {ex.expect} but {res.problem}",
                        ex.file,
                        ex.loc,
                        help="fix the gate or the example",
                    )
                )
    return out
