"""Multi-pattern scanning: encode a document once, learn which patterns can match, run only those."""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import re2
from re2 import _re2  # the wrapper's own UTF-8 offset helpers (C, linear)

#: A check's prefilter: alternatives of conjunctions of RE2 patterns. The check can only find a
#: match in a text where, for at least one conjunction, every pattern matches somewhere.
#: ``None`` means "no prefilter: always run the check".
Triggers = tuple[tuple[str, ...], ...] | None

_NULL_SPAN = (-1, -1)
_UNANCHORED = re2._Anchor.UNANCHORED
_ANCHOR_START = re2._Anchor.ANCHOR_START


def options(max_mem: int | None = None) -> re2.Options:
    """RE2 options for every pattern the scanner compiles (errors become diagnostics)."""
    opts = re2.Options()
    opts.log_errors = False
    if max_mem is not None:
        opts.max_mem = max_mem
    return opts


class ScanText(str):
    """A document's text as the checks receive it, with what scanning it needs and learns.

    It is the text itself (a ``str``: a finder written for plain text takes it unchanged, and
    its slices and matched values are plain strings), carrying its UTF-8 bytes, encoded once,
    with the byte -> character offset mapping; the trigger patterns a prefilter proved cannot
    match in it (:meth:`Scanner.scan`); the finders' results so far (:func:`memo`); and
    ``reference``, which makes every scanning function here take the straightforward way (str
    patterns, Python ``re`` for phrases, no prefilter, no memo): what the equivalence tests
    compare the scanner against.

    The engine builds one per document (``engine.evaluate.DocContext``) and passes it down as
    the ``text`` of every check, detector and finder; nothing here keeps it, so it lives as
    long as the validation holds it. A scanning function given a plain ``str`` builds a
    throwaway one (:meth:`of`): the same matches, without the shared encoding or memo."""

    # no __slots__: a str subtype may not have non-empty ones (the attributes live in __dict__)
    data: bytes
    ascii: bool
    absent: frozenset[str]
    memo: dict[int, Any]
    reference: bool
    _lead: array[int] | None
    _extra: array[int]
    _np: tuple[Any, Any]

    def __new__(cls, text: str, *, reference: bool = False) -> ScanText:
        self = super().__new__(cls, text)
        self.data = text.encode("utf-8")
        self.ascii = len(self.data) == len(text)
        self.absent = frozenset()
        #: finder results for this text (one detector's finder serves several checks)
        self.memo = {}
        self.reference = reference
        self._lead = None
        self._extra = array("q")
        self._np = (None, None)
        return self

    @classmethod
    def of(cls, text: str) -> ScanText:
        """``text`` itself when it is one, else a new one for it."""
        return text if isinstance(text, ScanText) else cls(text)

    def _multibyte(self) -> tuple[array[int], array[int]]:
        # Where each multi-byte character starts, and the bytes beyond the first that it and
        # all earlier ones take: a byte offset minus the extras before it is a char offset.
        # Vectorised, so mapping costs one bisect per offset and no C call per gap.
        if self._lead is None:
            import numpy as np  # lazily: ~150 ms to import, and ASCII text never gets here

            arr = np.frombuffer(self.data, dtype=np.uint8)
            lead = np.flatnonzero(arr >= 0xC0)
            width = arr[lead]
            extra = 1 + (width >= 0xE0).astype(np.int64) + (width >= 0xF0)
            cum = np.cumsum(extra)
            # int64 arrays, not lists: 16 bytes per character less (a 10 MB document with
            # 94,000 of them: 0.75 MB each instead of 3.7), and bisect reads them as sequences
            self._lead, self._extra = array("q", lead.tobytes()), array("q", cum.tobytes())
            self._np = (lead, np.concatenate(([0], cum)))
        return self._lead, self._extra

    def char(self, offset: int) -> int:
        """Character offset of a byte offset that falls on a character boundary."""
        if self.ascii:
            return offset
        lead, extra = self._multibyte()
        i = bisect.bisect_left(lead, offset)
        return offset - extra[i - 1] if i else offset

    def chars(self, offsets: list[int]) -> list[int]:
        """Character offsets of byte offsets, vectorised."""
        if self.ascii or not offsets:
            return offsets
        if not self._multibyte()[0]:
            return offsets
        if len(offsets) < 64:  # numpy's per-call overhead outweighs a few bisects
            return [self.char(off) for off in offsets]
        import numpy as np  # already imported by _multibyte; a dict lookup now

        lead, extra = self._np
        offs = np.asarray(offsets, dtype=np.int64)
        return (offs - extra[np.searchsorted(lead, offs, side="left")]).tolist()


def is_reference(text: str) -> bool:
    """Whether ``text`` is to be scanned the straightforward way (see :class:`ScanText`)."""
    return isinstance(text, ScanText) and text.reference


def spans(rx: Any, text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans ``rx.finditer(text)`` would give, without match
    objects: for candidate passes that only need where."""
    st = ScanText.of(text)
    if st.reference:
        return [m.span() for m in rx.finditer(text)]
    return _batched(rx, st, values=False)


def value_span(m: Any) -> tuple[int, int]:
    """The span of ``m``'s first capturing group that took part, else of the whole match:
    detector patterns capture the value when they also match the context around it."""
    for i in range(1, (m.re.groups or 0) + 1):
        s, e = m.span(i)
        if s >= 0:
            return s, e
    return m.span()


def value_spans(rx: Any, text: str) -> list[tuple[int, int]]:
    """:func:`value_span` of each match ``rx.finditer(text)`` would give, without match
    objects."""
    st = ScanText.of(text)
    if st.reference:
        return [value_span(m) for m in rx.finditer(text)]
    return _batched(rx, st, values=True)


def _batched(rx: Any, st: ScanText, values: bool) -> list[tuple[int, int]]:
    """Of each match over the document's bytes, its span or (``values``) its value span, with
    every byte offset mapped to characters in one go."""
    if rx.pattern in st.absent:
        return []
    flat: list[int] = []
    for found in _unanchored(rx, st.data, 0):
        for span in itertools.islice(found, 1, None) if values else ():
            if span[0] >= 0:
                flat += span
                break
        else:
            flat += found[0]
    it = iter(st.chars(flat))
    return list(zip(it, it, strict=True))


def iter_spans(rx: Any, text: str) -> Iterator[tuple[int, int]]:
    """:func:`spans`, lazily: for a caller that may stop at the first one."""
    st = ScanText.of(text)
    if st.reference:
        yield from (m.span() for m in rx.finditer(text))
        return
    if rx.pattern in st.absent:
        return
    char = st.char
    for found in _unanchored(rx, st.data, 0):
        s, e = found[0]
        yield char(s), char(e)


def memo(finder: Callable[[str], Any]) -> Callable[[str], Any]:
    """``finder`` with its result kept on the document's :class:`ScanText`: PHONE_NUMBER serves
    pii(PHONE_NUMBER), FAX_NUMBER and every pii(...) list naming it. Callers must not mutate
    the list they get. A plain ``str`` (or the reference way) runs the finder each time."""
    key = id(finder)

    def cached(text: str) -> Any:
        if not isinstance(text, ScanText) or text.reference:
            return finder(text)
        got = text.memo.get(key)
        if got is None:
            got = text.memo[key] = finder(text)
        return got

    return cached


def finditer(rx: Any, text: str, anchor: Any = None) -> Iterator[Any]:
    """``rx.finditer(text)`` with identical matches, but over the document's cached UTF-8 bytes
    (google-re2 re-encodes a ``str`` on every call) and skipping patterns known to be absent.
    With ``anchor`` (see :func:`anchor_of`), only positions where it matches are tried."""
    st = ScanText.of(text)
    if st.reference:
        yield from rx.finditer(text)
        return
    if rx.pattern in st.absent:
        return
    char, n = st.char, len(text)
    found = _anchored(rx, anchor, st) if anchor is not None else _unanchored(rx, st.data, 0)
    for spans in found:
        yield re2._Match(
            rx, text, 0, n, [s if s == _NULL_SPAN else (char(s[0]), char(s[1])) for s in spans]
        )


def _unanchored(rx: Any, data: bytes, pos: int) -> Iterator[Any]:
    """The wrapper's own finditer loop over bytes, from byte ``pos``."""
    regexp, end = rx._regexp, len(data)
    while True:
        spans = regexp.Match(_UNANCHORED, data, pos, end)
        if spans[0] == _NULL_SPAN:
            return
        yield spans
        if pos == end:
            return
        if pos == spans[0][1]:  # empty match at pos: step one character, as the wrapper does
            pos += _re2.CharLenToBytes(data, pos, 1)
        else:
            pos = spans[0][1]


def _anchored(rx: Any, anchor: Any, enc: ScanText) -> Iterator[Any]:
    """finditer by trying ``rx`` anchored at each position where its necessary prefix
    ``anchor`` can match. Every such position lies in a span of ``anchor``'s own finditer
    (its matches are non-empty), positions are tried in order from where the last match ended,
    and RE2's leftmost-first match at a start equals the anchored match there: the same
    matches, without running ``rx``'s (often costly, windowed) DFA over the whole text. If
    failed attempts pile up (a long tail re-read from many positions), the rest of the text is
    scanned the ordinary way, which keeps the cost linear."""
    data, regexp = enc.data, rx._regexp
    end = len(data)
    budget = 4 * end + 65536  # bytes a few ordinary passes would read
    spent = 0
    resume = 0
    for found in _unanchored(anchor, data, 0):
        s, e = found[0]
        if e <= resume:
            continue
        pos = max(s, resume)
        while pos < e:
            spans = regexp.Match(_ANCHOR_START, data, pos, end)
            if spans[0] != _NULL_SPAN:
                yield spans
                resume = pos = spans[0][1]
                continue
            spent += e - pos + 256  # an attempt reads at least to the candidate's end
            if spent > budget:
                yield from _unanchored(rx, data, resume)
                return
            b = data[pos]
            pos += 1 if b < 0xC0 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4


_FLAGS = re.compile(r"(?:\(\?[imsU-]+\))*")
_ASSERTIONS = ("\\b", "\\B", "\\A", "\\z", "^", "$")


def anchor_of(pattern: str) -> Any:
    """A regex every match of ``pattern`` starts with, or ``None``: the pattern's leading flags,
    an optional ``\\b``, its first group, and then as many further items of its top-level
    concatenation as come before the first wide counted repeat or open-ended run. The pattern
    must be a concatenation (no top-level ``|``) opening with an unquantified group that holds
    no assertion and cannot match empty, so the anchor's matches are never empty.
    Windowed gate regexes (``\\b(?:we|I)\\s+(?:use|process)\\s+...[^.\\n]{0,80}?...``) cost a
    full, slow DFA pass each; their prefix up to the window is cheap to find and rare."""
    flags = pattern[: _FLAGS.match(pattern).end()]  # type: ignore[union-attr]  # `*` always matches
    i = len(flags)
    lead = "\\b" if pattern.startswith("\\b", i) else ""
    i += len(lead)
    if (
        not pattern.startswith("(", i)
        or pattern.startswith("(?", i)
        and not pattern.startswith("(?:", i)
    ):
        return None
    close = _group_end(pattern, i)
    if close is None or pattern[close + 1 : close + 2] in ("?", "*", "+", "{"):
        return None
    if _top_level_bar(pattern, close + 1):
        return None
    group = pattern[i : close + 1]
    if any(a in group for a in _ASSERTIONS):
        return None
    end = close + 1
    for _, item_end, item in _items(pattern, end):
        if item is None or anchor_worth_it(item) or _LONG_RUN.search(item):
            break
        end = item_end
    try:
        anchor = re2.compile(flags + lead + pattern[i:end], options())
        if re2.compile(flags + group, options()).fullmatch("") is not None:
            return None
    except re2.error:
        return None
    return anchor


#: an item whose matches can run on (``[^.\n]*``, ``.+``, ``\w{2,}``): kept out of an anchor,
#: whose every span position is tried
_LONG_RUN = re.compile(r"(?:\*|,\}|(?:^\.|^\[\^.*\]|\\[SWDP].*)\+)\??$")
_QUANTIFIER = re.compile(r"(?:[?*+]|\{\d+(?:,\d*)?\})\??")
_ESCAPE = re.compile(r"\\(?:[pP](?:\{[^}]*\}|.)|x(?:\{[^}]*\}|[0-9A-Fa-f]{2})|[0-7]{1,3}|.)", re.S)


def _items(p: str, j: int) -> Iterator[tuple[int, int, str | None]]:
    """The items of pattern ``p``'s top-level concatenation from ``j`` on, each with its
    quantifier, as ``(start, end, text)``; an item it cannot read (``\\Q``, a stray ``)``,
    an open class) is ``(j, j, None)`` and ends the walk."""
    n = len(p)
    while j < n:
        c = p[j]
        if c == "(":
            k = _group_end(p, j)
            k = None if k is None else k + 1
        elif c == "[":
            k = _class_end(p, j)
            k = None if k is None else k + 1
        elif c == "\\":
            m = _ESCAPE.match(p, j)
            k = None if m is None or p.startswith("\\Q", j) else m.end()
        elif c in ")|":
            k = None
        else:
            k = j + 1
        if k is None:
            yield j, j, None
            return
        q = _QUANTIFIER.match(p, k)
        if q is not None:
            k = q.end()
        yield j, k, p[j:k]
        j = k


_COUNTED = re.compile(r"\{\d*,(\d+)\}")


def anchor_worth_it(pattern: str) -> bool:
    """Whether trying ``pattern`` only at its anchor is likely cheaper than one ordinary pass:
    when it holds a wide counted repeat (a ``{0,250}`` window), whose DFA is slow everywhere.
    Otherwise one RE2 pass costs ~2 ms/MB and anchors like ``for|of`` fire too often (measured
    on the built-in modules: 2-200 ms/MB plain, 2-26 ms/MB anchored)."""
    return any(int(m.group(1)) >= 20 for m in _COUNTED.finditer(pattern))


def set_form(pattern: str) -> str | None:
    """What a Set holds for ``pattern``: the pattern itself, or, when it has a wide counted
    repeat (whose counting DFA states make a Set slow and large), its top-level concatenation
    cut before the first item holding one. Every match of the pattern starts with a match of
    the cut form, so where the cut form is absent the pattern is too.
    ``None`` when no cut is possible (the repeat is not at top level, a top-level ``|``, an
    item it cannot read) or the cut form matches the empty string (it would prove nothing)."""
    if not anchor_worth_it(pattern):
        return pattern
    if _top_level_bar(pattern, 0):
        return None
    for start, _, item in _items(pattern, 0):
        if item is None:
            return None
        if anchor_worth_it(item):
            cut = pattern[:start]
            break
    else:
        return None
    try:
        if re2.compile(cut, options()).search("") is not None:
            return None
    except re2.error:
        return None
    return cut


def _structure(p: str, j: int) -> Iterator[tuple[int, str]]:
    """The grouping characters ``(``, ``)`` and ``|`` of pattern ``p`` from ``j`` on, skipping
    escapes and character classes; a class left open yields ``(its index, "[")`` and ends."""
    n = len(p)
    while j < n:
        c = p[j]
        if c == "\\":
            j += 2
            continue
        if c == "[":
            k = _class_end(p, j)
            if k is None:
                yield j, "["
                return
            j = k
        elif c in "()|":
            yield j, c
        j += 1


def _group_end(p: str, i: int) -> int | None:
    """Index of the parenthesis closing the group opened at ``p[i]``."""
    depth = 0
    for j, c in _structure(p, i):
        if c == "[":
            return None
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
    return None


def _class_end(p: str, j: int) -> int | None:
    k = j + 1
    if k < len(p) and p[k] == "^":
        k += 1
    if k < len(p) and p[k] == "]":
        k += 1
    while k < len(p):
        if p[k] == "\\":
            k += 2
            continue
        if p.startswith("[:", k):
            close = p.find(":]", k + 2)
            if close < 0:
                return None
            k = close + 2
            continue
        if p[k] == "]":
            return k
        k += 1
    return None


def _top_level_bar(p: str, j: int) -> bool:
    depth = 0
    for _, c in _structure(p, j):
        if c == "[":
            return True
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return True
        elif depth == 0:  # "|"
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Python `re` semantics as RE2 character classes (for phrase prefilters)


@functools.cache
def _universe() -> str:
    # Every code point below U+20000 except surrogates: no cased or whitespace character lies
    # above (tests/test_scan_equivalence.py checks this against the running Unicode database).
    return "".join(map(chr, itertools.chain(range(0xD800), range(0xE000, 0x20000))))


def _class(chars: Iterable[str]) -> str:
    return "[" + "".join(f"\\x{{{ord(c):X}}}" for c in sorted(set(chars))) + "]"


@functools.cache
def py_ignorecase_class(ch: str) -> str:
    """An RE2 class of every character Python's ``re.IGNORECASE`` matches for literal ``ch``
    (Python folds i/ı/İ, s/ſ, k/K together; RE2's own folding differs), found by asking `re`."""
    found = set(re.findall(re.escape(ch), _universe(), re.IGNORECASE | re.UNICODE))
    found.add(ch)
    return _class(found)


@functools.cache
def py_space_class() -> str:
    """An RE2 class equal to Python's Unicode ``\\s`` (RE2's ``\\s`` is ASCII and lacks \\v)."""
    return _class(re.findall(r"\s", _universe()))


# ---------------------------------------------------------------------------------------------
# The scanner


#: a pattern whose only atom is a literal appended to every text the atom pass reads: if that
#: pass fails part-way (RE2's DFA out of memory), the sentinel is missing and it proves nothing.
#: (The Set reads the text unchanged, so ``$`` and ``\z`` see its true end; its entry 0 is the
#: empty pattern, which RE2 reports only when the whole pass completed.)
_SENTINEL = "zqxj0clearance0scan0sentinel0zqxj"


@dataclass
class Scanner:
    """The prefilter of one ruleset: which trigger patterns match anywhere in a document.

    Passes over the document's UTF-8 bytes, each run once whatever the number of checks:

    - RE2's FilteredRE2 over every pattern: it extracts the literal strings ("atoms") each
      pattern needs, finds the atoms present with one multi-literal pass, and a pattern whose
      atom requirement fails cannot match. Patterns without atoms (digit and name shapes), and
      patterns whose atoms are common words, pass.
    - On documents of :data:`SET_MIN_BYTES` or more, ``re2.Set``\\ s of at most
      :data:`SET_SIZE` patterns each, for the checks whose kind asks for one (detectors,
      regexes), a windowed pattern cut before its window (:func:`set_form`): one DFA runs a
      group at once and says exactly which match somewhere (18 ms per MB for the built-in
      modules' 134 such patterns, three Sets, once their DFA states are built; ~80 ms on a
      first megabyte).
    - Phrase lists (with the word edges their candidate patterns leave out) in Sets of their
      own, once the scanner has read :data:`LATE_SET_BYTES` of such documents: their
      case-folding classes make Set states slow to build (~100 ms on a first megabyte), and
      then each megabyte costs 12 ms and saves ~35-45 ms of passes of lists whose words occur
      but never as the phrase, which the atoms cannot tell. With every Set running, the atom
      pass covers only the patterns no Set holds.

    A check whose every conjunction needs an absent pattern is primed with no matches; the
    others run exactly, each pattern on its own. A pass that fails part-way (its DFA out of
    memory) proves nothing: see :data:`_SENTINEL`. Smaller Sets, not one: a Set's DFA states
    hold all its patterns at once, and one Set of all 200 patterns took 0.2-1 s per fresh
    megabyte to build them (and at RE2's default 8 MiB budget, thrashed at 750 ms per MB)."""

    checks: list[Any]
    patterns: list[str] = field(default_factory=list)
    #: each pass: its engine and the pattern index of its entry k + 1 (entry 0 tells that the
    #: pass completed): the atom filter here, the Sets in ``_sets`` once built
    _passes: list[tuple[Any, list[int]]] = field(default_factory=list)
    #: the atom filter of the patterns no Set holds, for when every Set runs
    _leftover: list[tuple[Any, list[int]]] = field(default_factory=list)
    #: per kind of Set ("set", "late-set"), the pattern indices of each Set, and the Sets once
    #: compiled
    _groups: dict[str, list[list[int]]] = field(default_factory=dict)
    _sets: dict[str, list[tuple[Any, list[int]]]] = field(default_factory=dict)
    #: what a Set holds for each of its patterns (:func:`set_form`)
    _forms: dict[int, str] = field(default_factory=dict)
    #: UTF-8 bytes of the documents of SET_MIN_BYTES or more this scanner has read
    _large_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: per check with a prefilter, a bit mask of the patterns each conjunction needs: the
    #: check cannot match when every conjunction needs an absent pattern
    _single: list[tuple[str, int]] = field(default_factory=list)
    _multi: list[tuple[str, list[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}  # pattern -> "set", "late-set" or "atoms"
        forms: dict[str, str | None] = {}
        plans: list[tuple[str, Triggers]] = []
        for c in self.checks:
            trig = c.triggers()
            plans.append((c.key, trig))
            for conj in trig or ():
                for p in conj:
                    if p not in forms:
                        forms[p] = set_form(p)
                    kind = "atoms" if forms[p] is None else c.prefilter
                    seen[p] = kind if seen.get(p, kind) == kind else "atoms"
        self.patterns = list(seen)
        index = {p: i for i, p in enumerate(self.patterns)}
        masks = [
            (key, [sum(1 << index[p] for p in conj) for conj in trig])
            for key, trig in plans
            if trig is not None
        ]
        self._single = [(key, conjs[0]) for key, conjs in masks if len(conjs) == 1]
        self._multi = [(key, conjs) for key, conjs in masks if len(conjs) != 1]
        every = list(range(len(self.patterns)))
        self._passes = _filter_pass(self.patterns, every)
        self._leftover = _filter_pass(
            self.patterns, [i for i in every if seen[self.patterns[i]] == "atoms"]
        )
        for kind in ("set", "late-set"):
            in_sets = [i for i in every if seen[self.patterns[i]] == kind]
            # as few Sets as SET_SIZE allows, equally full (134 patterns: 3 of 45, not 5 of
            # 32 and one of 6: each pass reads the whole text, however few its patterns)
            groups = max(1, math.ceil(len(in_sets) / SET_SIZE))
            size = max(1, math.ceil(len(in_sets) / groups))
            self._groups[kind] = [in_sets[k : k + size] for k in range(0, len(in_sets), size)]
            self._forms.update((i, forms[self.patterns[i]] or "") for i in in_sets)

    def set_passes(self, kind: str = "set") -> list[tuple[Any, list[int]]]:
        """The Sets of one kind of trigger (see ``Check.prefilter``), compiled on the first
        document that uses them (80-90 ms for the built-in modules' detector and regex
        patterns, 40-50 ms for their phrase lists: a one-off that small documents, and so most
        CLI runs, never pay)."""
        with self._lock:
            sets = self._sets.get(kind)
            if sets is None:
                sets = self._sets[kind] = []
                for group in self._groups.get(kind, ()):
                    engine = _compiled(
                        re2.Set.SearchSet(options(SET_MEM)), ["", *(self._forms[i] for i in group)]
                    )
                    if engine is not None:  # else (e.g. over its budget) atoms alone decide
                        sets.append((engine, group))
            return sets

    def _passes_for(self, size: int) -> list[tuple[Any, list[int]]]:
        """The atom pass, and from :data:`SET_MIN_BYTES` on the Sets: the late ones once this
        scanner has read :data:`LATE_SET_BYTES` of such documents, this one included."""
        if size < SET_MIN_BYTES:
            return self._passes
        with self._lock:
            self._large_bytes += size
            late = self._large_bytes >= LATE_SET_BYTES
        sets = self.set_passes("set")
        if not late:
            return self._passes + sets
        late_sets = self.set_passes("late-set")
        # every pattern a Set holds is decided exactly by it, so with every Set compiled the
        # atoms are needed for the rest only (a Set that fails part-way then leaves its
        # patterns undecided: slower, never wrong)
        complete = all(len(self._sets[k]) == len(self._groups[k]) for k in self._groups)
        return (self._leftover if complete else self._passes) + sets + late_sets

    def absent(self, enc: ScanText) -> set[int]:
        """The indices of the trigger patterns that cannot match anywhere in the text."""
        absent: set[int] = set()
        for engine, index in self._passes_for(len(enc.data)):
            if isinstance(engine, re2.Set):
                hits = engine.Match(enc.data) or []
            else:
                hits = engine.Match(enc.data + ("\n" + _SENTINEL).encode(), True) or []
            if 0 not in hits:
                continue  # failed part-way: no proof either way
            present = {index[k - 1] for k in hits if k}
            absent.update(i for i in index if i not in present)
        return absent

    def scan(self, text: str) -> list[str]:
        """Run the passes over ``text`` once and return the keys of the checks that cannot
        match. A :class:`ScanText` also learns the absent patterns, so the exact matchers given
        it skip them (a plain ``str`` is encoded for this call only)."""
        st = ScanText.of(text)
        gone = self.absent(st)
        if not gone:
            return []
        # facts about the text, whichever ruleset found them
        st.absent = st.absent | {self.patterns[i] for i in gone}
        bits = sum(1 << i for i in gone)  # distinct bits: the sum is their union
        dead = [key for key, mask in self._single if mask & bits]
        dead += [key for key, conjs in self._multi if all(m & bits for m in conjs)]
        return dead


#: most patterns per Set. The built-in modules' 115 detector and regex patterns in groups of 32,
#: 16, 8 and 4 took 6.4, 6.1, 4.7 and 4.3 ms on a first 10 KB document, 151, 216, 322 and 572 ms
#: on a first 10 MB one, and 15, 26, 32 and 69 ms per warm megabyte; their 134 (windowed
#: patterns cut) in 5, 4, 3 and 2 Sets: 26, 22, 18 and 14 ms per warm megabyte, 76-111 ms on a
#: first one; the 87 phrase lists in 3, 2 and 1: 16, 12 and 7 ms warm, 79, 127 and 132 first
SET_SIZE = 48
#: Sets run on documents of this many UTF-8 bytes or more; below, their fixed cost per call
#: (0.2 ms for the built-in modules' four on 10 KB) outweighs the passes they save
SET_MIN_BYTES = 64 << 10
#: the "late-set" Sets (phrase lists) run once a scanner has read this many bytes of documents
#: of SET_MIN_BYTES or more, the current one included: building their DFA states costs 60-100 ms
#: on a first megabyte and each later megabyte saves ~30 ms, so a one-off 1 MB CLI run would
#: lose by them and a server or batch run, or a single 2 MB document, gains
LATE_SET_BYTES = 2 << 20
#: each Set's RE2 memory budget (its DFA states live in it; RE2's 8 MiB default made a large
#: Set reset its DFA cache over and over)
SET_MEM = 32 << 20


def _filter_pass(patterns: list[str], index: list[int]) -> list[tuple[Any, list[int]]]:
    """The atom pass over ``patterns[i] for i in index``, as a list of passes (empty when
    there is nothing to filter or RE2 refuses)."""
    engine = _compiled(re2.Filter(), [_SENTINEL, *(patterns[i] for i in index)], options())
    return [] if engine is None else [(engine, index)]


def _compiled(engine: Any, patterns: list[str], *add_args: Any) -> Any:
    """``engine`` (an ``re2.Set`` or ``re2.Filter``) holding ``patterns`` (entry 0: a pattern
    that matches every text, found only by a pass that completes), compiled; ``None`` if there
    is nothing else to hold or RE2 refuses (the checks then run without that pass)."""
    if len(patterns) < 2:
        return None
    try:
        for p in patterns:
            engine.Add(p, *add_args)
        engine.Compile()
    except re2.error:
        return None
    return engine


_scanners: OrderedDict[Hashable, Scanner] = OrderedDict()
_lock = threading.Lock()
_KEEP = 8  # rulesets whose scanners stay built (a server usually has one or two)


def scanner_for(key: Hashable, checks: Callable[[], Iterable[Any]]) -> Scanner:
    """The scanner of a ruleset, built once per ``key`` (e.g. the ruleset hash: same gates,
    same checks) from ``checks()``; the most recently used few are kept."""
    with _lock:
        got = _scanners.get(key)
        if got is not None:
            _scanners.move_to_end(key)
            return got
    built = Scanner(list({c.key: c for c in checks()}.values()))
    with _lock:
        _scanners[key] = built
        while len(_scanners) > _KEEP:
            _scanners.popitem(last=False)
    return built


# ---------------------------------------------------------------------------------------------
# Declaring the prefilter of a detector's finder (a plain function) where it is built


def with_triggers(finder: Any, triggers: Triggers) -> Any:
    """The finder, memoised per document (see :func:`memo`), with ``triggers`` attached."""
    wrapped = memo(finder)
    wrapped.triggers = triggers  # type: ignore[attr-defined]
    return wrapped


def union_triggers(*finders: Any) -> Triggers:
    """A finder that unions others can match where any of them can."""
    out: list[tuple[str, ...]] = []
    for f in finders:
        t = getattr(f, "triggers", None)
        if t is None:
            return None
        out.extend(t)
    return tuple(out)


def require(triggers: Triggers, pattern: str) -> Triggers:
    """Those triggers, each also needing ``pattern`` (a context keyword) somewhere."""
    return None if triggers is None else tuple((*conj, pattern) for conj in triggers)
