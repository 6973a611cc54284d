"""Detector accuracy on the held-out sets (ours and Presidio's recognizers) and time per KB.

``python -m benchmarks.bench_detectors`` (``--json`` for machine-readable output). The sets
are ``data/pii-eval/{person,phones,dates}-test.jsonl`` and ``data/secrets-eval/secrets-test.jsonl``
(see the generators' docstrings for how they are kept apart from what the rules were tuned
on). Time per KB: each detector alone, median of repeated runs over the benchmark's mixed
prose (``benchmarks.bench_speed.make_text``) and over the set's own documents.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gates import scan
from gates.base import Match

ROOT = Path(__file__).resolve().parents[1]

#: (set, the entity types it labels, the detectors that produce them, Presidio's entity names)
SETS: list[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str]]] = [
    ("data/pii-eval/person-test.jsonl", ("PERSON",), ("PERSON",), {"PERSON": "PERSON"}),
    ("data/pii-eval/phones-test.jsonl", ("PHONE_NUMBER", "FAX_NUMBER"),
     ("PHONE_NUMBER", "FAX_NUMBER"), {"PHONE_NUMBER": "PHONE_NUMBER"}),
    ("data/pii-eval/dates-test.jsonl", ("DATE_TIME",), ("DATE_TIME",),
     {"DATE_TIME": "DATE_TIME"}),
    ("data/secrets-eval/secrets-test.jsonl", ("SECRET",), ("any-secret",), {}),
]


def _timed(fn: Callable[[], Any], budget: float = 0.6, most: int = 15) -> float:
    """Median seconds of ``fn`` over repeated runs (at least 3, within ``budget``)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < most):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def detector_finders() -> dict[str, Callable[[str], list[Match]]]:
    from gates.pii import DETECTORS
    from gates.secrets import DETECTORS as SECRETS

    out: dict[str, Callable[[str], list[Match]]] = {n: d.find for n, d in DETECTORS.items()}

    def any_secret(text: str) -> list[Match]:
        found: list[Match] = []
        for d in SECRETS.values():
            found.extend(d.find(text))
        return found

    out["any-secret"] = any_secret
    return out


def ms_per_kb(find: Callable[[str], list[Match]], texts: list[str]) -> float:
    """One detector over ``texts``, as the engine runs it (each document's text given as a
    fresh ``scan.ScanText``: its encoding and memo new)."""
    import gates.pii

    # measure the work, not the memo of the previous run (older detectors have no memo)
    clear = getattr(getattr(gates.pii, "_phone_match", None), "cache_clear", lambda: None)

    kb = sum(len(t.encode()) for t in texts) / 1000

    def run() -> None:
        clear()
        for t in texts:
            find(scan.ScanText(t))

    run()  # warm: lists loaded, patterns compiled
    return _timed(run) * 1000 / kb


def _score(labels: list[dict], found: list[tuple[str, int, int]], types: tuple[str, ...],
           counts: dict[str, list[int]]) -> None:
    for typ in types:
        c = counts.setdefault(typ, [0, 0, 0, 0])  # tp, fp, found, missed
        lab = [(e["start"], e["end"]) for e in labels if e["type"] == typ]
        pred = [(s, e) for t, s, e in found if t == typ]
        for s, e in pred:
            c[0 if any(s < b and a < e for a, b in lab) else 1] += 1
        for a, b in lab:
            c[2 if any(s < b and a < e for s, e in pred) else 3] += 1


def _prf(c: list[int]) -> tuple[float, float, float]:
    tp, fp, found, missed = c
    p = tp / (tp + fp) if tp + fp else 1.0
    r = found / (found + missed) if found + missed else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def ours(path: Path, types: tuple[str, ...]) -> dict[str, list[int]]:
    """Per type counts for what de-identification runs (``detect_all``: every detector, overlaps
    resolved); a secret of any kind counts as SECRET."""
    from gates.redact import detect_all
    from gates.secrets import DETECTORS as SECRETS

    counts: dict[str, list[int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        found = [("SECRET" if m.detail in SECRETS else m.detail, m.start, m.end)
                 for m in detect_all(doc["text"])]
        labels = [{**e, "type": "SECRET" if e["type"] not in types else e["type"]}
                  for e in doc["entities"]]
        _score(labels, found, types, counts)
    return counts


def presidio_analyzer() -> Any | None:
    """Presidio's AnalyzerEngine with every predefined recognizer that needs no NLP model
    (PhoneRecognizer with phonenumbers, DateRecognizer, ...; no spaCy model is installable
    here, so no PERSON), or ``None`` when presidio-analyzer is not installed."""
    import logging

    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine.no_op_nlp_engine import NoOpNlpEngine
    except ImportError:
        return None
    # its email validation would fetch the public suffix list; use the bundled copy
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def presidio(path: Path, names: dict[str, str]) -> dict[str, list[int]] | None:
    """Presidio's predefined recognizers (no NLP model) on the same set, or ``None`` when
    presidio-analyzer is not installed."""
    if not names:
        return None
    engine = presidio_analyzer()
    if engine is None:
        return None
    counts: dict[str, list[int]] = {}
    supported = set(engine.get_supported_entities(language="en"))
    back = {v: k for k, v in names.items() if v in supported}
    if not back:
        return {}  # no recognizer for these types without an NLP model
    for line in path.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        res = engine.analyze(doc["text"], language="en", entities=list(back))
        found = [(back[r.entity_type], r.start, r.end) for r in res if r.entity_type in back]
        _score(doc["entities"], found, tuple(names), counts)
    return counts


def _presidio_finder(engine: Any, entity: str) -> Callable[[str], list[Match]]:
    def find(text: str) -> list[Match]:
        engine.analyze(text, language="en", entities=[entity])
        return []

    return find


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    from benchmarks.bench_speed import make_text

    finders = detector_finders()
    prose = [make_text(100_000, seed=s)[0] for s in (7, 8)]
    report: dict[str, Any] = {"sets": [], "speed": []}
    for rel, types, dets, pnames in SETS:
        path = ROOT / rel
        if not path.is_file():
            print(f"{rel}: missing (run its generator)", file=sys.stderr)
            continue
        texts = [json.loads(x)["text"] for x in path.read_text(encoding="utf-8").splitlines()]
        mine = ours(path, types)
        theirs = presidio(path, pnames)
        for typ in types:
            row = {"set": rel, "type": typ, "support": sum(mine[typ][2:]),
                   "ours": [round(v, 3) for v in _prf(mine[typ])],
                   "presidio": ([round(v, 3) for v in _prf(theirs[typ])]
                                if theirs is not None and typ in theirs else None),
                   "presidio_installed": presidio_analyzer() is not None}
            report["sets"].append(row)
        engine = presidio_analyzer() if pnames else None
        for det in dets:
            row = {"detector": det,
                   "prose_ms_per_kb": round(ms_per_kb(finders[det], prose), 4),
                   "set_ms_per_kb": round(ms_per_kb(finders[det], texts), 4)}
            if engine is not None and pnames.get(det) in engine.get_supported_entities("en"):
                row["presidio_prose_ms_per_kb"] = round(
                    ms_per_kb(_presidio_finder(engine, pnames[det]), prose), 4)
            report["speed"].append(row)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("held-out sets: per-type precision / recall / F1 (span overlap)")
    print(f"{'set':<40} {'type':<13} {'n':>5}  {'ours P/R/F1':<19}  Presidio P/R/F1")
    for r in report["sets"]:
        cell = ("/".join(f"{v:.2f}" for v in r["presidio"]) if r["presidio"] else
                  "n/a" if r["type"] not in ("PERSON", "PHONE_NUMBER", "DATE_TIME") else
                  "no recognizer without an NLP model" if r["presidio_installed"] else
                  "not installed")
        print(f"{r['set']:<40} {r['type']:<13} {r['support']:>5}  "
              f"{'/'.join(f'{v:.2f}' for v in r['ours']):<19}  {cell}")
    print("\ntime per KB, each detector alone (CPU, median): mixed prose 200 KB | the set | "
          "Presidio's recognizer for the type on the prose")
    for r in report["speed"]:
        theirs = r.get("presidio_prose_ms_per_kb")
        print(f"  {r['detector']:<14} {r['prose_ms_per_kb']:8.4f} ms/KB | "
              f"{r['set_ms_per_kb']:8.4f} ms/KB | "
              + (f"{theirs:8.4f} ms/KB" if theirs is not None else "-"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
