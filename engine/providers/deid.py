"""De-identification: swap detected PII/PHI and secrets for typed placeholders, keeping an offset map."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: a finder returns objects with ``start``, ``end`` and ``detail`` (the entity type), like Match.
Finder = Callable[[str], Iterable[Any]]


@dataclass(frozen=True, slots=True)
class Segment:
    """One run of the redacted text and the original run it stands for. Copied runs have equal
    lengths; a placeholder run maps as a whole onto the value it hides."""

    red_start: int
    red_end: int
    orig_start: int
    orig_end: int
    placeholder: str | None = None  # None for text copied verbatim


@dataclass(frozen=True)
class Deidentified:
    original: str
    text: str
    segments: tuple[Segment, ...]
    #: placeholder -> entity type, for the prompt and the tests (never the values themselves).
    entities: dict[str, str]

    @property
    def replaced(self) -> int:
        return sum(1 for s in self.segments if s.placeholder is not None)

    def _find(self, starts: list[int], offset: int) -> Segment:
        i = max(0, bisect.bisect_right(starts, offset) - 1)
        return self.segments[i]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the redacted text to the original; a span that touches a placeholder
        widens to the whole hidden value, so evidence never cuts a value in half."""
        if not self.segments:
            return start, end
        starts = [s.red_start for s in self.segments]
        a = self._find(starts, start)
        # the end is exclusive: look up the segment holding the last character of the span
        b = self._find(starts, max(start, end - 1))
        o_start = a.orig_start if a.placeholder else a.orig_start + (start - a.red_start)
        o_end = b.orig_end if b.placeholder else b.orig_start + (end - b.red_start)
        return o_start, max(o_start, o_end)

    def to_redacted(self, offset: int) -> int:
        """Map an original offset (e.g. a section boundary) into the redacted text; an offset
        inside a hidden value snaps to the start of its placeholder."""
        if not self.segments:
            return offset
        starts = [s.orig_start for s in self.segments]
        seg = self.segments[max(0, bisect.bisect_right(starts, offset) - 1)]
        if seg.placeholder is not None:
            return seg.red_start if offset < seg.orig_end else seg.red_end
        return seg.red_start + min(offset - seg.orig_start, seg.red_end - seg.red_start)


def default_finders() -> list[Finder]:
    """Our own detectors, read at call time so newly registered ones are picked up. We take every
    raw match (``gates.redact.find_all``), not ``detect_all``: that one keeps the better of two
    overlapping matches, which can leave the rest of a longer value in the text; here overlaps
    are united instead, so no part of any detected value leaves the machine."""
    try:
        from gates.redact import find_all
    except ImportError:
        pass
    else:
        return [find_all]
    from gates import pii, secrets

    return [d.find for d in (*pii.DETECTORS.values(), *secrets.DETECTORS.values())]


def _entity(match: Any) -> str:
    name = str(getattr(match, "detail", "") or getattr(match, "entity", "") or "PII")
    return "".join(c if c.isalnum() else "_" for c in name.upper()) or "PII"


def deidentify(text: str, finders: Iterable[Finder] | None = None) -> Deidentified:
    """Replace every detected value with ``[TYPE_n]``; the same value gets the same placeholder so
    the model can still tell that two mentions are one address."""
    found: list[tuple[int, int, float, str]] = []
    for finder in finders if finders is not None else default_finders():
        for m in finder(text):
            if 0 <= m.start < m.end <= len(text):
                found.append((m.start, m.end, float(getattr(m, "score", 1.0)), _entity(m)))
    # Overlapping detections are united, so nothing leaks out of a partly covered value; the
    # united span is named after its best-scoring (then longest) member.
    found.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    spans: list[tuple[int, int, str]] = []
    best: list[tuple[float, int]] = []
    for start, end, score, ent in found:
        if spans and start < spans[-1][1]:
            prev = spans[-1]
            rank = (score, end - start)
            spans[-1] = (prev[0], max(end, prev[1]), ent if rank > best[-1] else prev[2])
            best[-1] = max(best[-1], rank)
            continue
        spans.append((start, end, ent))
        best.append((score, end - start))

    pieces: list[str] = []
    segments: list[Segment] = []
    entities: dict[str, str] = {}
    numbering: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    pos = red = 0
    for start, end, ent in spans:
        if start > pos:
            pieces.append(text[pos:start])
            segments.append(Segment(red, red + start - pos, pos, start))
            red += start - pos
        key = (ent, text[start:end])
        if key not in numbering:
            counters[ent] = counters.get(ent, 0) + 1
            numbering[key] = f"[{ent}_{counters[ent]}]"
        ph = numbering[key]
        entities[ph] = ent
        pieces.append(ph)
        segments.append(Segment(red, red + len(ph), start, end, ph))
        red += len(ph)
        pos = end
    if pos < len(text) or not segments:
        pieces.append(text[pos:])
        segments.append(Segment(red, red + len(text) - pos, pos, len(text)))
    return Deidentified(text, "".join(pieces), tuple(segments), entities)


def passthrough(text: str) -> Deidentified:
    """The identity mapping, for batches the operator allowed to leave raw."""
    return Deidentified(text, text, (Segment(0, len(text), 0, len(text)),), {})
