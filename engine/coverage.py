"""Branch coverage of each gate's ``when``, ``require`` and ``forbid`` expressions by its inline
examples (``clearance test --coverage``).

Each sub-expression is evaluated on its own, in full (the evaluator's eager mode), on every
example of its gate; the runtime's demand-driven path is neither instrumented nor slowed. The
branches of a gate, per occurrence of a sub-expression in its expanded tree:

* every sub-expression has a *true* branch (it fired on some example) and a *false* branch (it
  did not fire on some example); ``not e`` and ``in section(...) e`` have none of their own,
  since their value is their operand's (which has both);
* a phrase list of several phrases has one branch per phrase (that phrase occurs) instead of a
  single true branch; so does ``pii(...)``/``secret(...)`` naming several detectors (not ``any``);
* ``require`` and ``forbid`` count only the examples on which the gate applies (no ``when`` is
  false): an example the gate does not apply to exercises nothing of them.

Semantic questions are answered by the offline model (local and deterministic), whatever provider
``clearance test`` itself uses. If the model cannot answer, semantic leaves are *not measured*:
left out of the totals and counted apart. An undecided value (an ``unclear`` answer) covers
neither branch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dsl import ast
from dsl.compile import (
    AllNode,
    CheckNode,
    CountNode,
    Gate,
    Module,
    NearNode,
    Node,
    NotNode,
    SectionNode,
    SemanticNode,
)
from dsl.diagnostics import DiagnosticBag, Loc
from dsl.parse import parse_file
from engine.evaluate import DocContext, Scope, _intersect, evaluate
from engine.ingest import document_from_text
from engine.providers.base import Answer
from gates.base import DetectorCheck
from gates.phrases import PhraseCheck

CLAUSES = ("when", "require", "forbid")


@dataclass(frozen=True)
class Branch:
    """One outcome of one sub-expression that some example should produce."""

    clause: str  # when | require | forbid
    outcome: str  # "true" | "false" | "phrase" | "detector"
    file: str
    line: int
    col: int
    text: str  # the sub-expression's source, on one line and clipped
    measurable: bool = True
    site: int = 0  # which occurrence of a sub-expression in the gate's tree it belongs to

    def describe(self) -> str:
        return {
            "true": "never true",
            "false": "never false",
            "phrase": "phrase never found",
            "detector": "detector never fired",
        }[self.outcome]

    def to_json(self) -> dict[str, Any]:
        return {
            "clause": self.clause,
            "outcome": self.outcome,
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "text": self.text,
        }


@dataclass
class GateCoverage:
    code: str
    name: str
    file: str
    line: int
    branches: list[Branch] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(1 for b in self.branches if b.measurable)

    @property
    def hit(self) -> int:
        return sum(
            1 for b, c in zip(self.branches, self.covered, strict=True) if b.measurable and c
        )

    @property
    def unmeasured(self) -> int:
        return sum(1 for b in self.branches if not b.measurable)

    @property
    def percent(self) -> float:
        return percent(self.hit, self.total)

    def uncovered(self) -> list[Branch]:
        return [
            b for b, c in zip(self.branches, self.covered, strict=True) if b.measurable and not c
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "covered": self.hit,
            "branches": self.total,
            "not_measured": self.unmeasured,
            "percent": round(self.percent, 1),
            "uncovered": [b.to_json() for b in self.uncovered()],
        }


@dataclass
class ModuleCoverage:
    id: str
    gates: list[GateCoverage]

    @property
    def total(self) -> int:
        return sum(g.total for g in self.gates)

    @property
    def hit(self) -> int:
        return sum(g.hit for g in self.gates)

    @property
    def unmeasured(self) -> int:
        return sum(g.unmeasured for g in self.gates)

    @property
    def percent(self) -> float:
        return percent(self.hit, self.total)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "covered": self.hit,
            "branches": self.total,
            "not_measured": self.unmeasured,
            "percent": round(self.percent, 1),
            "gates": [g.to_json() for g in self.gates],
        }


@dataclass
class CoverageReport:
    modules: list[ModuleCoverage]
    #: how semantic leaves were measured: "offline model", or why they were not
    semantic: str

    @property
    def total(self) -> int:
        return sum(m.total for m in self.modules)

    @property
    def hit(self) -> int:
        return sum(m.hit for m in self.modules)

    @property
    def unmeasured(self) -> int:
        return sum(m.unmeasured for m in self.modules)

    @property
    def percent(self) -> float:
        return percent(self.hit, self.total)

    def to_json(self, threshold: float | None = None) -> dict[str, Any]:
        return {
            "covered": self.hit,
            "branches": self.total,
            "not_measured": self.unmeasured,
            "percent": round(self.percent, 1),
            "threshold": threshold,
            "below_threshold": self.below(threshold),
            "semantic": self.semantic,
            "modules": [m.to_json() for m in self.modules],
        }

    def below(self, threshold: float | None) -> bool:
        # compared on the rounded figure the user sees, so "80.0% < 80" never happens
        return threshold is not None and round(self.percent, 1) < threshold

    def render(self, every_branch: bool = False) -> str:
        """The text table: per module, per gate, and the uncovered branches by file:line (the
        phrases of one list on one line, unless ``every_branch``)."""
        out = [
            "coverage: branches of when/require/forbid exercised by inline examples "
            f"(semantic questions: {self.semantic})"
        ]
        width = max((len(g.code) for m in self.modules for g in m.gates), default=8)
        for m in self.modules:
            out.append(f"{m.id:<{width + 2}} {_figure(m.hit, m.total)}")
            for g in m.gates:
                out.append(f"  {g.code:<{width}} {_figure(g.hit, g.total)}")
                out.extend(f"    {line}" for line in _uncovered_lines(g, every_branch))
        line = f"total: {_figure(self.hit, self.total)}"
        if self.unmeasured:
            line += f"; {self.unmeasured} semantic branches not measured"
        out.append(line)
        return "\n".join(out)


def _uncovered_lines(g: GateCoverage, every_branch: bool) -> Iterator[str]:
    items: dict[int, list[Branch]] = {}
    for b in g.branches:
        if b.outcome in ("phrase", "detector"):
            items.setdefault(b.site, []).append(b)
    done: set[int] = set()
    uncovered = g.uncovered()
    missing = set(uncovered)
    for b in uncovered:
        if every_branch or b.outcome not in ("phrase", "detector"):
            yield f"{b.file}:{b.line}:{b.col}: {b.clause}: {b.describe()}: {b.text}"
            continue
        if b.site in done:
            continue
        done.add(b.site)
        missed = [x for x in items[b.site] if x in missing]
        what = "phrases never found" if b.outcome == "phrase" else "detectors never fired"
        shown = ", ".join(x.text for x in missed[:5])
        more = f" and {len(missed) - 5} more" if len(missed) > 5 else ""
        yield (
            f"{b.file}:{b.line}:{b.col}: {b.clause}: {len(missed)} of {len(items[b.site])} "
            f"{what}: {shown}{more}"
        )


def percent(hit: int, total: int) -> float:
    # a gate with no measurable branch (only semantic leaves, unmeasured) has nothing uncovered
    return 100.0 * hit / total if total else 100.0


def _figure(hit: int, total: int) -> str:
    return f"{percent(hit, total):5.1f}% ({hit}/{total})"


# --- where each sub-expression was written ------------------------------------------------


@dataclass
class _Sources:
    """The module's parsed files: each gate's expressions and each define's body, with the file
    they are written in (a define may live in an imported library file)."""

    texts: dict[str, str]
    gates: dict[tuple[str, str], ast.GateDecl]
    defines: dict[str, tuple[ast.DefineDecl, str]]
    #: whether semantic leaves are measured (answered by the offline model)
    semantic_measured: bool = True

    @classmethod
    def of(cls, module: Module) -> _Sources:
        gates: dict[tuple[str, str], ast.GateDecl] = {}
        defines: dict[str, tuple[ast.DefineDecl, str]] = {}
        for path, text in module.sources.items():
            parsed = parse_file(text, path, DiagnosticBag())  # it compiled: no diagnostics
            for g in parsed.gates:
                gates[(path, g.code)] = g
            for d in parsed.defines:
                defines.setdefault(d.name, (d, path))
        return cls(module.sources, gates, defines)

    def snippet(self, file: str, loc: Loc) -> str:
        text = self.texts.get(file, "")[loc.start : loc.end]
        text = re.sub(r"\s+", " ", text).strip()
        return text if len(text) <= 70 else text[:67] + "..."


# --- evaluation --------------------------------------------------------------------------


@dataclass
class _Site:
    """One occurrence of a sub-expression in a gate's expanded tree, with its branches."""

    node: Node
    scope_headings: tuple[tuple[str, ...], ...]  # the in-section scopes above it, outermost first
    clause: str
    branches: list[tuple[Branch, Any]]  # (branch, what decides it: "true"/"false"/item index)
    items: tuple[Any, ...] = ()  # per-phrase or per-detector checks


def _walk(
    node: Node,
    expr: ast.Expr | None,
    file: str,
    src: _Sources,
    clause: str,
    scopes: tuple[tuple[str, ...], ...],
    out: list[_Site],
) -> None:
    """Pair the compiled tree with the syntax it came from (to name each branch's file, line and
    text), following define references into the file that defines them."""
    while isinstance(expr, ast.Ref) and expr.name in src.defines:
        decl, file = src.defines[expr.name]
        expr = decl.expr
    loc = expr.loc if expr is not None else node.loc

    def branch(outcome: str, at: Loc, measurable: bool = True, text: str | None = None) -> Branch:
        shown = text if text is not None else src.snippet(file, at)
        return Branch(clause, outcome, file, at.line, at.col, shown, measurable, len(out) - 1)

    if isinstance(node, NotNode):
        child = expr.child if isinstance(expr, ast.Not) else None
        _walk(node.child, child, file, src, clause, scopes, out)
        return
    if isinstance(node, SectionNode):
        child = expr.child if isinstance(expr, ast.InSection) else None
        _walk(node.child, child, file, src, clause, (*scopes, node.headings), out)
        return
    site = _Site(node, scopes, clause, [])
    out.append(site)
    if isinstance(node, CheckNode) and isinstance(node.check, PhraseCheck | DetectorCheck):
        items = _items(node, expr)
        if items is not None:
            checks, locs, outcome, labels = items
            site.items = checks
            for i, at in enumerate(locs):
                site.branches.append((branch(outcome, at, text=labels[i] if labels else None), i))
            site.branches.append((branch("false", loc), "false"))
            return
    measurable = not isinstance(node, SemanticNode) or src.semantic_measured
    site.branches.append((branch("true", loc, measurable), "true"))
    site.branches.append((branch("false", loc, measurable), "false"))
    kids: list[tuple[Node, ast.Expr | None]] = []
    if isinstance(node, AllNode):  # AnyNode too
        exprs = expr.children if isinstance(expr, ast.All | ast.Any_) else []
        kids = list(zip(node.children, _pad(exprs, len(node.children)), strict=True))
    elif isinstance(node, NearNode):
        args = (
            [a for a in expr.args if not isinstance(a, ast.Within)]
            if isinstance(expr, ast.Call)
            else []
        )
        kids = list(zip((node.a, node.b), _pad(args, 2), strict=True))
    elif isinstance(node, CountNode):
        args = list(expr.args[:1]) if isinstance(expr, ast.Call) else []
        kids = [(node.child, _pad(args, 1)[0])]
    for kid, kid_expr in kids:
        _walk(kid, kid_expr, file, src, clause, scopes, out)


def _pad(exprs: list[ast.Expr], n: int) -> list[ast.Expr | None]:
    """The syntax for each of ``n`` compiled children, or None where they do not pair up (a
    construct this module does not know: its branches are then placed at the node's own span)."""
    return list(exprs) if len(exprs) == n else [None] * n


def _items(
    node: CheckNode, expr: ast.Expr | None
) -> tuple[tuple[Any, ...], list[Loc], str, list[str] | None] | None:
    """A phrase list's phrases or a detector list's detectors as separate checks, with where
    each is written and, where that is not one phrase (a word list spliced into the call), the
    phrase itself as its label; None for a single one (its true branch says the same) or ``any``."""
    args = expr.args if isinstance(expr, ast.Call) else None
    check = node.check
    if isinstance(check, PhraseCheck):
        if len(check.phrases) < 2:
            return None
        phrases = tuple(PhraseCheck((p,)) for p in check.phrases)
        if args is not None and len(args) == len(check.phrases):
            return phrases, [a.loc for a in args], "phrase", None
        at = expr.loc if expr is not None else node.loc
        return phrases, [at] * len(phrases), "phrase", [f'"{p}"' for p in check.phrases]
    if isinstance(check, DetectorCheck):
        if args is None or len(check.names) < 2 or len(args) != len(check.names):
            return None  # pii(any) expands to every detector: one branch, not forty
        singles = tuple(type(check)((d.name,), (d,)) for d in check.detectors)
        return singles, [a.loc for a in args], "detector", None
    return None


def _scope(ctx: DocContext, headings: tuple[tuple[str, ...], ...]) -> Scope:
    scope: Scope = None
    for h in headings:
        scope = _intersect(scope, ctx.section_scope(h))
    return scope


def _roots(gate: Gate, decl: ast.GateDecl | None) -> Iterator[tuple[str, Node, ast.Expr | None]]:
    for clause, nodes, exprs in (
        ("when", gate.whens, decl.whens if decl else []),
        ("require", gate.requires, decl.requires if decl else []),
        ("forbid", gate.forbids, decl.forbids if decl else []),
    ):
        yield from (
            (clause, n, e) for n, e in zip(nodes, _pad(list(exprs), len(nodes)), strict=True)
        )


def gate_coverage(
    gate: Gate, src: _Sources, answer: Any | None = None, measured: bool = True
) -> GateCoverage:
    """The coverage of one gate by its examples. ``answer(doc, questions)`` answers semantic
    questions (a dict id -> Answer), None leaves them unmeasured."""
    src.semantic_measured = measured
    decl = src.gates.get((gate.file, gate.code))
    sites: list[_Site] = []
    for clause, node, expr in _roots(gate, decl):
        _walk(node, expr, gate.file, src, clause, (), sites)
    seen: set[tuple[int, Any]] = set()
    questions = [n.check.question for n in gate.semantic_nodes()]
    for ex in gate.examples:
        doc = document_from_text(ex.text, name=f"{gate.code}::example[{ex.index}]")
        ctx = DocContext(doc, eager=True)
        if questions and answer is not None:
            ctx.answers.update(answer(doc, questions))
        applies = all(evaluate(w, ctx, None).v is not False for w in gate.whens)
        for i, site in enumerate(sites):
            if site.clause != "when" and not applies:
                continue
            scope = _scope(ctx, site.scope_headings)
            v = evaluate(site.node, ctx, scope).v
            if v is True:
                seen.add((i, "true"))
            elif v is False:
                seen.add((i, "false"))
            for j, item in enumerate(site.items):
                if (i, j) not in seen and ctx.scoped(item, scope):
                    seen.add((i, j))
    cov = GateCoverage(gate.code, gate.name, gate.file, gate.loc.line)
    for i, site in enumerate(sites):
        for b, key in site.branches:
            cov.branches.append(b)
            cov.covered.append((i, key) in seen)
    return cov


def offline_answerer() -> tuple[Any | None, str]:
    """A function answering semantic questions with the offline model, and how it is described;
    (None, why) when the model cannot be loaded."""
    try:
        from engine.providers.offline import OfflineProvider, load_embedder

        embedder, why = load_embedder()
        if embedder is None:
            return None, f"not measured ({why or 'the offline model is not installed'})"
        provider = OfflineProvider(embedding_cache=None)  # no disk writes for a test run
    except Exception as exc:  # a missing or broken model: measured without it, and said so
        return None, f"not measured (the offline model could not be loaded: {exc})"

    def answer(doc: Any, questions: list[Any]) -> dict[str, Answer]:
        got = provider.answer_sync(doc, questions).answers
        return {q.id: got.get(q.id, Answer("unclear", 0.0, "no answer")) for q in questions}

    return answer, "answered by the offline model"


def coverage(modules: Iterable[Module], semantic: bool = True) -> CoverageReport:
    """The coverage report of every gate of ``modules``, in module and source order."""
    mods = list(modules)
    answer: Any | None = None
    if not semantic:
        how = "not measured"
    elif not any(g.semantic_nodes() for m in mods for g in m.gates):
        how = "none in these gates"
    else:
        answer, how = offline_answerer()
    out = []
    for m in mods:
        src = _Sources.of(m)
        gates = [gate_coverage(g, src, answer, answer is not None) for g in m.gates]
        out.append(ModuleCoverage(m.id, gates))
    return CoverageReport(out, how)
