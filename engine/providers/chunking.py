"""Text spans for providers: section-aligned chunks with overlap, bounded passages, quote lookup."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

_PARA = re.compile(r"\n[ \t]*\n")
_SENT_END = re.compile(r"[.!?;:][\"')\]]*\s+|\n")
_WS = re.compile(r"\s+")


def _cut_points(text: str, start: int, end: int, limit: int) -> list[int]:
    """Split ``[start, end)`` into pieces of at most ``limit`` chars, cutting at the last
    paragraph break, else sentence end, else whitespace before the limit (hard cut if none)."""
    cuts: list[int] = []
    pos = start
    while end - pos > limit:
        window_end = pos + limit
        cut = -1
        for rx in (_PARA, _SENT_END):
            for m in rx.finditer(text, pos + limit // 3, window_end):
                cut = m.end()
            if cut > pos:
                break
        if cut <= pos:
            ws = text.rfind(" ", pos + limit // 3, window_end)
            cut = ws + 1 if ws > pos else window_end
        cuts.append(cut)
        pos = cut
    return cuts


def chunk_ranges(
    text: str, boundaries: Sequence[int], max_chars: int, overlap: int = 0
) -> list[tuple[int, int]]:
    """Chunks of ``text`` of at most ``max_chars`` (plus ``overlap``), cut at section
    ``boundaries`` where possible. Each chunk after the first starts up to ``overlap`` chars
    before its cut (at a line start when there is one), so a statement that straddles a cut is
    whole in at least one chunk."""
    n = len(text)
    if n <= max_chars:
        return [(0, n)]
    bounds = sorted({b for b in boundaries if 0 < b < n})
    # Greedy packing of whole sections; an oversized section is split inside itself.
    cuts: list[int] = []
    chunk_start = 0
    pieces = [0, *bounds, n]
    for a, b in zip(pieces, pieces[1:], strict=False):
        if b - chunk_start <= max_chars:
            continue
        if a > chunk_start:
            cuts.append(a)
            chunk_start = a
        if b - chunk_start > max_chars:
            inner = _cut_points(text, chunk_start, b, max_chars)
            cuts.extend(inner)
            chunk_start = inner[-1] if inner else chunk_start
    starts = [0, *cuts]
    ends = [*cuts, n]
    out: list[tuple[int, int]] = []
    for s, e in zip(starts, ends, strict=False):
        if s > 0 and overlap > 0:
            back = max(0, s - overlap)
            nl = text.find("\n", back, s)
            s = nl + 1 if nl != -1 else back
        out.append((s, e))
    return out


def passages(text: str, max_chars: int = 400, min_chars: int = 25) -> list[tuple[int, int]]:
    """Sentence-sized spans for embedding: paragraphs split at sentence ends into pieces of at
    most ``max_chars``; tiny fragments (list bullets, headings) are merged into their neighbour
    so they are scored with some context. Offsets exclude surrounding whitespace."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in [*_PARA.finditer(text), None]:
        p_end = m.start() if m else len(text)
        para = (pos, p_end)
        pos = m.end() if m else len(text)
        sent_start = para[0]
        pieces: list[tuple[int, int]] = []
        for sm in _SENT_END.finditer(text, para[0], para[1]):
            pieces.append((sent_start, sm.end()))
            sent_start = sm.end()
        pieces.append((sent_start, para[1]))
        cur: tuple[int, int] | None = None
        for a, b in pieces:
            cuts = _cut_points(text, a, b, max_chars)
            for c, d in zip([a, *cuts], [*cuts, b], strict=True):
                piece = _strip(text, c, d)
                if piece is None:
                    continue
                tiny = cur is not None and (
                    cur[1] - cur[0] < min_chars or piece[1] - piece[0] < min_chars
                )
                if cur is None:
                    cur = piece
                elif tiny and piece[1] - cur[0] <= max_chars:
                    cur = (cur[0], piece[1])
                else:
                    spans.append(cur)
                    cur = piece
        if cur is not None:
            spans.append(cur)
    return spans


class Passage(NamedTuple):
    """A passage to embed: its span in the document and the heading of its section."""

    start: int
    end: int
    heading: str | None


_MD_MARKUP = re.compile(r"^[#>*\-+\s]+|\*\*|__")


def section_passages(text: str, sections: Sequence[Any], max_chars: int = 400) -> list[Passage]:
    """Each sentence, list item or paragraph of ``text`` once (no overlapping windows), with the
    heading of the section it sits in. A passage that is only its section's heading line is left
    out: the heading travels as context with every passage under it instead."""
    starts = [s.start for s in sections]
    out: list[Passage] = []
    for a, b in passages(text, max_chars):
        i = bisect.bisect_right(starts, a) - 1
        sec = sections[i] if i >= 0 else None
        heading = sec.heading if sec is not None else None
        if not any(ch.isalnum() for ch in text[a:b]):
            continue  # rules and separators ("=====") say nothing
        if sec is not None and heading is not None and a == sec.start:
            line_end = text.find("\n", a)
            if line_end == -1 or b <= line_end:
                continue  # the heading line alone
        out.append(Passage(a, b, heading))
    return out


def context_text(text: str, p: Passage, heading_chars: int = 80) -> str:
    """What is embedded for a passage: "Heading: passage", markdown markers dropped."""
    body = _MD_MARKUP.sub("", text[p.start : p.end]).strip() or text[p.start : p.end]
    if not p.heading:
        return body
    heading = p.heading.strip().rstrip(":")[:heading_chars]
    if body.casefold().startswith(heading.casefold()):
        return body
    return f"{heading}: {body}"


def _strip(text: str, a: int, b: int) -> tuple[int, int] | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if b > a else None


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lower-cased text with whitespace runs collapsed, and each output char's source offset."""
    out: list[str] = []
    index: list[int] = []
    last_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if last_space:
                continue
            out.append(" ")
            last_space = True
        else:
            out.append(ch.lower())
            last_space = False
        index.append(i)
    return "".join(out), index


_QUOTE_CHARS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def locate(quote: str, text: str) -> tuple[int, int] | None:
    """Where a model's quote sits in ``text``: exact first, then ignoring case, whitespace and
    curly quotes; a quote with an ellipsis is located by its longest piece."""
    quote = quote.strip()
    if not quote:
        return None
    i = text.find(quote)
    if i != -1:
        return i, i + len(quote)
    parts = [p.strip() for p in re.split(r"\.\.\.|\u2026", quote) if p.strip()]
    if len(parts) > 1:
        return locate(max(parts, key=len), text)
    norm_text, index = _normalise(text.translate(_QUOTE_CHARS))
    norm_quote, _ = _normalise(quote.translate(_QUOTE_CHARS))
    j = norm_text.find(norm_quote.strip())
    if j == -1 or not norm_quote.strip():
        return None
    k = j + len(norm_quote.strip()) - 1
    return index[j], index[k] + 1
