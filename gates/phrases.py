"""`phrase("a", "b", ...)`: case-insensitive phrase lists with Unicode-aware word boundaries."""

from __future__ import annotations

import re
from typing import Any, ClassVar

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


class PhraseCheck(Check):
    kind: ClassVar[str] = "phrase"
    cost: ClassVar[int] = 1

    def __init__(self, phrases: tuple[str, ...]) -> None:
        self.phrases = phrases
        self._re = re.compile(phrase_pattern(phrases), re.IGNORECASE | re.UNICODE)

    @classmethod
    def from_spec(cls, spec: CheckSpec) -> PhraseCheck:
        phrases = tuple(str(a) for a in spec.args)
        if not phrases:
            raise CheckError("DSL112", "phrase(...) needs at least one phrase",
                             help='write e.g. phrase("data controller", "controller")')
        for i, p in enumerate(phrases):
            if not p.strip():
                raise CheckError("DSL112", "empty phrase", help="remove it or write the words to find",
                                 arg_index=i)
        return cls(phrases)

    def find(self, text: str) -> list[Match]:
        return [Match(m.start(), m.end(), detail=m.group()) for m in self._re.finditer(text)]

    def canonical(self) -> dict[str, Any]:
        return {"kind": "phrase", "phrases": sorted({p.casefold() for p in self.phrases})}

    def describe(self) -> str:
        shown = ", ".join(f'"{p}"' for p in self.phrases[:3])
        more = f", +{len(self.phrases) - 3}" if len(self.phrases) > 3 else ""
        return f"phrase({shown}{more})"
