"""Evaluate compiled gates on a document with three-valued (Kleene) logic.

A semantic question without an answer yet is *pending* (unknown). Cheap checks run first; if they
already decide a gate (``any`` with a true branch, ``all`` with a false one), the pending questions
under it are dropped: only questions that can still change an outcome are ever asked. An answer of
``unclear`` is unknown without being pending: the gate becomes INDETERMINATE."""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dsl.compile import (
    AllNode,
    AnyNode,
    CheckNode,
    CountNode,
    Gate,
    NearNode,
    Node,
    NotNode,
    SectionNode,
    SemanticNode,
)
from engine import budget
from engine.document import Document, Section
from engine.providers.base import Answer
from gates import scan
from gates.base import Check, Match

Scope = tuple[tuple[int, int], ...] | None


@dataclass(frozen=True, slots=True)
class Hit:
    """A span that supports a result, with the check that produced it."""

    start: int
    end: int
    label: str
    kind: str
    detail: str | None = None
    #: entity type for detector hits (US_SSN, AWS_ACCESS_KEY...), so examples can expect it.
    entity: str | None = None


@dataclass(slots=True)
class Value:
    v: bool | None
    hits: list[Hit] = field(default_factory=list)
    pending: frozenset[str] = frozenset()


_FALSE = Value(False)


class DocContext:
    """Per-document state shared by every gate: the text as the checks receive it, memoised
    check matches, section ranges and the semantic answers collected so far. Each check runs
    over the document at most once."""

    def __init__(self, doc: Document, profile: bool = False, eager: bool = False) -> None:
        self.doc = doc
        #: evaluate every node in full (every match, no short cut): the straightforward
        #: evaluation the equivalence tests compare the demand-driven one against.
        self.eager = eager
        self.answers: dict[str, Answer] = {}
        self.profile = profile
        self._matches: dict[str, list[Match]] = {}
        self._sections: dict[tuple[str, ...], tuple[tuple[int, int], ...]] = {}
        self._ends: list[int] | None = None
        self._hits: dict[tuple[str, str, Scope], list[Hit]] = {}
        self._exists: dict[tuple[str, Scope], bool] = {}
        #: check key -> (label, kind, ms) for --profile
        self.timings: dict[str, tuple[str, str, float]] = {}
        #: the validation's deadline (see engine.budget), checked before each check runs
        self.deadline = budget.current()
        self._scan_text: scan.ScanText | None = None

    @property
    def scan_text(self) -> scan.ScanText:
        """The document's text with its UTF-8 encoding, the patterns the prefilter proved
        absent and the detectors' results (``gates.scan.ScanText``): built on first use and
        given to every check, so the text is encoded once per document."""
        st = self._scan_text
        if st is None:
            st = self._scan_text = scan.ScanText(self.doc.text)
        return st

    def release(self) -> None:
        """Drop the encoded text and the detectors' results (a 10 MB document holds 20+ MB):
        for when every check has run but the context lives on, waiting for semantic answers.
        A check that runs after (a re-evaluation reaching a new one) encodes the text again."""
        self._scan_text = None

    def _in_time(self, check: Check) -> None:
        if self.deadline is not None:
            self.deadline.check(f"before a {check.kind} check")

    def matches(self, check: Check) -> list[Match]:
        key = check.key
        found = self._matches.get(key)
        if found is None:
            self._in_time(check)
            t0 = time.perf_counter()
            if self.deadline is None:
                found = check.find(self.scan_text)
            else:  # one check may find a million matches: look at the clock as they come
                found = []
                for i, m in enumerate(check.iter_find(self.scan_text), 1):
                    if not i & 0xFFF:
                        self.deadline.check(f"inside a {check.kind} check")
                    found.append(m)
            if self.profile:
                self.timings[key] = (
                    check.describe(),
                    check.kind,
                    (time.perf_counter() - t0) * 1000,
                )
            self._matches[key] = found
        return found

    def scoped(self, check: Check, scope: Scope) -> list[Match]:
        found = self.matches(check)
        return found if scope is None else [m for m in found if _in_scope(m, scope)]

    def exists(self, check: Check, scope: Scope) -> bool:
        """Whether ``check`` matches at least once inside ``scope``, stopping at the first such
        match when the check's matches are not known yet (a ``require`` or a ``when`` needs no
        more). A run that reaches the end of the text has seen every match and keeps them."""
        key = check.key
        memo = (key, scope)
        got = self._exists.get(memo)
        if got is not None:
            return got
        found = self._matches.get(key)
        if found is not None:
            got = bool(found) if scope is None else any(_in_scope(m, scope) for m in found)
        else:
            self._in_time(check)
            t0 = time.perf_counter()
            seen: list[Match] = []
            got = False
            for i, m in enumerate(check.iter_find(self.scan_text), 1):
                if self.deadline is not None and not i & 0xFFF:
                    self.deadline.check(f"inside a {check.kind} check")
                seen.append(m)
                if scope is None or _in_scope(m, scope):
                    got = True
                    break
            if not got:
                self._matches[key] = seen
            if self.profile:
                self.timings[key] = (
                    check.describe(),
                    check.kind,
                    (time.perf_counter() - t0) * 1000,
                )
        self._exists[memo] = got
        return got

    def prime(self, key: str, matches: list[Match]) -> None:
        """Install matches computed elsewhere (e.g. by a multi-pattern scanner)."""
        self._matches[key] = matches

    def prefilter(self, scanner: scan.Scanner) -> None:
        """One multi-pattern pass over the document: checks that cannot match are primed with
        no matches, and the patterns it proved absent are kept on :attr:`scan_text`, which the
        rest run over."""
        if self.deadline is not None:
            self.deadline.check("before the prefilter")
        for key in scanner.scan(self.scan_text):
            self._matches.setdefault(key, [])

    def section_scope(self, headings: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
        got = self._sections.get(headings)
        if got is None:
            got = tuple(_section_ranges(self.doc.sections, headings, self._subtree_ends()))
            self._sections[headings] = got
        return got

    def _subtree_ends(self) -> list[int]:
        if self._ends is None:
            self._ends = _subtree_ends(self.doc.sections)
        return self._ends


def _subtree_ends(sections: list[Section]) -> list[int]:
    """Where each section ends with its sub-sections: before the next heading of the same or a
    higher level. One right-to-left pass with a stack, instead of a forward scan per section."""
    ends = [0] * len(sections)
    stack: list[int] = []  # indices of later headings, levels strictly increasing from the top
    for i in range(len(sections) - 1, -1, -1):
        sec = sections[i]
        while stack and sections[stack[-1]].level > sec.level:
            stack.pop()
        ends[i] = sections[stack[-1] - 1].end if stack else sections[-1].end
        if sec.heading is not None:
            stack.append(i)
    return ends


def _section_ranges(
    sections: list[Section], headings: tuple[str, ...], ends: list[int]
) -> list[tuple[int, int]]:
    """``Document.section_ranges`` in linear time (it rescans the sections after each match)."""
    wanted = [h.casefold() for h in headings]
    ranges: list[tuple[int, int]] = []
    for i, sec in enumerate(sections):
        if sec.heading is None or not any(w in sec.heading.casefold() for w in wanted):
            continue
        if ranges and sec.start < ranges[-1][1]:
            continue  # already inside a matched parent section
        ranges.append((sec.start, ends[i]))
    return ranges


def _in_scope(m: Match, scope: Scope) -> bool:
    if scope is None:
        return True
    # scopes are sorted and disjoint: only the last range starting at or before m can hold it
    i = bisect.bisect_right(scope, (m.start, _INF)) - 1
    return i >= 0 and m.end <= scope[i][1]


_INF = float("inf")


def _intersect(a: Scope, b: tuple[tuple[int, int], ...]) -> Scope:
    """Intersection of two sorted, disjoint range lists, by one merge (not all pairs)."""
    if a is None:
        return b
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        s, e = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if s < e:
            out.append((s, e))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def evaluate(node: Node, ctx: DocContext, scope: Scope = None, hits: bool = True) -> Value:
    """The node's value on the document. With ``hits=False`` only the truth value is needed
    (a ``when``, a ``require``, anything under ``not``): checks stop at their first match and
    the returned hits are empty. ``all`` stops at its first false child and, without hits,
    ``any`` at its first true one: the value and the pending questions are the same as if
    every child had been evaluated."""
    if ctx.eager:
        hits = True
    if isinstance(node, CheckNode):
        if not hits:
            return Value(True) if ctx.exists(node.check, scope) else _FALSE
        # one hit list per check, label and scope, however many gates share the define
        memo = (node.check.key, node.label, scope)
        found_hits = ctx._hits.get(memo)
        if found_hits is None:
            to_hit = _hit_maker(node, ctx.doc.text)
            found_hits = ctx._hits[memo] = [to_hit(m) for m in ctx.scoped(node.check, scope)]
        return Value(bool(found_hits), found_hits)
    if isinstance(node, SemanticNode):
        qid = node.check.question.id
        ans = ctx.answers.get(qid)
        if ans is None:
            return Value(None, [], frozenset((qid,)))
        if ans.verdict == "yes":
            label = budget.short_label(node.label)
            return Value(
                True,
                [Hit(ev.start, ev.end, label, "semantic", None) for ev in ans.evidence]
                if hits
                else [],
            )
        if ans.verdict == "no":
            return _FALSE
        return Value(None)
    if isinstance(node, NotNode):
        child = evaluate(node.child, ctx, scope, False)
        return Value(None if child.v is None else not child.v, [], child.pending)
    if isinstance(node, AnyNode):  # before AllNode: AnyNode subclasses it
        vals = []
        for c in node.ordered:
            val = evaluate(c, ctx, scope, hits)
            if val.v is True and not hits and not ctx.eager:
                return val
            vals.append(val)
        if any(v.v is True for v in vals):
            return Value(True, [h for v in vals if v.v is True for h in v.hits])
        if any(v.v is None for v in vals):
            return Value(None, [], frozenset().union(*(v.pending for v in vals if v.v is None)))
        return _FALSE
    if isinstance(node, AllNode):
        vals = []
        for c in node.ordered:
            val = evaluate(c, ctx, scope, hits)
            if val.v is False and not ctx.eager:
                return _FALSE
            vals.append(val)
        if any(v.v is False for v in vals):
            return _FALSE
        if any(v.v is None for v in vals):
            return Value(None, [], frozenset().union(*(v.pending for v in vals if v.v is None)))
        return Value(True, [h for v in vals for h in v.hits])
    if isinstance(node, SectionNode):
        return evaluate(node.child, ctx, _intersect(scope, ctx.section_scope(node.headings)), hits)
    if isinstance(node, NearNode):
        # a side with nothing in scope decides it before either side's matches are all built
        if not (evaluate(node.a, ctx, scope, False).v and evaluate(node.b, ctx, scope, False).v):
            return _FALSE
        (a, a_hit), (b, b_hit) = _spans(node.a, ctx, scope), _spans(node.b, ctx, scope)
        got = _near(a, b, node.within, a_hit, b_hit)
        return got if hits or not got.v else Value(True)
    if isinstance(node, CountNode):
        found = evaluate(node.child, ctx, scope).hits
        n = len({(h.start, h.end) for h in found})
        ok = {
            ">=": n >= node.n,
            "<=": n <= node.n,
            "==": n == node.n,
            ">": n > node.n,
            "<": n < node.n,
        }[node.op]
        return Value(ok, found if ok and hits else [])
    raise AssertionError(f"unknown node {node!r}")  # pragma: no cover


def _hit_maker(node: CheckNode, text: str) -> Callable[[Match], Hit]:
    # one short label shared by every hit: the check's full description (a whole pattern)
    # repeated on each span made reports of hundreds of MB
    label, kind = budget.short_label(node.label), node.check.kind
    if kind == "regex":  # a regex match may be PII: line:col only, no text
        return lambda m: Hit(m.start, m.end, label, kind, None, None)
    if kind in ("pii", "secret"):
        return lambda m: Hit(
            m.start,
            m.end,
            label,
            kind,
            f"{m.detail} {m.display}" if m.display else m.detail,
            m.detail,
        )
    if kind == "phrase":  # the phrase as written, cut only for the matches that become hits
        return lambda m: Hit(m.start, m.end, label, kind, text[m.start : m.end], None)
    return lambda m: Hit(m.start, m.end, label, kind, m.detail, None)


def _spans(node: Node, ctx: DocContext, scope: Scope) -> tuple[list[Any], Callable[[Any], Hit]]:
    """What `near` pairs up: a check's own matches (made hits only if they find a partner, so
    57,000 "retain" matches near no "indefinitely" build nothing), else the node's hits."""
    if isinstance(node, CheckNode) and not ctx.eager:
        return ctx.scoped(node.check, scope), _hit_maker(node, ctx.doc.text)
    return evaluate(node, ctx, scope).hits, _same


def _same(h: Hit) -> Hit:
    return h


def _near(
    a: list[Any],
    b: list[Any],
    within: int,
    a_hit: Callable[[Any], Hit] = _same,
    b_hit: Callable[[Any], Hit] = _same,
) -> Value:
    """The `a` spans and the `b` spans that have a partner at most `within` characters away,
    as hits.

    Two spans are that close exactly when ``b.start <= a.end + within`` and
    ``b.end >= a.start - within``; so an `a` span has a partner when, among the `b` spans
    starting early enough (a prefix in start order, found by bisect), the furthest end reaches
    back far enough, and symmetrically. O((A + B) log B), whatever the spans' lengths or density
    (the pairwise scan was quadratic when one long span, such as a key block, widened every
    window)."""
    if not a or not b:
        return _FALSE
    out: dict[tuple[int, int, str], Hit] = {}
    for this, to_hit, other in ((a, a_hit, b), (b, b_hit, a)):
        ordered = sorted(other, key=lambda h: h.start)
        starts = [h.start for h in ordered]
        reach = list(itertools.accumulate((h.end for h in ordered), max))
        for h in this:
            i = bisect.bisect_right(starts, h.end + within) - 1
            if i >= 0 and reach[i] >= h.start - within:
                hit = to_hit(h)
                out[(hit.start, hit.end, hit.label)] = hit
    hits = sorted(out.values(), key=lambda h: (h.start, h.end))
    return Value(bool(hits), hits)


@dataclass
class GateOutcome:
    """``v``: True pass, False fail, None undecided; ``applicable`` False means not applicable."""

    v: bool | None
    applicable: bool
    hits: list[Hit]
    pending: frozenset[str]
    ms: float = 0.0
    #: hits found but not kept by :func:`cap_hits`
    hits_omitted: int = 0


def evaluate_gate(gate: Gate, ctx: DocContext) -> GateOutcome:
    if ctx.deadline is not None:
        ctx.deadline.check(f"before gate {gate.code}")
    t0 = time.perf_counter()
    pending: frozenset[str] = frozenset()
    if gate.when_node is not None:
        w = evaluate(gate.when_node, ctx, None, False)
        if w.v is False:
            return GateOutcome(True, False, [], frozenset(), (time.perf_counter() - t0) * 1000)
        pending = w.pending  # an undecidable condition keeps the gate applicable (fail-closed)
    req = (
        Value(True) if gate.require_node is None else evaluate(gate.require_node, ctx, None, False)
    )
    forb = Value(False) if gate.forbid_node is None else evaluate(gate.forbid_node, ctx)
    hits = (
        sorted(
            {(h.start, h.end, h.label): h for h in forb.hits}.values(),
            key=lambda h: (h.start, h.end),
        )
        if forb.v
        else []
    )
    if req.v is False or forb.v is True:
        v: bool | None = False  # still pending on `when`: a failure only counts if it applies
    elif req.v is True and forb.v is False:
        v = True
        pending = frozenset()  # passes whether or not it applies: nothing left to ask
    else:
        v = None
        pending = (
            pending
            | (req.pending if req.v is None else frozenset())
            | (forb.pending if forb.v is None else frozenset())
        )
    return GateOutcome(v, True, hits, pending, (time.perf_counter() - t0) * 1000)


def cap_hits(
    outcomes: list[GateOutcome], per_finding: int | None = None, per_report: int | None = None
) -> str | None:
    """Keep at most ``per_finding`` hits on each outcome and ``per_report`` over all of them (in
    the order given), counting the rest in ``hits_omitted``; returns the report's warning when
    some were dropped. Defaults from :func:`engine.budget.span_limits`. The gate's status does
    not change: a failure with 25,610 matches still fails, its report lists the first ones."""
    if per_finding is None or per_report is None:
        env_finding, env_report = budget.span_limits()
        per_finding = env_finding if per_finding is None else per_finding
        per_report = env_report if per_report is None else per_report
    left, dropped = per_report, 0
    for out in outcomes:
        keep = min(len(out.hits), per_finding, left)
        out.hits_omitted = len(out.hits) - keep
        if out.hits_omitted:
            out.hits = out.hits[:keep]
            dropped += out.hits_omitted
        left -= keep
    if not dropped:
        return None
    return (
        f"{dropped:,} more spans found but not listed: a report lists at most {per_finding:,} "
        f"per gate and {per_report:,} in all (CLEARANCE_MAX_SPANS, "
        "CLEARANCE_MAX_REPORT_SPANS); each gate's spans_omitted says how many it has"
    )
