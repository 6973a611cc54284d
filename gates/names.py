"""Person names without a cue: runs of capitalised words scored by name lists, shape and position."""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import re2

from gates import scan
from gates.base import Match
from gates.lazyre import LazyRegex, lazy_re

_HERE = Path(__file__).resolve().parent
_OPTS = re2.Options()
_OPTS.log_errors = False

#: emitted when a candidate's score reaches this (the score travels with the match)
THRESHOLD = 0.55
#: a word in no list scores UNKNOWN_BASE + UNKNOWN_SPAN * name_likeness(word)
UNKNOWN_BASE = 0.15
UNKNOWN_SPAN = 0.3


def _load(name: str) -> frozenset[str]:
    path = _HERE / name
    return frozenset(
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )


@functools.cache
def lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(given names, surnames, lowercase English words), read once (Faker, MIT; SCOWL)."""
    return (
        _load("names_given.txt"),
        _load("names_surnames.txt"),
        _load("names_common.txt") | _load("names_english.txt"),
    )


@functools.cache
def _shape() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in (_HERE / "names_shape.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            tri, value = line.split("\t")
            out[tri] = float(value)
    return out


@functools.lru_cache(maxsize=65536)
def name_likeness(word: str) -> float:
    """How much a word in no list looks like a name rather than an English word, in [0, 1]:
    the mean character-trigram log ratio learned from the shipped lists, squashed."""
    w = "^" + word.lower() + "$"
    n = len(w) - 2
    if n < 1:
        return 0.5
    # the trigrams' values summed in C: no bytecode per trigram
    tris = map(w.__getitem__, _SLICES[n] if n < len(_SLICES) else _slices(n))
    mean = sum(map(_shape().get, tris, itertools.repeat(0.0))) / n
    return 1.0 / (1.0 + math.exp(-2.0 * mean))


def _slices(n: int) -> list[slice]:
    return [slice(i, i + 3) for i in range(n)]


_SLICES = [_slices(n) for n in range(40)]


@functools.cache
def places() -> tuple[frozenset[str], frozenset[str]]:
    """(place names, lowercase words that end a street or organisation name)."""
    # a word that ends a run as an organisation or a place: "Gonzalez Pharmacy", "Maria Street"
    ends = _load("names_suffixes.txt") | _load("names_orgplace.txt")
    return _load("names_places.txt"), frozenset(ends)


@functools.cache
def _stop() -> frozenset[str]:
    """Capitalised words that are not names where documents put them: calendar words, titles,
    headings and the vocabulary of forms, letters and clinical notes (lowercase forms)."""
    return _load("names_stop.txt")


_PARTICLES = frozenset(
    {
        "van",
        "von",
        "de",
        "der",
        "den",
        "du",
        "da",
        "di",
        "del",
        "della",
        "la",
        "le",
        "dos",
        "das",
        "ten",
        "ter",
        "bin",
        "ibn",
        "al",
        "el",
        "y",
        "st.",
        "mac",
        "ap",
    }
)

# A capitalised word as names are written: Smith, O'Brien, McDonald, DiMaggio, Müller,
# Smith-Jones, D'Arcy. (Not ALL CAPS: headings and acronyms.)
_NAME_WORD = r"\p{Lu}(?:['’]\p{Lu})?\p{Ll}+(?:\p{Lu}\p{Ll}+)?(?:[-'’]\p{Lu}?\p{Ll}+)?"
# words of one name are separated by spaces; a tab separates cells (TSV), never name parts
_LINK = (
    r"(?: +(?:\p{Lu}\.|(?:"
    + "|".join(sorted((re.escape(p) for p in _PARTICLES), key=len, reverse=True))
    + r")))* +"
)
# two words at least: a capitalised word alone is a sentence start far more often than a
# name, and skipping it here keeps the Python scoring off most of a document
_RUN = _NAME_WORD + r"(?:" + _LINK + _NAME_WORD + r")+"
# "Initial. Surname" and "Initial. Initial. Surname"
_INITIALS_RUN = r"(?:\p{Lu}\. ?)+ ?" + _NAME_WORD
_RUN_RX = LazyRegex(r"(?:" + _INITIALS_RUN + r"|" + _RUN + r")", _OPTS)

# What before a run says a person follows ("Dear", "Dr.", "Name:", "spoke with", "per").
# The word (or two) right before a run that says a person follows ("Dear", "Dr.", "Name:",
# "spoke with", "reassigned to", "coordinator is"). Sets, not a regex searched at the end of
# the text before each run: that search cost more than all the rest of the scoring.


@functools.cache
def _cues() -> frozenset[str]:
    return _load("names_cues.txt")


_PLACE_WORDS = frozenset({"in", "at", "near", "of", "via", "across", "the"})


def _before_cue(before: str) -> tuple[bool, bool]:
    """(a person cue ends ``before``, a place preposition ends it mid-sentence)."""
    tail = before.rstrip(" \t")
    if not tail or tail[-1] in '!?;\n"“(':
        return False, False
    if tail[-1] in ".:":
        tail = tail[:-1]  # "Dr.", "Name:", "Attendees:"
    words = tail.rsplit(None, 2)[-2:]
    if not words or not tail[-1:].isalpha():
        return False, False
    last = words[-1].lower()
    pair = " ".join(words).lower() if len(words) == 2 else ""
    cues = _cues()
    if last in cues or pair in cues:
        return True, False
    return False, last in _PLACE_WORDS and before.rstrip(" \t")[-1:] not in ".:"


_CUE_AFTER = lazy_re(
    r"(?:,? (?:MD|M\.D\.|DO|RN|NP|PA-C|PhD|DDS|FNP|LPN|PharmD|MBBS|FRCP|Esq|Jr|Sr|II|III)\b"
    r"|'s? |’s? | \((?:age|aged|dob|mrn|born|\d{1,3}|he|she|they|his|her|patient|pt)\b"
    r"| (?:said|says|say|reported|reports|stated|states|told|wrote|writes|called|calls|"
    r"signed|signs|agreed|agrees|asked|asks|confirmed|confirms|noted|notes|presented|"
    r"presents|denies|denied|complains|complained|visited|arrived|joined|left|was|is|has|"
    r"had|will|would|can|could|did|does|may|might|should|must|and (?:his|her|their)|"
    r"who|whose|herself|himself|themself|themselves|saw|went|came|got|took|gave|made|"
    r"[a-z]{3,}ed)\b)"
)
_CELL_EDGE = "|\t,;"


def _word_key(tok: str) -> str:
    return tok.strip(".,;:!?()[]\"'’“”")


# bits of what the lists say of a word as written (given name, surname, place) and of its
# lowercase form (stop word, common English word, particle, a word ending an organisation)
_B_GIVEN, _B_SURNAME, _B_PLACE = 1, 2, 4
_B_STOP, _B_COMMON, _B_PARTICLE, _B_ENDS_ORG = 1, 2, 4, 8


@functools.cache
def _flags() -> tuple[dict[str, int], dict[str, int]]:
    """Every list as two lookups (the word as written, its lowercase form), so a new word
    costs two probes of two tables rather than seven of seven."""
    given, surnames, common = lexicon()
    place_names, ends_org = places()
    exact: dict[str, int] = {}
    for words, bit in ((given, _B_GIVEN), (surnames, _B_SURNAME), (place_names, _B_PLACE)):
        for w in words:
            exact[w] = exact.get(w, 0) | bit
    low: dict[str, int] = {}
    for words, bit in (
        (_stop(), _B_STOP),
        (common, _B_COMMON),
        (_PARTICLES, _B_PARTICLE),
        (ends_org, _B_ENDS_ORG),
    ):
        for w in words:
            low[w] = low.get(w, 0) | bit
    return exact, low


@functools.lru_cache(maxsize=65536)
def _token(tok: str) -> tuple[str, bool, bool, bool, bool, bool, bool, bool, bool]:
    """What the scoring asks of one word of a run, asked once per distinct word: (its key
    without punctuation, common word, particle, particle as written, initial, ends an
    organisation or street, a place, a given name, a surname)."""
    exact, lower = _flags()
    key = tok.strip(".,;:!?()[]\"'’“”")
    low = key.lower()
    f = exact.get(key, 0)
    g = lower.get(low, 0)
    return (
        key,
        # a common word (not an initial): a stop word, or English and in no name list
        len(low) != 1 and bool(g & _B_STOP or (g & _B_COMMON and not f & 3)),
        bool(g & _B_PARTICLE),
        (low if tok == key else tok.lower()) in _PARTICLES,
        len(tok) == 2 and tok[1] == ".",
        bool(g & _B_ENDS_ORG),
        bool(f & _B_PLACE),
        bool(f & _B_GIVEN),
        bool(f & _B_SURNAME),
    )


# the fields of a _token() (literal indices, so a type checker knows each field's type)
_KEY: Final = 0
_COMMON: Final = 1
_PARTICLE_KEY: Final = 2
_PARTICLE: Final = 3
_INITIAL: Final = 4
_ENDS_ORG: Final = 5
_PLACE: Final = 6
_GIVEN: Final = 7
_SURNAME: Final = 8


@functools.lru_cache(maxsize=65536)
def _core(run: str) -> tuple[int, int, float] | None:
    """The part of a run's score that depends on the run alone, once per distinct run: the
    name-like core left after trimming (offsets in ``run``) and its score from the lists and
    shape; ``None`` when no core is left."""
    toks: list[tuple[int, int, str]] = []
    pos = 0
    for word in run.split(" "):
        if word:
            toks.append((pos, pos + len(word), word))
        pos += len(word) + 1
    info = [_token(t) for _, _, t in toks]
    if any(i[_ENDS_ORG] for i in info[1:]):
        return None
    # trim leading and trailing words that are not name-like (sentence starts, headings)
    lo, hi = 0, len(toks)
    while lo < hi and (info[lo][_COMMON] or info[lo][_PARTICLE_KEY]):
        lo += 1
    while lo < hi and (info[hi - 1][_COMMON] or info[hi - 1][_INITIAL]):
        if hi - lo > 1 and info[hi - 2][_PARTICLE]:
            break  # "van der Berg": a word after a particle is a surname, common or not
        hi -= 1
    kept = range(lo, hi)
    words = [k for k in kept if not info[k][_INITIAL] and not info[k][_PARTICLE]]
    initials = len(kept) - len(words)
    if not words or (len(words) == 1 and not initials):
        return None
    if len(words) > 4 or any(
        info[k][_COMMON] and not (k > lo and info[k - 1][_PARTICLE]) for k in words
    ):
        return None
    s, e = toks[lo][0], toks[hi - 1][1]
    place_names, _ = places()
    if run[s:e] in place_names or any(info[k][_PLACE] for k in words):
        return None
    first, last = info[words[0]], info[words[-1]]
    if len(words) == 1:  # "J. Smith": initials and one word
        sc = 0.6 if last[_SURNAME] else 0.45
    else:

        def unknown(word: str) -> float:
            return UNKNOWN_BASE + UNKNOWN_SPAN * name_likeness(word)

        sc = 0.4 if first[_GIVEN] else 0.2 if first[_SURNAME] else unknown(first[_KEY])
        sc += 0.4 if last[_SURNAME] else 0.15 if last[_GIVEN] else unknown(last[_KEY])
        if len(words) == 3 and not info[words[1]][_GIVEN] and not info[words[1]][_SURNAME]:
            sc -= 0.05
    return s, e, sc


def score_run(
    text: str, start: int, end: int, tops: dict[Any, Any] | None = None
) -> tuple[int, int, float] | None:
    """Trim a run of capitalised words to its name-like core and score it; ``None`` when no
    core is left. Returns (start, end, score)."""
    if end - start > 120:
        return None  # a title-cased line or a heading run on, not a name (and bounded work)
    core = _core(text[start:end])
    if core is None:
        return None
    nxt = text[end : end + 30].lstrip(" \t").split(" ", 1)[0]
    if nxt[:1].isupper() and _flags()[1].get(_word_key(nxt).lower(), 0) & _B_ENDS_ORG:
        return None
    s, e, sc = start + core[0], start + core[1], core[2]
    cue, place = _before_cue(text[max(0, s - 40) : s])
    if cue:
        sc += 0.3
    elif place:
        sc -= 0.25
    if _CUE_AFTER.match(text, e):
        sc += 0.25
    # alone in a table cell or on its own line (signatures, lists, "Name" columns): the
    # characters either side, past spaces and tabs, within the line (no copy of a long line)
    ls = text.rfind("\n", 0, s) + 1
    le = text.find("\n", e)
    if le < 0:
        le = len(text)
    i = s - 1
    while i >= ls and text[i] in " \t":
        i -= 1
    j = e
    while j < le and text[j] in " \t":
        j += 1
    b = text[i] if i >= ls else ""  # the last character of the line before the run
    a = text[j] if j < le else ""  # the first one after it
    if (not b or b in _CELL_EDGE or b in "-*•") and (not a or a in _CELL_EDGE):
        before_line = text[ls:s]
        header = _column_header(text, s, before_line, tops)
        own_line = not b and not a
        # a comma or semicolon is a cell edge only in a block of delimited lines (CSV), not
        # in "Senior Analyst, Acme Logistics"; a line alone followed by a blank line is a
        # heading's shape, not a signature's
        csv_only = b in (",", ";") or a in (",", ";")
        heading = own_line and text.startswith("\n", le + 1)
        if not (csv_only and header is None) and not heading:
            sc += 0.2
        if header is not None:
            if _PERSON_HEADER.search(header):
                sc += 0.3
            elif _OTHER_HEADER.search(header):
                sc -= 0.5
    return s, e, min(sc, 0.99)


_PERSON_HEADER = lazy_re(
    r"(?i)\b(?:name|patient|employee|member|contact|physician|provider|doctor|nurse|owner|"
    r"author|staff|manager|attendee|tenant|applicant|student|client|customer|user|person|"
    r"signed|witness|reviewer|assignee|reporter|guardian|spouse|insured|subscriber|who)"
)
_OTHER_HEADER = lazy_re(
    r"(?i)\b(?:city|town|location|site|address|street|country|state|region|org|"
    r"organi[sz]ation|company|employer|department|dept|facility|hospital|clinic|product|"
    r"drug|medication|title|role|office|team|unit|ward|service|vendor|plan|project)"
)


#: how far above a cell its header may be (rows); a longer table is still read, from the top
#: of the last block of that many rows, so the walk is bounded on any document
_MAX_ROWS_UP = 200


def _column_header(
    text: str, start: int, before_line: str, tops: dict[Any, Any] | None = None
) -> str | None:
    """The header cell above a table cell: the first line of the block of lines that have
    as many of the cell's delimiter (pipes, tabs, commas) as its own line, at its column.
    Prose with commas is no table: its lines differ in their comma counts. ``tops`` caches,
    per document, each line's header cells, so a table of many rows is read once."""
    line_start = start - len(before_line)
    cached = tops.get(line_start) if tops is not None else None
    if cached is None:
        cached = _header_cells(text, line_start, before_line, tops)
        if tops is not None:
            tops[line_start] = cached
    delim, cells = cached
    if not cells:
        return None
    col = before_line.count(delim)
    return cells[col] if col < len(cells) else None


def _header_cells(
    text: str, line_start: int, before_line: str, tops: dict[Any, Any] | None
) -> tuple[str, list[str]]:
    line_end = text.find("\n", line_start)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    delim = next((d for d in "|\t," if d in before_line), None) or next(
        (d for d in "|\t," if d in line), None
    )
    if delim is None:
        return "", []
    width = line.count(delim)
    header_start = line_start
    for _ in range(_MAX_ROWS_UP):
        if header_start == 0:
            break
        prev_start = text.rfind("\n", 0, header_start - 1) + 1
        if text.count(delim, prev_start, header_start - 1) != width:
            break
        known = tops.get(prev_start) if tops is not None else None
        if known is not None and known[0] == delim and known[1]:
            return known  # the row above belongs to the same table: same header
        header_start = prev_start
    else:
        return delim, []  # no header within reach
    if header_start == line_start:
        return delim, []  # the line is a header itself
    header_end = text.find("\n", header_start)
    return delim, text[header_start:header_end].split(delim)


#: below this many characters a document's runs are found over its own encoding (see
#: :func:`run_spans`); above, over the scanner's, which the other detectors share
_SHORT = 8192
_UNANCHORED = re2._Anchor.UNANCHORED


def run_spans(text: str) -> list[tuple[int, int]]:
    """Where the runs of capitalised words are, as character spans. A short document is
    matched over its own UTF-8 bytes, mapping byte offsets to characters as the matches go
    (decoding only the bytes between them): the scanner's vectorised mapping costs ~10 us of
    numpy set-up per non-ASCII document, more than this whole pass on a 100-byte one."""
    if len(text) >= _SHORT:
        return scan.spans(_RUN_RX, text)
    data = text.encode("utf-8")
    match, end = _RUN_RX._regexp.Match, len(data)
    ascii_only = end == len(text)
    out: list[tuple[int, int]] = []
    pos = byte = char = 0
    while True:
        s, e = match(_UNANCHORED, data, pos, end)[0]
        if s < 0:
            return out
        if ascii_only:
            out.append((s, e))
        else:
            cs = char + len(data[byte:s].decode("utf-8"))
            char, byte = cs + len(data[s:e].decode("utf-8")), e
            out.append((cs, char))
        pos = e  # a run is never empty


_POSSESSIVE = ("'s", "’s")


def find_names(text: str, threshold: float = THRESHOLD) -> list[Match]:
    """Every person-name candidate scoring at least ``threshold`` (see :func:`mentions` for
    the later single-word mentions of the names found). A candidate just short of it that
    stands in a list with a name ("A, B and C", "A; B", "A (Finance) and B") is one too."""
    scored: list[tuple[int, int, float]] = []
    tops: dict[Any, Any] = {}
    n = len(text)
    for s, e in run_spans(text):
        if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "_@/"):
            continue
        if text.endswith(_POSSESSIVE, s, e):
            e -= 2  # the possessive is not part of the name (and cues "Smith's" after)
        if e < n and (text[e].isalnum() or text[e] in "_@"):
            continue
        got = score_run(text, s, e, tops)
        if got is not None and got[2] >= LIST_FLOOR:
            scored.append(got)
    if not scored:
        return []
    keep = [sc >= threshold for _, _, sc in scored]
    for i in range(len(scored)):
        if keep[i]:
            continue
        for j in (i - 1, i + 1):
            if 0 <= j < len(scored) and scored[j][2] >= threshold:
                a, b = (scored[j], scored[i]) if j < i else (scored[i], scored[j])
                if _LIST_GAP.match(text[a[1] : b[0]]):
                    keep[i] = True
    return [
        Match(
            s, e, detail="PERSON", score=round(max(sc, threshold), 3), display=mask_name(text[s:e])
        )
        for (s, e, sc), k in zip(scored, keep, strict=True)
        if k
    ]


#: how low a candidate may score and still be kept when it stands in a list with a name
LIST_FLOOR = 0.35
# what separates the members of a list of people: commas, semicolons, "and", "&", "or", each
# member perhaps followed by a parenthesised role
_LIST_GAP = lazy_re(r"^(?:[ \t]*\([^()\n]{1,30}\))?[ \t]*(?:,|;|/|,? and|,? or|&)[ \t]*$")


# A capitalised word that fills a table cell ("...,Gonzalez,Maria,..." under last_name,
# first_name columns): a name only under a column header that says so.
_CELL_WORD_RX = LazyRegex(r"(?m)(?:^|[|\t,;])[ \t]*(" + _NAME_WORD + r")", _OPTS)
_NAME_HEADER = lazy_re(
    r"(?i)^[ \t]*(?:patient[ _]?|member[ _]?|subject[ _]?|client[ _]?|employee[ _]?|"
    r"contact[ _]?|guarantor[ _]?|insured[ _]?|emergency[ _]?contact[ _]?)?"
    r"(?:first|last|given|family|sur|middle|maiden|full)?[ _]?names?[ \t]*$"
)


# somewhere in a header row: a cell that is (or ends in) "name"
_ANY_NAME_HEADER = LazyRegex(
    r"(?im)(?:^|[|\t,;])[ \t]*[a-z _]{0,24}names?[ \t]*(?:[|\t,;]|$)", _OPTS
)


def cell_names(text: str, taken: list[Match]) -> list[Match]:
    """One-word cells under a name column header (``last_name``, ``first name``,
    ``Patient Name``): what an extract's name columns hold."""
    if (
        ("," not in text and "\t" not in text and "|" not in text)
        # the header pattern needs "name" in some case: in a short document a lowercase copy
        # is cheaper to search than the pattern (in a long one, with any non-ASCII character,
        # lowering costs more than the pattern's own pass)
        or (len(text) < _SHORT and "name" not in text.lower())
        or not _ANY_NAME_HEADER.search(text)
    ):
        return []  # no table, or no column header that names a person: nothing to read
    given, surnames, common = lexicon()
    place_names, _ = places()
    starts = sorted(m.start for m in taken)
    ends = {m.start: m.end for m in taken}
    tops: dict[Any, Any] = {}
    # per line: its delimiter and the columns whose header names a person (most tables have
    # none, and then each of their cells costs a lookup)
    name_cols: dict[int, tuple[str, frozenset[int]]] = {}
    by_header: dict[int, frozenset[int]] = {}  # the rows of one table share its header list
    out: list[Match] = []
    for s, e in scan.value_spans(_CELL_WORD_RX, text):
        line_start = text.rfind("\n", 0, s) + 1
        cols = name_cols.get(line_start)
        if cols is None:
            delim, cells = _header_cells(text, line_start, text[line_start:s], tops)
            tops[line_start] = (delim, cells)
            wanted_cols = by_header.get(id(cells))
            if wanted_cols is None:
                wanted_cols = by_header[id(cells)] = frozenset(
                    i for i, c in enumerate(cells) if _NAME_HEADER.search(c)
                )
            cols = name_cols[line_start] = (delim, wanted_cols)
        delim, wanted = cols
        if not wanted or text.count(delim, line_start, s) not in wanted:
            continue
        rest = text[e : e + 80].lstrip(" ")
        if rest and rest[0] not in "|\t,;\r\n":
            continue  # the cell holds more than this word
        word = text[s:e]
        low = word.lower()
        if (
            low in _stop()
            or word in place_names
            or (low in common and word not in given and word not in surnames)
        ):
            continue
        i = bisect.bisect_right(starts, s) - 1
        if i >= 0 and s < ends[starts[i]]:
            continue  # inside a name found already
        out.append(Match(s, e, detail="PERSON", score=0.8, display=word[0] + "."))
    return out


def mentions(text: str, found: list[Match]) -> list[Match]:
    """Single-word mentions of the words of names already found ("Gonzalez said", "Maria"):
    a document names a person in full once and by one name after."""
    if not found:
        return []
    words: set[str] = set()
    for m in found:
        for tok in text[m.start : m.end].split():
            key = _word_key(tok)
            if len(key) > 2 and key.lower() not in _PARTICLES:
                words.add(key)
    if not words:
        return []
    starts = sorted(m.start for m in found)
    ends = {m.start: m.end for m in found}
    out: list[Match] = []
    for s, e in _occurrences(text, words):
        i = bisect.bisect_right(starts, s) - 1
        if (
            (i >= 0 and s < ends[starts[i]])
            or (s > 0 and text[s - 1].isalnum())
            or (e < len(text) and text[e].isalnum())
        ):
            continue
        if e < len(text) and text[e] in "-’'" and text[e + 1 : e + 2].isalpha():
            continue
        out.append(Match(s, e, detail="PERSON", score=0.7, display=mask_name(text[s:e])))
    return out


def _occurrences(text: str, words: set[str]) -> list[tuple[int, int]]:
    """Where any of ``words`` occurs in ``text``, in order. A few words (a short document):
    ``str.find`` each, no pattern compiled per document; many: one RE2 alternation."""
    if len(words) > 16:
        rx = re2.compile(
            "|".join(re2.escape(w) for w in sorted(words, key=len, reverse=True)), _OPTS
        )
        return scan.spans(rx, text)
    found: list[tuple[int, int]] = []
    for w in words:
        i = text.find(w)
        while i >= 0:
            found.append((i, i + len(w)))
            i = text.find(w, i + len(w))
    found.sort()
    return found


def mask_name(value: str) -> str:
    """Initials only: ``M. G.`` for Maria Gonzalez."""
    return " ".join(w[0] + "." for w in value.split() if w[:1].isalpha())


def candidates(text: str) -> Iterable[tuple[int, int, float]]:
    """Every candidate with its score, emitted or not (for ``clearance pii --explain`` style
    inspection and threshold sweeps)."""
    for s, e in run_spans(text):
        got = score_run(text, s, e)
        if got is not None:
            yield got
