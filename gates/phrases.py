"""`phrase("a", "b", ...)`: case-insensitive phrase lists with Unicode-aware word boundaries."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import re2

from dsl.diagnostics import Code
from gates import scan
from gates.base import Check, CheckError, CheckSpec, Match


def phrase_pattern(phrases: tuple[str, ...]) -> str:
    """One alternation of literal phrases; any run of whitespace in a phrase matches any other."""
    parts = []
    # Longest first so "data controller" wins over "data" at the same position.
    for p in sorted(set(phrases), key=lambda s: (-len(s), s)):
        words = p.split()
        parts.append(r"\s+".join(re.escape(w) for w in words))
    # Python's re treats \w as Unicode, so "José" is one word; the lookarounds are generated
    # here from literals, never authored, and cannot backtrack super-linearly.
    return r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)"


def phrase_prefilter(phrases: tuple[str, ...]) -> str:
    """An RE2 pattern that matches wherever :func:`phrase_pattern` can (a superset): Python's
    case folding and ``\\s`` spelled out as classes, the word-boundary lookarounds left out."""
    space = scan.py_space_class() + "+"
    parts = []
    for p in sorted(set(phrases), key=lambda s: (-len(s), s)):
        parts.append(space.join("".join(scan.py_ignorecase_class(c) for c in w) for w in p.split()))
    return "(?:" + "|".join(parts) + ")"


#: a character that is not an ASCII word character, or the text's edge: what must surround a
#: phrase match (Python's Unicode ``(?<!\w)``/``(?!\w)`` also refuse accented letters, so this
#: is a superset; RE2 has no lookaround, so the neighbour is part of the match)
_EDGE_BEFORE = "(?:^|[^A-Za-z0-9_])"
_EDGE_AFTER = "(?:$|[^A-Za-z0-9_])"


def _word(ch: str) -> bool:
    """Python's Unicode ``\\w``: alphanumeric (isalnum) or underscore."""
    return ch.isalnum() or ch == "_"


class PhraseCheck(Check):
    kind: ClassVar[str] = "phrase"
    cost: ClassVar[int] = 1
    #: Python's case folding and ``\s`` spelled out as classes make each DFA state of a Set
    #: costly to build (60-100 ms on a first megabyte for the built-in lists, ~30 ms saved per
    #: megabyte once built): Sets of their own, once the scanner has read enough to repay them
    prefilter: ClassVar[str] = "late-set"

    def __init__(self, phrases: tuple[str, ...]) -> None:
        self.phrases = phrases
        self._re = re.compile(phrase_pattern(phrases), re.IGNORECASE | re.UNICODE)
        self._pre = re2.compile(phrase_prefilter(phrases), scan.options())

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> PhraseCheck:
        phrases = tuple(str(a) for a in spec.args)
        if not phrases:
            raise CheckError(
                Code.BAD_PHRASES,
                "phrase(...) needs at least one phrase",
                help='write e.g. phrase("data controller", "controller")',
            )
        for i, p in enumerate(phrases):
            if not p.strip():
                raise CheckError(
                    Code.BAD_PHRASES,
                    "empty phrase",
                    help="remove it or write the words to find",
                    arg_index=i,
                )
        return cls(phrases)

    def find(self, text: str) -> list[Match]:
        if scan.is_reference(text):
            return [Match(m.start(), m.end()) for m in self._re.finditer(text)]
        return list(self._confirm(text, scan.spans(self._pre, text)))

    def iter_find(self, text: str) -> Iterator[Match]:
        if scan.is_reference(text):
            return iter(self.find(text))
        return self._confirm(text, scan.iter_spans(self._pre, text))

    def _confirm(self, text: str, candidates: Iterable[tuple[int, int]]) -> Iterator[Match]:
        # RE2 finds the candidate spans in linear time; Python `re` then decides at each
        # candidate position only. Every position where the Python pattern matches lies in a
        # candidate span (the prefilter is a superset and non-empty), and positions are tried in
        # order, resuming after each match, exactly as `finditer` would.
        match = self._re.match
        resume, n = 0, len(text)
        for s, e in candidates:
            if (
                s >= resume
                and (s == 0 or not _word(text[s - 1]))
                and (e == n or not _word(text[e]))
            ):
                # Both sides are non-word: Python tries the same alternatives in the same order
                # (each a subset of its prefilter twin), so it matches exactly [s, e) here.
                yield Match(s, e)
                resume = e
                continue
            pos = max(s, resume)
            while pos < e:
                m = match(text, pos)
                if m is None:
                    pos += 1
                    continue
                yield Match(m.start(), m.end())
                pos = resume = m.end()

    def triggers(self) -> tuple[tuple[str, ...], ...]:
        # the candidate pattern with the word edges it leaves out: a list whose words occur
        # only inside longer words ("pt" in "except") or never as the phrase ("our" and
        # "patient", not "our patient") has no match
        return ((_EDGE_BEFORE + self._pre.pattern + _EDGE_AFTER,),)

    def canonical(self) -> dict[str, Any]:
        return {"kind": "phrase", "phrases": sorted({p.casefold() for p in self.phrases})}

    def describe(self) -> str:
        shown = ", ".join(f'"{p}"' for p in self.phrases[:3])
        more = f", +{len(self.phrases) - 3}" if len(self.phrases) > 3 else ""
        return f"phrase({shown}{more})"
