"""Speed of the deterministic layer: the multi-pattern scanner against Python `re` and Presidio."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import re
import statistics
import string
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.api import Engine
from engine.document import Document
from engine.evaluate import DocContext, evaluate_gate
from engine.ingest import document_from_text
from engine.loader import Registry, Ruleset
from engine.providers.base import NullProvider
from gates import scan
from gates.base import Check
from gates.phrases import PhraseCheck
from gates.pii import luhn_check_digit

# ---------------------------------------------------------------------------------------------
# A deterministic corpus: mixed prose with PII, PHI, secrets and disclosure wording at a known
# rate, plus the Unicode that trips ASCII-only engines (accents glued to values, non-ASCII
# digits, emoji, CJK, Turkish dotted/dotless i, the Kelvin sign, non-breaking spaces).

_WORDS = (  # noqa: SIM905 - a word list reads better as prose
    "the we our you your data information personal health patient record notice policy service "
    "process use share disclose provide request access right may will must and or of to for in "
    "with by on at from about this that these those each every other any such when where how "
    "account customer member plan benefit claim payment treatment care provider hospital clinic "
    "staff team office report review update contact address email phone number date time year "
    "month week day period law legal basis consent purpose interest security breach incident "
    "system network server database file document copy request complaint authority agency "
    "controller processor officer retain retained keep stored delete deleted retention transfer "
    "country outside union protection privacy practices medical diagnosis insurance coverage"
).split()

_PHRASES = (
    "data controller", "data protection officer", "retention period", "as long as necessary",
    "supervisory authority", "Information Commissioner", "diagnosed with", "file a complaint",
    "will not retaliate", "Office for Civil Rights", "legitimate interests", "right to erasure",
    "this notice describes how medical information about you may be used and disclosed",
    "kept for six years", "we keep your records for 7 years", "Secretary of Health and Human Services",
)

_FIRST = ("James", "Mary", "José", "Zoë", "Łukasz", "Ingrid", "Siobhán", "Ahmed", "Mei", "Olga",
          "Chloé", "Renée", "Björn", "Ana", "Noah", "Priya", "Kenji", "Émile", "Fatima", "Liam")
_LAST = ("Smith", "García", "Müller", "O'Brien", "Nguyen", "Kowalski", "Ødegaard", "Dubois",
         "Rossi", "Johnson", "Álvarez", "Yılmaz", "Schröder", "Okafor", "Tanaka", "Brown")
_DOMAINS = ("example.com", "acme.example", "mail.example.org", "clinic.example.net")
_UNICODE = (
    "Привет мир, ", "数据保护说明。", "個人情報の取り扱いについて。", "🙂 ", "✅ done. ",
    "٠١٢-٣٤-٥٦٧٨ ", "１２３-４５-６７８９ ", "DATA PROTECTİON OFFİCER ", "prıvacy notıce ",
    "ſupervisory authority ", "Keep records ", "data\u00a0controller ", "naïve café ",
    "İstanbul ofisi ", "straße ", "ﬁle a complaint ",
)


def _luhn_complete(body: str) -> str:
    return body + luhn_check_digit(body)


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
        rng.choice(string.digits) for _ in range(14))
    num = int("".join(str(int(c, 36)) for c in bban + "GB00"))
    iban = f"GB{98 - num % 97:02d}{bban}"
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def _entity(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    d = rng.randrange
    kind = d(22)
    if kind == 0:
        return f"{first.lower()}.{last.lower()}@{rng.choice(_DOMAINS)}".replace("'", "")
    if kind == 1:
        return f"({d(201, 990)}) {d(200, 999)}-{d(1000, 9999)}"
    if kind == 2:
        return f"{d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 3:
        return f"SSN {d(1, 665):03d}-{d(1, 99):02d}-{d(1, 9999):04d}"
    if kind == 4:
        return "card " + _luhn_complete("4" + "".join(str(d(10)) for _ in range(14)))
    if kind == 5:
        return "IBAN " + _iban(rng)
    if kind == 6:
        return f"on {rng.choice(('March', 'June', 'Sept.', 'December'))} {d(1, 29)}, {d(1990, 2030)}"
    if kind == 7:
        return f"DOB: {d(1, 13):02d}/{d(1, 29):02d}/{d(1930, 2010)}"
    if kind == 8:
        return f"MRN: {d(100000, 9999999)}"
    if kind == 9:
        return f"Dr. {first} {last}"
    if kind == 10:
        return f"Patient: {first} {last}"
    if kind == 11:
        return f"{d(1, 255)}.{d(256)}.{d(256)}.{d(1, 255)}"
    if kind == 12:
        return f"https://www.{rng.choice(_DOMAINS)}/{last.lower()}/{d(1000)}".replace("'", "")
    if kind == 13:
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits)
                                for _ in range(16))
    if kind == 14:
        return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    if kind == 15:
        return f'password = "{rng.choice(_LAST)}{d(10, 99)}!x"'
    if kind == 16:
        return f"{first}{d(100, 999)}-{d(10, 99)}-{d(1000, 9999)}"  # glued: not an SSN
    if kind == 17:
        return f"📞 {d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 18:
        return f"电话{d(201, 990)}-{d(200, 999)}-{d(1000, 9999)}"
    if kind == 19:
        return f"aged {d(90, 105)} years old"
    if kind == 20:
        return f"NPI {_luhn_complete('80840' + '1' + ''.join(str(d(10)) for _ in range(8)))[5:]}"
    return f"{first} {last} <{first.lower()}@{rng.choice(_DOMAINS)}>"


def make_text(size: int, seed: int = 7, pii_rate: float = 0.3) -> tuple[str, int]:
    """About ``size`` UTF-8 bytes of prose; each sentence carries an entity with probability
    ``pii_rate``. Returns the text and how many entities were inserted."""
    rng = random.Random(seed)
    parts: list[str] = []
    n = 0
    entities = 0
    while n < size:
        words = [rng.choice(_WORDS) for _ in range(rng.randrange(6, 16))]
        if rng.random() < 0.25:
            words.insert(rng.randrange(len(words)), rng.choice(_PHRASES))
        if rng.random() < pii_rate:
            words.insert(rng.randrange(len(words)), _entity(rng))
            entities += 1
        if rng.random() < 0.08:
            words.insert(rng.randrange(len(words)), rng.choice(_UNICODE))
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice((". ", ". ", "! ", ".\n", ".\n\n"))
        if rng.random() < 0.02:
            sentence = "\n" + rng.choice(("## ", "")) + rng.choice(
                ("YOUR RIGHTS", "How we use your data", "Retention", "Contact us")) + "\n\n" + sentence
        parts.append(sentence)
        n += len(sentence.encode())
    return "".join(parts), entities


# ---------------------------------------------------------------------------------------------
# What is measured

SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
#: baselines stop growing past this many seconds per run; larger sizes are extrapolated.
BASELINE_BUDGET_S = 12.0


def _timed(fn: Callable[[], object], *, budget: float = 0.5, most: int = 30) -> float:
    """Median CPU seconds of ``fn`` (this process, one thread) over as many runs as fit in
    ``budget`` (at least one). CPU time, not wall time: per-core cost, and other jobs on a shared
    machine do not inflate it."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < most and (not times or time.perf_counter() - start < budget):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def deterministic_layer(rs: Ruleset, doc: Document) -> Callable[[], object]:
    """The scanner pass, every check's matches and every gate's evaluation (semantic questions
    left pending): everything a validation does before asking a model."""
    from engine.api import _scanner

    scanner = _scanner(rs)

    def run() -> object:
        ctx = DocContext(doc)  # as for a new document: no encoding or detector results carried over
        ctx.prefilter(scanner)
        return [evaluate_gate(g, ctx) for g in rs.gates]

    return run


def straightforward(checks: list[Check], text: str) -> Callable[[], object]:
    """Every check on its own over the whole text: RE2 on `str`, Python `re` for phrases."""
    def run() -> object:
        ref = scan.ScanText(text, reference=True)
        return [c.find(ref) for c in checks]

    return run


# RE2-only syntax -> Python `re` (approximate classes: the point is the cost of one pass per
# pattern, not identical matches).
_PY_SYNTAX = [(r"\p{Lu}", "[A-ZÀ-ÖØ-Þ]"), (r"\p{Ll}", "[a-zß-öø-ÿ]"), (r"\p{L}", r"[^\W\d_]"),
              (r"\p{Latin}", r"[^\W\d_]"), (r"\p{Greek}", r"[^\W\d_]"),
              (r"\p{Cyrillic}", r"[^\W\d_]"), (r"\z", r"\Z")]


def python_re_patterns(checks: list[Check]) -> tuple[list[re.Pattern[str]], int]:
    """Each check's patterns compiled with Python `re`; returns them and how many would not."""
    out: list[re.Pattern[str]] = []
    failed = 0
    for c in checks:
        if isinstance(c, PhraseCheck):
            out.append(c._re)
            continue
        for conj in c.triggers() or ():
            for p in conj:
                for a, b in _PY_SYNTAX:
                    p = p.replace(a, b)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        out.append(re.compile(p))
                except re.error:
                    failed += 1
    return list({p.pattern: p for p in out}.values()), failed


def python_re(patterns: list[re.Pattern[str]], text: str) -> Callable[[], object]:
    return lambda: [sum(1 for _ in p.finditer(text)) for p in patterns]


def presidio_engine(rules: list[re.Pattern[str]] | None = None) -> Any | None:
    """Presidio's AnalyzerEngine with the no-op NLP engine: no spaCy model is downloaded or
    loaded, so no NER (PERSON, LOCATION...) runs. Without ``rules``, its predefined pattern
    recognizers; with them, one ad-hoc PatternRecognizer per pattern instead (this engine's own
    rules, as :func:`python_re_patterns` compiles them): the same work in Presidio's pipeline."""
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine.no_op_nlp_engine import NoOpNlpEngine
    except ImportError:
        return None
    # Presidio's email validation would fetch the public suffix list; use the bundled copy.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    if rules is None:
        full = RecognizerRegistry(supported_languages=["en"])
        full.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        recognizers = [r for r in full.recognizers if isinstance(r, PatternRecognizer)]
    else:
        # Presidio compiles with the `regex` module (\p{Lu} and friends work there) and by
        # default adds IGNORECASE|MULTILINE|DOTALL; each pattern keeps its own flags instead
        recognizers = [
            PatternRecognizer(supported_entity=f"RULE_{i}", global_regex_flags=0,
                              patterns=[Pattern(f"rule_{i}", ("(?i)" if p.flags & re.IGNORECASE
                                                              else "") + p.pattern, 0.5)])
            for i, p in enumerate(rules)]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def _peak_memory(path: str, queue: Any) -> None:
    """Child process: the deterministic layer on one document read from ``path``; reports peak
    RSS (VmHWM) before and after, and the Python heap peak of the run (tracemalloc)."""
    import tracemalloc

    def hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    rs = Registry().ruleset()
    deterministic_layer(rs, document_from_text("warm up"))()
    text = Path(path).read_text(encoding="utf-8")
    doc = document_from_text(text)
    before = hwm()
    t0 = time.process_time()
    deterministic_layer(rs, doc)()
    first = time.process_time() - t0
    after = hwm()
    # a second run under tracemalloc (which itself costs memory, so not during the RSS run)
    tracemalloc.start()
    deterministic_layer(rs, doc)()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queue.put((before, after, py_peak, len(text.encode()), first))


def peak_memory(text: str) -> tuple[int, int, int, int, float]:
    """Peak RSS before and after, Python heap peak, UTF-8 bytes, and the CPU seconds of the run
    (a first document: the Sets' DFA states are built on it). Measured in a fresh process, so
    this run's other documents and baselines do not count."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        path.write_text(text, encoding="utf-8")
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_memory, args=(str(path), queue))
        proc.start()
        got = queue.get(timeout=600)
        proc.join()
    return got


def validate_latency(text: str, runs: int = 300) -> dict[str, tuple[float, float]]:
    """p50/p99 ms of `Engine.validate` on a 10 KB document: cold (no result cache, and a
    different document every run, so nothing is remembered) and from a warm disk cache; with the
    document type inferred (what `clearance validate` does) and given. No semantic provider (the
    deterministic path), no audit log."""
    from engine.cache import DiskCache

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for doc_type in (None, "privacy_notice"):
            for label, cache in (("cold", None), ("from cache", DiskCache(Path(tmp) / "c"))):
                engine = Engine(cache=cache, audit=None, provider=NullProvider())
                engine.validate(document_from_text(text), doc_type=doc_type)  # warm, fill cache
                times = []
                for i in range(runs):
                    body = text if cache is not None else f"{i}. {text}"
                    t0 = time.perf_counter()
                    engine.validate(document_from_text(body), doc_type=doc_type)
                    times.append((time.perf_counter() - t0) * 1000)
                times.sort()
                kind = "type inferred" if doc_type is None else f"--doc-type {doc_type}"
                out[f"{label}, {kind}"] = (statistics.median(times),
                                           times[int(len(times) * 0.99) - 1])
    return out


# ---------------------------------------------------------------------------------------------
# The run


def _fmt(v: float | None, digits: int = 3, approx: bool = False) -> str:
    if v is None:
        return "-"
    return ("~" if approx else "") + f"{v:.{digits}f}"


def _baseline(fn_for: Callable[[str], Callable[[], object]], texts: dict[int, str]
              ) -> dict[int, tuple[float, bool]]:
    """ms/KB per size; sizes whose predicted run exceeds the budget reuse the largest measured
    size's ms/KB (marked as extrapolated)."""
    out: dict[int, tuple[float, bool]] = {}
    last: float | None = None
    for size, text in texts.items():
        kb = len(text.encode()) / 1000
        if last is not None and last * kb / 1000 > BASELINE_BUDGET_S:
            out[size] = (last, True)
            continue
        fn = fn_for(text)
        fn()  # warm up
        last = _timed(fn, budget=1.0, most=10) * 1000 / kb
        out[size] = (last, False)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="document sizes in bytes, comma-separated")
    parser.add_argument("--no-baselines", action="store_true", help="skip Presidio and Python re")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    t_start = time.perf_counter()
    rs = Registry().ruleset()
    checks = rs.checks
    counts = Counter(type(c).__name__ for c in checks)
    print(f"Clearance speed benchmark: {len(rs.gates)} gates in "
          f"{', '.join(m.id for m in rs.modules)}; {len(checks)} distinct checks "
          f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}); "
          f"{len(os.sched_getaffinity(0))} CPUs, one used; Python {sys.version.split()[0]}")
    texts: dict[int, str] = {}
    entities: dict[int, int] = {}
    for size in sizes:
        texts[size], entities[size] = make_text(size)
    print("documents: mixed prose, one PII/PHI/secret value in ~30% of sentences "
          f"(~{entities[sizes[-1]] / (len(texts[sizes[-1]].encode()) / 1000):.1f} per KB), "
          "~8% of sentences with non-ASCII traps (accents, CJK, emoji, non-ASCII digits)\n")

    ours: dict[int, float] = {}
    for size, text in texts.items():
        doc = document_from_text(text)
        fn = deterministic_layer(rs, doc)
        fn()  # warm up: first use builds the scanner and Unicode tables
        kb = len(text.encode()) / 1000
        ours[size] = _timed(fn, budget=1.5 if size < 10**7 else 0.0) * 1000 / kb

    pyre: dict[int, tuple[float, bool]] = {}
    pres: dict[int, tuple[float, bool]] = {}
    pres_rules: dict[int, tuple[float, bool]] = {}
    ref: dict[int, tuple[float, bool]] = {}
    failed = 0
    presidio = presidio_rules = None
    if not args.no_baselines:
        patterns, failed = python_re_patterns(checks)
        pyre = _baseline(lambda t: python_re(patterns, t), texts)
        ref = _baseline(lambda t: straightforward(checks, t), texts)
        presidio = presidio_engine()
        presidio_rules = presidio_engine(patterns)
        for engine_, table in ((presidio, pres), (presidio_rules, pres_rules)):
            if engine_ is not None:
                table.update(_baseline(
                    lambda t, e=engine_: (lambda: e.analyze(t, language="en")), texts))

    columns = (("re ms/KB", pyre), ("Presidio", pres), ("P. rules", pres_rules),
               ("1-by-1", ref))
    head = f"{'size':>8} {'ms':>9} {'ms/KB':>7} {'MB/s':>6}" + "".join(
        f" | {name:>9} {'x':>5}" for name, _ in columns)
    print("deterministic layer (scanner + every check + every gate), median CPU time of "
          "repeated runs, one core")
    print(head)
    print("-" * len(head))
    for size, text in texts.items():
        kb = len(text.encode()) / 1000
        ms_kb = ours[size]
        row = f"{_label(size):>8} {ms_kb * kb:>9.1f} {ms_kb:>7.3f} {1 / ms_kb:>6.1f}"
        for _, table in columns:
            if size in table:
                v, approx = table[size]
                row += f" | {_fmt(v, 3, approx):>9} {v / ms_kb:>5.0f}"
            else:
                row += f" | {'-':>9} {'-':>5}"
        print(row)
    first, last = sizes[0], sizes[-1]
    print(f"\nlinearity: ms/KB at {_label(last)} / ms/KB at {_label(first)} = "
          f"{ours[last] / ours[first]:.2f} (1.0 = perfectly linear; below 1, fixed costs amortise)")
    notes = [
        "re: Python `re`, each check's patterns one at a time (phrases as compiled by PhraseCheck; "
        f"RE2-only classes such as \\p{{Lu}} approximated; {failed} patterns would not compile)",
        "Presidio: presidio-analyzer AnalyzerEngine with its predefined *pattern* recognizers and "
        "the no-op NLP engine: NO NER model is used (none can be downloaded offline), so PERSON/"
        "LOCATION/NRP are not detected and Presidio does less work than it would with spaCy"
        if presidio is not None else "Presidio: skipped" if args.no_baselines else
        "Presidio: not installed (pip install -e '.[bench]')",
        "P. rules: the same AnalyzerEngine running this engine's own rules instead, one "
        f"PatternRecognizer per pattern of the re column ({len(patterns)} "
        "patterns; no validators, no gates): the same matching work in Presidio's pipeline"
        if presidio_rules is not None else "P. rules: skipped or not installed",
        "1-by-1: this engine's own checks evaluated straightforwardly (no scanner, RE2 on `str`, "
        "Python `re` for phrases): what tests/test_scan_equivalence.py compares against",
        f"~: extrapolated from the largest size measured (runs capped near {BASELINE_BUDGET_S:g} s)",
        "x: how many times slower than the deterministic layer",
    ]
    for n in notes:
        print("  " + n)

    if 10_000 in texts or sizes:
        probe = texts.get(10_000) or make_text(10_000)[0]
        lat = validate_latency(probe)
        print("\nEngine.validate end to end (Document built from text included), 10 KB document, "
              "no semantic provider, no audit log, 300 runs each:")
        for label, (p50, p99) in lat.items():
            print(f"  {label:<40} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")

    print("\nfirst document in a fresh process (what a one-off CLI run pays: the Sets are "
          "compiled and their DFA states built on it; the phrase Sets wait for 2 MiB of large "
          "documents):")
    big = max(sizes)
    fresh = {size: peak_memory(texts[size]) for size in sizes if size >= 1_000_000 or size == big}
    for size, (*_, nbytes, took) in fresh.items():
        print(f"  {_label(size):>6}: {took * 1000:,.0f} ms, {took * 1000 / (nbytes / 1000):.3f} "
              "ms/KB")

    before, after, py_peak, nbytes, _ = fresh[big]
    print(f"\npeak memory, deterministic layer on the {_label(big)} document, fresh process: "
          f"peak RSS {after / 2**20:.0f} MB ({before / 2**20:.0f} MB before the run: "
          f"interpreter, modules, compiled gates, the document as str and Document; "
          f"{(after - before) / 2**20:.0f} MB added by the run); Python heap peak during the run "
          f"(tracemalloc, excludes RE2's C++ memory) {py_peak / 2**20:.0f} MB; "
          f"document {nbytes / 2**20:.1f} MB as UTF-8")
    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s")
    return 0


def _label(size: int) -> str:
    for unit, n in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= n:
            return f"{size // n} {unit}"
    return f"{size} B"


if __name__ == "__main__":
    raise SystemExit(main())
