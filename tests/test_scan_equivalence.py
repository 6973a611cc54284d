"""The scanner finds exactly what straightforward per-pattern evaluation finds, check by check."""

from __future__ import annotations

import gc
import random
import re
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest
import re2

from engine.api import Engine, _scanner
from engine.document import Document
from engine.evaluate import DocContext, Hit, _near, _section_ranges, _subtree_ends
from engine.ingest import document_from_text
from engine.providers.base import NullProvider
from gates import scan
from gates.base import Check
from gates.phrases import PhraseCheck

# Text that trips engines with ASCII-only \b, \d, \w or RE2's own case folding.
_TRAPS = [
    "José123-45-6789",
    "é123-45-6789",
    "Zoë (415) 555-0134",
    "电话415-555-0199",
    "📞 415-555-0198",
    "٠١٢-٣٤-٥٦٧٨",
    "１２３-４５-６７８９",
    "DATA PROTECTİON OFFİCER",
    "prıvacy notıce",
    "ſupervisory",
    "Keep",
    "data\u00a0controller",
    "data\u2003controller",
    "naïve café",
    "İstanbul",
    "straße",
    "ﬁle a complaint",
    "Müller, MD\n",
    "Dear Renée Dubois,",
    "DOB: 03/04/1961",
    "MRN: 4829103",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_" + "a1B2" * 9,
    "xoxb-123456789012-abcdefABCDEF",
    "sk_live_" + "x9" * 12,
    'password = "Tr0ub4dor&3"',
    "postgres://admin:s3cr3tPw@db.example.com/app",
    "GB82 WEST 1234 5698 7654 32",
    "4111 1111 1111 1111",
    "192.168.0.1",
    "2001:db8::ff00:42:8329",
    "https://www.example.org/x?y=1",
    "NHS 943 476 5919",
    "AB 12 34 56 C",
    "aged 97 years old",
    "ICD-10 E11.9",
    "CPT 99213",
    "controllers",
    "xcontroller",
    "controller_",
    "_controller",
    "controller.",
    "Controller’s",
    "\u0130",
    "\u0131",
    "\u017f",
    "\u212a",
    "\u00b5",
    "\u1e9e",
    "x\u0301",
    "\U0001f600",
    "\t\n\x0b\x0c\r",
]


def _ruleset_checks() -> list[Check]:
    return Engine(cache=None, audit=None, provider=None).ruleset().checks


CHECKS = _ruleset_checks()


def _phrases() -> list[str]:
    return [p for c in CHECKS if isinstance(c, PhraseCheck) for p in c.phrases]


def _mutate(rng: random.Random, s: str) -> str:
    """Case, spacing and boundary variants Python's `re` treats specially."""
    out = []
    for ch in s:
        r = rng.random()
        if ch == " ":
            out.append(rng.choice([" ", "  ", "\u00a0", "\n", "\t", "\u2009", " "]))
        elif r < 0.15:
            out.append(ch.upper())
        elif r < 0.2:
            out.append({"i": "\u0131", "I": "\u0130", "s": "\u017f", "k": "\u212a"}.get(ch, ch))
        else:
            out.append(ch)
    glue = rng.choice(["", "", "x", "_", "é", "9", "中", "'"])
    return glue + "".join(out) + rng.choice(["", "", "s", "é", ".", "_", "1"])


def corpus(seed: int, n: int = 40) -> list[str]:
    """Seeded documents mixing prose, every built-in phrase (mutated), PII, secrets and traps."""
    from benchmarks.bench_speed import make_text

    rng = random.Random(seed)
    phrases = _phrases()
    docs = []
    for i in range(n):
        base, _ = make_text(rng.randrange(200, 3000), seed=seed * 1000 + i, pii_rate=0.5)
        words = base.split(" ")
        for _ in range(rng.randrange(5, 40)):
            pick = rng.random()
            item = _mutate(rng, rng.choice(phrases)) if pick < 0.6 else rng.choice(_TRAPS)
            words.insert(rng.randrange(len(words) + 1), item)
        docs.append(rng.choice(["", "\n", "# Privacy notice\n\n"]) + " ".join(words))
    docs.append("".join(_TRAPS))
    docs.append(" ".join(_TRAPS))
    docs.append("")
    return docs


DOCS = corpus(2026)


@pytest.fixture(autouse=True)
def _sets_on_every_document(monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus documents are small; run every Set pass on them too, the phrase lists' as
    well (the defaults skip them below ``scan.SET_MIN_BYTES`` and until ``LATE_SET_BYTES`` are
    read, which ``test_demand_driven.py`` exercises)."""
    monkeypatch.setattr(scan, "SET_MIN_BYTES", 0)
    monkeypatch.setattr(scan, "LATE_SET_BYTES", 0)


def _reference(check: Check, text: str) -> list:
    return check.find(scan.ScanText(text, reference=True))


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.describe()[:60])
def test_every_check_matches_reference(check: Check) -> None:
    scanner = _scanner(Engine(cache=None, audit=None, provider=None).ruleset())
    for i, text in enumerate(DOCS):
        ctx = DocContext(document_from_text(text))
        ctx.prefilter(scanner)
        got = ctx.matches(check)
        want = _reference(check, text)
        assert got == want, f"doc {i}: {check.describe()}"


def test_the_prefilter_prunes_and_finds_the_same() -> None:
    """Short documents: most checks are proved absent by the atom pass, none wrongly."""
    scanner = _scanner(Engine(cache=None, audit=None, provider=None).ruleset())
    pruned = 0
    for text in [
        "Hello world.",
        "Deploy with AKIAIOSFODNN7EXAMPLE now.",
        "Call 415-555-0134.",
        "Our data protection officer is at dpo@acme.example.",
        *_TRAPS,
    ]:
        dead = set(scanner.scan(text))
        pruned += len(dead)
        for c in CHECKS:
            if c.key in dead:
                assert _reference(c, text) == [], c.describe()
    assert pruned > 0


def test_no_cased_or_space_character_beyond_the_phrase_universe() -> None:
    """Phrase prefilters spell Python's case folding out over U+0000..U+1FFFF; nothing above
    folds or counts as whitespace in this Python's Unicode database."""
    for cp in range(0x20000, 0x110000, 1):
        ch = chr(cp)
        assert ch.lower() == ch and ch.upper() == ch and not ch.isspace(), hex(cp)


def test_phrase_classes_follow_python() -> None:
    for ch, expect in [("k", "\u212a"), ("s", "\u017f"), ("i", "\u0130"), ("i", "\u0131")]:
        cls = scan.py_ignorecase_class(ch)
        assert f"\\x{{{ord(expect):X}}}" in cls
        assert re.fullmatch(ch, expect, re.IGNORECASE)


def test_offsets_are_characters_not_bytes() -> None:
    text = "Zoë Müller 中文 🙂 call 415-555-0134 or write to zoe@example.com."
    ctx = DocContext(document_from_text(text))
    for c in CHECKS:
        for m in ctx.matches(c):
            assert 0 <= m.start < m.end <= len(text)
    phone = [c for c in CHECKS if c.describe() == "pii(PHONE_NUMBER)"]
    if phone:
        (m,) = ctx.matches(phone[0])
        assert text[m.start : m.end] == "415-555-0134"


# --- the scanning context is explicit: per document, nothing shared, nothing kept ----------


def _all_matches(text: str, scanner: scan.Scanner) -> list[list]:
    ctx = DocContext(document_from_text(text))
    ctx.prefilter(scanner)
    return [ctx.matches(c) for c in CHECKS]


def test_documents_scanned_on_threads_at_once_find_what_each_finds_alone() -> None:
    """Each document's encoding, absent patterns and detector results travel with its own
    context: eight threads interleaving 43 documents find exactly what one thread does."""
    scanner = _scanner(Engine(cache=None, audit=None, provider=None).ruleset())
    alone = [_all_matches(text, scanner) for text in DOCS]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda t: _all_matches(t, scanner), DOCS * 2))
    assert together == alone * 2


def test_one_documents_absent_patterns_do_not_reach_another() -> None:
    """The prefilter proves patterns absent in one text; a second text scanned after it (the
    thread-local kept the last document) is scanned in full."""
    scanner = _scanner(Engine(cache=None, audit=None, provider=None).ruleset())
    phone = next(c for c in CHECKS if c.describe() == "pii(PHONE_NUMBER)")
    quiet = DocContext(document_from_text("Nothing to see here."))
    quiet.prefilter(scanner)
    assert quiet.scan_text.absent and quiet.matches(phone) == []
    loud = scan.ScanText("Call 415-555-0134.")
    assert [loud[m.start : m.end] for m in phone.find(loud)] == ["415-555-0134"]
    assert quiet.matches(phone) == []


def test_release_drops_the_encoding_and_a_later_check_encodes_again() -> None:
    text = "Zoë Müller: call 415-555-0134 or write to zoe@example.com."
    ctx = DocContext(document_from_text(text))
    first = ctx.scan_text
    assert first.data == text.encode() and type(first[0:3]) is str
    gone = weakref.ref(first)
    del first
    ctx.release()
    assert gone() is None  # nothing else held it: not the checks, not the scanner
    found = [ctx.matches(c) for c in CHECKS]  # after the release: a new encoding, same matches
    assert found == [c.find(scan.ScanText(text, reference=True)) for c in CHECKS]


def test_nothing_keeps_the_encoding_after_a_validation() -> None:
    """The context lives as long as the validation: once ``Engine.validate`` returns, no
    encoded copy of the document is left (a 10 MB document would hold 20 MB)."""
    engine = Engine(cache=None, audit=None, provider=NullProvider())
    text = "# Privacy notice\n\nCall 415-555-0134. Our data protection officer: dpo@acme.example."
    engine.validate(document_from_text(text))
    gc.collect()
    left = [o for o in gc.get_objects() if isinstance(o, scan.ScanText) and o == text]
    assert left == []


def test_reference_is_a_field_of_the_text() -> None:
    """The straightforward way is chosen per text, not per thread: a reference text and a
    scanned one side by side give the same matches by their own routes."""
    phrases = next(c for c in CHECKS if isinstance(c, PhraseCheck))
    text = DOCS[0]
    ref, fast = scan.ScanText(text, reference=True), scan.ScanText(text)
    assert scan.is_reference(ref) and not scan.is_reference(fast) and not scan.is_reference(text)
    assert phrases.find(ref) == phrases.find(fast) == phrases.find(text)


# --- the evaluator's linear replacements agree with the straightforward versions -----------


def _near_pairwise(a: list[Hit], b: list[Hit], within: int) -> set[tuple[int, int, str]]:
    out = set()
    for ha in a:
        for hb in b:
            if max(ha.start, hb.start) - min(ha.end, hb.end) <= within:
                out.add((ha.start, ha.end, ha.label))
                out.add((hb.start, hb.end, hb.label))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_near_matches_pairwise(seed: int) -> None:
    rng = random.Random(seed)

    def hits(label: str) -> list[Hit]:
        out = []
        for _ in range(rng.randrange(0, 30)):
            s = rng.randrange(0, 2000)
            out.append(Hit(s, s + rng.choice([1, 5, 20, 300, 1500]), label, "regex"))
        return out

    a, b = hits("a"), hits(rng.choice(["a", "b"]))
    within = rng.choice([0, 10, 100, 400])
    got = _near(a, b, within)
    assert {(h.start, h.end, h.label) for h in got.hits} == _near_pairwise(a, b, within)
    assert got.v == bool(_near_pairwise(a, b, within))


@pytest.mark.parametrize("seed", range(20))
def test_section_ranges_match_document(seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randrange(1, 60)):
        lines.append(
            "#" * rng.randrange(1, 5)
            + " "
            + rng.choice(["Data", "Rights", "Contact", "Data retention", "Other"])
        )
        lines.append("text " * rng.randrange(1, 5))
    doc = Document("\n".join(lines), media_type="text/markdown")
    ends = _subtree_ends(doc.sections)
    for heads in [("data",), ("rights", "contact"), ("other",), ("nothing",)]:
        assert _section_ranges(doc.sections, heads, ends) == doc.section_ranges(heads)


# --- regexes tried only where their leading group matches -----------------------------------

_ANCHORED = [
    r"\b(?:a|ab|b a)\b(?:[^\n]|\n[^\n]){0,12}?\b(?:c|b)(?:\W|$)",
    r"(?i)\b(?:ab|a)\s+b",
    r"(?:a|é)[a-z ]*c",
    r"(a+|b)(c|)",
    r"\b(?:a)[a ]*Z",  # long failing tails: the attempt budget falls back to one ordinary pass
    r"(?:ß|ss)\w?",
    # longer prefixes: the anchor runs up to the window ({0,30}) or an open-ended run (*)
    r"(?i)\b(?:a|ab)\s+(?:b\s+)?(?:c|é)\b[^.\n]{0,30}?\b(?:a|c)\s",
    r"(?:a|b)c?\b[a-z ]*Z",
    r"(?:a|b)(?:\s|é)+(?:c|Z)[ab ]{2,25}(?:a|$)",
]


@pytest.mark.parametrize("pattern", _ANCHORED)
def test_anchored_regex_matches_finditer(pattern: str) -> None:
    import re2

    rx = re2.compile(pattern, scan.options())
    anchor = scan.anchor_of(rx.pattern)
    assert anchor is not None
    rng = random.Random(pattern)
    texts = ["a " * 3000, "ab a b c ab\nb c é c ßs SS aa"]
    texts += [
        "".join(rng.choice("ab c\nécßSZ") for _ in range(rng.randrange(0, 300))) for _ in range(200)
    ]
    for text in texts:
        got = [(m.span(), m.groups()) for m in scan.finditer(rx, text, anchor)]
        want = [(m.span(), m.groups()) for m in rx.finditer(text)]
        assert got == want, text


@pytest.mark.parametrize(
    "pattern", [r"\b(?:a)|b", r"(?:a)?b", r"(?:a|)b", r"(?i:a)b", r"(?:\ba)b", r"[(](?:a)"]
)
def test_no_anchor_when_the_group_is_not_a_necessary_prefix(pattern: str) -> None:
    assert scan.anchor_of(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "anchor"),
    [
        (
            r"(?i)\b(?:we|I)\s+(?:may\s+)?(?:use)\b[^.\n]{0,80}?x",
            r"(?i)\b(?:we|I)\s+(?:may\s+)?(?:use)\b",
        ),
        (r"(?:a|b)c?\b[a-z ]*Z", r"(?:a|b)c?\b"),
        (r"(?:a)\x{41}\p{Lu}[^x]+y", r"(?:a)\x{41}\p{Lu}"),
        (r"(?:a)b\Qx*\E", r"(?:a)b"),
    ],
)
def test_the_anchor_runs_up_to_the_window(pattern: str, anchor: str) -> None:
    got = scan.anchor_of(pattern)
    assert got is not None and got.pattern == anchor


class _OutOfMemorySet(re2.Set):
    """What `re2.Set.Match` returns when its DFA runs out of memory part-way: nothing (RE2
    clears the list). RE2 resets and carries on under every budget tried here, so the failure
    is simulated."""

    __slots__ = ()

    def Match(self, text):  # noqa: N802 - the wrapper's name
        return None


_NO_SETS = {"set": [], "late-set": []}


def test_a_set_pass_that_fails_proves_nothing() -> None:
    scanner = scan.Scanner(CHECKS)
    atoms_only = scan.Scanner(CHECKS)
    atoms_only._sets = dict(_NO_SETS)
    text = "Call 415-555-0134 today. Our records show the patient list."
    with_sets = set(scanner.scan(text))
    assert with_sets > set(atoms_only.scan(text))  # a completed Set pass proves more
    scanner._sets = {
        kind: [
            (_OutOfMemorySet.__new__(_OutOfMemorySet), index)
            for _, index in scanner.set_passes(kind)
        ]
        for kind in _NO_SETS
    }
    assert all(scanner._sets.values())
    # every Set compiled, so the atoms ran only for the patterns no Set holds: with every Set
    # failing, less is proved than by the atoms alone, and nothing wrongly
    assert set(scanner.scan(text)) < set(atoms_only.scan(text))


def test_with_every_set_running_the_atoms_cover_only_the_rest() -> None:
    scanner = scan.Scanner(CHECKS)
    ((leftover, index),) = scanner._leftover
    held = {i for kind in _NO_SETS for group in scanner._groups[kind] for i in group}
    assert set(index) == set(range(len(scanner.patterns))) - held and index
    big = "Call 415-555-0134 today. " * 5000
    assert [e for e, _ in scanner._passes_for(len(big))][0] is leftover
    scanner._sets["set"] = scanner._sets["set"][1:]  # one Set RE2 would not compile
    assert [e for e, _ in scanner._passes_for(len(big))][0] is scanner._passes[0][0]


def test_sets_run_only_on_documents_big_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "SET_MIN_BYTES", 1000)
    monkeypatch.setattr(scan, "LATE_SET_BYTES", 1000)
    scanner = scan.Scanner(CHECKS)
    atoms_only = scan.Scanner(CHECKS)
    atoms_only._sets = dict(_NO_SETS)
    small = "Call 415-555-0134 today."
    assert scanner.scan(small) == atoms_only.scan(small)
    assert scanner._sets == {}  # not even compiled
    big = small + " Nothing else to say." * 50
    assert len(big.encode()) >= 1000
    assert set(scanner.scan(big)) > set(atoms_only.scan(big))


def test_phrase_sets_wait_until_enough_large_documents_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A phrase list whose words occur, but never as the phrase, passes the atoms; its Set
    proves it absent, once the scanner has read LATE_SET_BYTES of large documents."""
    monkeypatch.setattr(scan, "SET_MIN_BYTES", 1000)
    monkeypatch.setattr(scan, "LATE_SET_BYTES", 2500)
    listed = PhraseCheck(("our patient", "data controller"))
    scanner = scan.Scanner([listed])
    # every word of both phrases, none as the phrase; "controllers" is a longer word
    big = "Our records name the patient. The data controllers met. " * 20
    assert len(big.encode()) >= 1000 and not listed._re.search(big)
    assert scanner.scan(big) == []  # 1,140 bytes read: the atoms alone, which pass it
    assert "late-set" not in scanner._sets
    assert scanner.scan(big + " ") == []  # 2,281
    assert scanner.scan(big + "  ") == [listed.key]  # 3,423: the phrase Sets run
    assert scanner.scan(big + " data controller") == []
    assert scanner.scan("Call our patient.") == []  # small documents: atoms only, as before


def test_each_kind_of_set_holds_its_checks_patterns() -> None:
    scanner = _scanner(Engine(cache=None, audit=None, provider=None).ruleset())
    kinds: dict[str, str] = {}
    for c in CHECKS:
        for conj in c.triggers() or ():
            for p in conj:
                kind = "atoms" if scan.set_form(p) is None else c.prefilter
                kinds[p] = kind if kinds.get(p, kind) == kind else "atoms"
    for kind in _NO_SETS:
        held = {
            scanner.patterns[i]
            for engine, index in scanner.set_passes(kind)
            if isinstance(engine, re2.Set)
            for i in index
        }
        assert held == {p for p, k in kinds.items() if k == kind}
        assert len(held) > 50
    assert {scanner.patterns[i] for _, index in scanner.set_passes("late-set") for i in index} == {
        c.triggers()[0][0] for c in CHECKS if isinstance(c, PhraseCheck)
    }
    assert "atoms" in kinds.values()  # a windowed regex with a top-level "|"


@pytest.mark.parametrize(
    ("pattern", "cut"),
    [
        (r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", r"\bgh[pousr]_"),
        (r"(?i:\bpwd)[ \t]*=[ \t]*([^\s\"'`,;]{6,200})", r"(?i:\bpwd)[ \t]*=[ \t]*"),
        (r"(?i)\bwe\s+(?:get)\b[^.\n]{0,80}?\bfrom\b", r"(?i)\bwe\s+(?:get)\b"),
        (r"\bDPO\b(?:[^\n]|\n[^\n]){0,250}?@", r"\bDPO\b"),
        (r"[a-z]+\.[A-Za-z]{2,63}", r"[a-z]+\."),
        (r"\d{3}-\d{4}", r"\d{3}-\d{4}"),  # nothing wide: the pattern itself
        (r"a|b[^x]{0,40}c", None),  # a top-level "|"
        (r"(?:x|y[^z]{0,40})z", None),  # the repeat is inside a group
        (r"[^x]{0,40}y", None),  # the cut form would match the empty string
    ],
)
def test_the_set_form_cuts_before_the_wide_repeat(pattern: str, cut: str | None) -> None:
    assert scan.set_form(pattern) == cut


def test_the_set_form_matches_wherever_its_pattern_does() -> None:
    """Absence of the cut form must prove absence of the pattern: on every corpus document,
    every built-in trigger pattern that matches has a cut form that matches too."""
    cut = {p: scan.set_form(p) for c in CHECKS for conj in c.triggers() or () for p in conj}
    cut = {p: f for p, f in cut.items() if f is not None and f != p}
    assert len(cut) >= 10
    compiled = [
        (re2.compile(p, scan.options()), re2.compile(f, scan.options())) for p, f in cut.items()
    ]
    found = 0
    for text in DOCS:
        for full, form in compiled:
            if full.search(text) is not None:
                found += 1
                assert form.search(text) is not None, (full.pattern, form.pattern)
    assert found > 0
