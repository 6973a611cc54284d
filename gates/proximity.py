"""`followed_by(a, b, ...)` and `near(a, b, same ...)`: two span checks, ordered or not, bounded
by a distance and/or kept inside one sentence or paragraph; each match covers both parts."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from dsl.diagnostics import Code
from gates.base import Check, CheckError, Match

#: a paragraph ends at an empty line: a line break directly followed by another. A line of only
#: spaces does not end one: the hand-written idiom the built-in modules used before,
#: ``(?:[^\n]|\n[^\n]){0,N}?``, drew the line there too, and the rewrite keeps every outcome.
PARAGRAPH_BREAK = re.compile(r"\n\n")
#: a sentence ends at '.', '!' or '?' (closing quotes and brackets may follow) before whitespace,
#: and at every paragraph break. The whitespace's position is what the gap must contain.
_SENTENCE_END = re.compile(r"[.!?][\"'\u2019\u201d)\]]*(\s)")
#: words whose trailing period is an abbreviation, not a sentence end ("e.g. our DPO").
ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "mr",
        "mrs",
        "ms",
        "mx",
        "dr",
        "prof",
        "st",
        "no",
        "nos",
        "art",
        "arts",
        "ltd",
        "inc",
        "co",
        "corp",
        "vs",
        "cf",
        "approx",
        "fig",
        "sec",
        "para",
        "paras",
        "p",
        "pp",
        "ch",
        "vol",
        "jr",
        "sr",
        "u.s",
        "u.k",
    ]
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")
SCOPES = ("sentence", "paragraph")
#: the most trigger conjunctions a pair of operands may make for the prefilter (their product);
#: past this the first operand's alone are kept (a superset: it must match too).
_MAX_CONJUNCTIONS = 64


def breaks(text: str, scope: str) -> list[tuple[int, int]]:
    """Where ``scope`` ends in ``text``: (first character of the break, the character a gap must
    reach past for it to count), in order. A gap [g0, g1) crosses a break (s, w) when
    ``g0 <= s`` and ``w < g1``: the punctuation and the whitespace after it both lie in it."""
    out: list[tuple[int, int]] = []
    if scope == "sentence":
        for m in _SENTENCE_END.finditer(text):
            s = m.start()
            if text[s] == ".":
                word = _WORD_BEFORE.search(text, max(0, s - 12), s)
                w = word.group(1).casefold() if word else ""
                # an abbreviation, or an initial ("J. Smith"), does not end the sentence
                if w in ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                    continue
            out.append((s, m.start(1)))
    for m in PARAGRAPH_BREAK.finditer(text):
        out.append((m.start(), m.end() - 1))
    out.sort()
    return out


def _crosses(brk: list[tuple[int, int]], starts: list[int], g0: int, g1: int) -> bool:
    i = bisect.bisect_left(starts, g0)
    # breaks are sorted by start and do not nest, so the first one starting in the gap is
    # the one that can end inside it
    while i < len(brk) and brk[i][0] < g1:
        if brk[i][1] < g1:
            return True
        i += 1
    return False


def _merged(checks: Sequence[Check], text: str) -> list[Match]:
    """The matches of several checks as one list in start order; of matches starting at the
    same place, the longest (a span check alternative, as ``any { ... }`` would give)."""
    found: list[Match] = []
    for c in checks:
        if c.kind in ("pii", "secret"):  # their detail is the entity type: kept
            found.extend(m._replace(display=None) for m in c.find(text))
        else:  # a regex's detail is the matched text: never carried on
            found.extend(m._replace(detail="") for m in c.find(text))
    found.sort(key=lambda m: (m.start, -m.end))
    out: list[Match] = []
    for m in found:
        if out and m.start == out[-1].start:
            continue
        out.append(m)
    return out


def _sensitive(checks: Sequence[Check]) -> str | None:
    kinds = {c.kind for c in checks}
    return "secret" if "secret" in kinds else "pii" if "pii" in kinds else None


class ProximityCheck(Check):
    """Matches of ``a`` paired with matches of ``b``: in order (``followed_by``) or either way
    (``near`` with a scope), at most ``within`` characters apart and/or in one sentence or
    paragraph. A match spans from the first part's start to the second part's end."""

    kind: ClassVar[str] = "proximity"
    cost: ClassVar[int] = 2

    def __init__(
        self,
        a: Sequence[Check],
        b: Sequence[Check],
        within: int | None,
        scope: str | None,
        ordered: bool,
    ) -> None:
        if within is None and scope is None:
            raise CheckError(Code.BAD_ARGUMENTS, "a distance or a scope is needed")
        if scope is not None and scope not in SCOPES:
            raise CheckError(Code.UNKNOWN_UNIT, f"unknown scope '{scope}'")
        self.a, self.b = tuple(a), tuple(b)
        self.within, self.scope, self.ordered = within, scope, ordered

    def find(self, text: str) -> list[Match]:
        a = _merged(self.a, text)
        if not a:
            return []
        b = _merged(self.b, text)
        if not b:
            return []
        brk = breaks(text, self.scope) if self.scope else []
        starts = [s for s, _ in brk]
        if self.ordered:
            return self._ordered(a, b, brk, starts)
        return self._either(a, b, brk, starts)

    def _fits(self, g0: int, g1: int, brk: list[tuple[int, int]], starts: list[int]) -> bool:
        if self.within is not None and g1 - g0 > self.within:
            return False
        return not (self.scope and _crosses(brk, starts, g0, g1))

    def _ordered(
        self, a: list[Match], b: list[Match], brk: list[tuple[int, int]], starts: list[int]
    ) -> list[Match]:
        # as a regex `A gap B` scans: each `a` takes the first `b` that starts at or after its
        # end, and the next match starts after the `b` it used (matches never overlap)
        b_starts = [m.start for m in b]
        out: list[Match] = []
        last_end = -1
        for x in a:
            if x.start < last_end:
                continue
            i = bisect.bisect_left(b_starts, x.end)
            if i == len(b):
                continue
            y = b[i]
            if self._fits(x.end, y.start, brk, starts):
                out.append(self._match(x, y))
                last_end = y.end
        return out

    def _either(
        self, a: list[Match], b: list[Match], brk: list[tuple[int, int]], starts: list[int]
    ) -> list[Match]:
        # each `a` with the nearest `b` on either side (or one overlapping it)
        b_starts = [m.start for m in b]
        b_ends = sorted(b, key=lambda m: m.end)
        ends = [m.end for m in b_ends]
        out: dict[tuple[int, int], Match] = {}
        for x in a:
            cands = []
            i = bisect.bisect_left(b_starts, x.end)
            if i < len(b):
                cands.append((b[i], x.end, b[i].start))
            j = bisect.bisect_right(ends, x.start) - 1
            if j >= 0:
                cands.append((b_ends[j], b_ends[j].end, x.start))
            # overlapping spans: a `b` starting before `a` ends and ending after it starts
            k = bisect.bisect_left(b_starts, x.end) - 1
            if k >= 0 and b[k].end > x.start:
                cands.append((b[k], 0, 0))
            for y, g0, g1 in cands:
                if self._fits(g0, g1, brk, starts):
                    first, second = (x, y) if x.start <= y.start else (y, x)
                    m = self._match(first, second)
                    out.setdefault((m.start, m.end), m)
        return [out[k] for k in sorted(out)]

    def _match(self, x: Match, y: Match) -> Match:
        # the entity type of a sensitive part travels with the match (its text never does)
        return Match(x.start, max(x.end, y.end), detail=x.detail or y.detail)

    def triggers(self) -> tuple[tuple[str, ...], ...] | None:
        ta, tb = _union(self.a), _union(self.b)
        if ta is not None and tb is not None and len(ta) * len(tb) <= _MAX_CONJUNCTIONS:
            return tuple(x + y for x in ta for y in tb)
        return ta if ta is not None else tb

    def canonical(self) -> dict[str, Any]:
        return {
            "kind": "followed_by" if self.ordered else "near",
            "a": [c.canonical() for c in self.a],
            "b": [c.canonical() for c in self.b],
            "within": self.within,
            "same": self.scope,
        }

    def describe(self) -> str:
        def side(cs: tuple[Check, ...]) -> str:
            return cs[0].describe() if len(cs) == 1 else f"any {{{len(cs)} checks}}"

        limits = [f"within {self.within} chars"] if self.within is not None else []
        limits += [f"same {self.scope}"] if self.scope else []
        name = "followed_by" if self.ordered else "near"
        return f"{name}({side(self.a)}, {side(self.b)}, {', '.join(limits)})"


class _PiiProximity(ProximityCheck):
    kind: ClassVar[str] = "pii"


class _SecretProximity(ProximityCheck):
    kind: ClassVar[str] = "secret"


def _union(checks: tuple[Check, ...]) -> tuple[tuple[str, ...], ...] | None:
    out: list[tuple[str, ...]] = []
    for c in checks:
        t = c.triggers()
        if t is None:
            return None
        out.extend(t)
    return tuple(out)


def proximity(
    a: Sequence[Check],
    b: Sequence[Check],
    within: int | None,
    scope: str | None,
    ordered: bool,
) -> ProximityCheck:
    """The check for ``followed_by(a, b, ...)`` or ``near(a, b, same ...)``. A match that
    holds personal data or a secret is reported as such (its kind is ``pii`` or ``secret``), so
    that reports and SARIF files never quote it."""
    sensitive = _sensitive([*a, *b])
    cls: type[ProximityCheck] = (
        _SecretProximity
        if sensitive == "secret"
        else _PiiProximity
        if sensitive == "pii"
        else ProximityCheck
    )
    return cls(a, b, within, scope, ordered)
