"""CredSweeper beside our ``secret(...)`` detectors on the held-out secrets set (issue 17, part 4).

Run with the project venv; CredSweeper lives in its own venv and runs as a subprocess::

    python -m benchmarks.bench_credsweeper --credsweeper /tmp/csvenv/bin/credsweeper

Each sample is written to its own ``.txt`` file in a temporary folder and CredSweeper's CLI runs
once over the folder with its defaults (ML validation on, threshold ``medium``, every severity).
Its findings come back as (file, line number, value offsets within the line); they are turned
into character spans of the sample and overlapping spans of one sample are merged (as
``detect_all`` resolves our overlaps). Scoring is ``engine.evaluation.entities.score_document``,
the same span-overlap rule our ``pii --eval --types SECRET`` uses: a prediction is a true
positive when it overlaps a labelled SECRET span, a label is found when any prediction overlaps
it. Time per KB is wall time over the set's bytes; CredSweeper's is also given net of one run
over an empty folder (interpreter, rules and ONNX model load). No secret value is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.errors import UserError
from engine.evaluation.entities import SECRET, EntityEvaluation, load_labelled, score_document
from gates.base import Match

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "data/secrets-eval/secrets-test.jsonl"


def _run_credsweeper(exe: str, folder: Path, out: Path, extra: list[str]) -> float:
    """Run the CLI once over ``folder``, save its JSON report to ``out``; wall seconds."""
    cmd = [exe, "--path", str(folder), "--save-json", str(out), "--no-stdout", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        # its stderr may quote a line of a sample: report only the exit code
        sys.exit(f"credsweeper exited with {proc.returncode}")
    return took


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    out: list[tuple[int, int, str]] = []
    for s, e, rule in sorted(spans):
        if out and s < out[-1][1]:
            ps, pe, prule = out[-1]
            out[-1] = (ps, max(pe, e), prule)
        else:
            out.append((s, e, rule))
    return out


def credsweeper_spans(
    report: list[dict], files: dict[str, int], texts: list[str], min_severity: str | None = None
) -> dict[int, list[tuple[int, int, str]]]:
    """Sample index -> merged (start, end, rule) spans. The value's offsets within its line
    give the span; when CredSweeper gives no value offsets, the whole line is the span."""
    order = ["info", "low", "medium", "high", "critical"]
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for cand in report:
        if min_severity and order.index(cand["severity"]) < order.index(min_severity):
            continue
        for ld in cand["line_data_list"]:
            idx = files.get(Path(ld["path"]).name)
            if idx is None:
                continue
            text = texts[idx]
            starts = _line_starts(text)
            ln = ld["line_num"] - 1
            if not 0 <= ln < len(starts):
                continue
            base = starts[ln]
            line_end = starts[ln + 1] - 1 if ln + 1 < len(starts) else len(text)
            vs, ve = ld.get("value_start", -1), ld.get("value_end", -1)
            if vs is None or ve is None or vs < 0 or ve <= vs:
                s, e = base, line_end
            else:
                s, e = base + vs, min(base + ve, len(text))
            if e > s:
                spans.setdefault(idx, []).append((s, e, cand["rule"]))
    return {i: _merge(v) for i, v in spans.items()}


def _summary(name: str, ev: EntityEvaluation, seconds: float, kb: float, note: str = "") -> dict:
    s = ev.micro
    return {
        "name": name,
        "recall": round(s.recall, 3),
        "precision": round(s.precision, 3),
        "f1": round(s.f1, 3),
        "tp": s.tp,
        "fp": s.fp,
        "missed": s.missed,
        "support": s.support,
        "ms_per_kb": round(seconds * 1000 / kb, 2),
        "note": note,
    }


def _by_kind(ev: EntityEvaluation, docs: list[dict]) -> dict[str, tuple[int, int]]:
    """Per sample kind: (labelled spans, missed) for positives, (samples, false alarms) for
    negatives (a kind whose samples carry no label: ``negative``, ``public_key``); from the
    evaluation's error list (indices and kinds only, never values)."""
    out: dict[str, list[int]] = {}
    labelled = {d["kind"] for d in docs if d["entities"]}
    for d in docs:
        out.setdefault(d["kind"], [0, 0])[0] += max(1, len(d["entities"]))
    for idx, what, _typ, _s, _e in ev.errors:
        kind = docs[idx]["kind"]
        if (what == "missed") or (what == "false_positive" and kind not in labelled):
            out[kind][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--credsweeper", required=True, help="path to the credsweeper executable")
    ap.add_argument("--set", default=str(DEFAULT_SET), help="labelled JSON-lines set")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)

    if not Path(args.credsweeper).is_file():
        sys.exit(f"{args.credsweeper}: no such credsweeper executable")
    try:
        docs = load_labelled(args.set)
    except UserError as exc:
        sys.exit(str(exc))
    texts = [d["text"] for d in docs]
    kb = sum(len(t.encode()) for t in texts) / 1000
    labels = [[e for e in d["entities"] if e["type"] == SECRET] for d in docs]

    version = subprocess.run(
        [args.credsweeper, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()

    with tempfile.TemporaryDirectory() as tmp:
        folder, empty = Path(tmp, "samples"), Path(tmp, "empty")
        folder.mkdir()
        empty.mkdir()
        files: dict[str, int] = {}
        for i, t in enumerate(texts):
            name = f"s{i:04d}.txt"
            Path(folder, name).write_text(t, encoding="utf-8")
            files[name] = i
        out = Path(tmp, "report.json")
        base = _run_credsweeper(args.credsweeper, empty, Path(tmp, "empty.json"), [])
        took = _run_credsweeper(args.credsweeper, folder, out, [])
        report = json.loads(out.read_text(encoding="utf-8"))

    rows = []
    for label, sev in (("CredSweeper (defaults)", None), ("CredSweeper, severity >= low", "low")):
        spans = credsweeper_spans(report, files, texts, sev)
        ev = EntityEvaluation(str(args.set), len(docs))
        for i in range(len(docs)):
            pred = [Match(s, e, SECRET) for s, e, _r in spans.get(i, [])]
            score_document(i, labels[i], pred, ev)
        note = f"wall {took:.1f} s incl. {base:.1f} s start-up; net {(took - base) * 1000 / kb:.1f} ms/KB"
        rows.append((_summary(label, ev, took, kb, note), ev))

    # ours: what `pii --eval --types SECRET --only secret` runs, timed on the same samples
    from gates.redact import detect_all
    from gates.secrets import DETECTORS as SECRETS

    detect_all("warm up: sk_live_0000", ("secret",))
    ev = EntityEvaluation(str(args.set), len(docs))
    t0 = time.perf_counter()
    found = [detect_all(t, ("secret",)) for t in texts]
    ours_s = time.perf_counter() - t0
    for i, ms in enumerate(found):
        pred = [m._replace(detail=SECRET) for m in ms if m.detail in SECRETS]
        score_document(i, labels[i], pred, ev)
    rows.insert(0, (_summary("ours: secret(...)", ev, ours_s, kb, "in-process"), ev))

    # combined: ours plus CredSweeper at severity >= low, overlaps merged
    low = credsweeper_spans(report, files, texts, "low")
    ev = EntityEvaluation(str(args.set), len(docs))
    for i, ms in enumerate(found):
        both = [(m.start, m.end, "ours") for m in ms if m.detail in SECRETS] + low.get(i, [])
        score_document(i, labels[i], [Match(s, e, SECRET) for s, e, _r in _merge(both)], ev)
    rows.append((_summary("ours + CredSweeper >= low", ev, ours_s + took, kb, "both times"), ev))

    # which CredSweeper rules raised the false alarms (rule names only)
    fp_rules: dict[str, int] = {}
    spans = credsweeper_spans(report, files, texts)
    for i, ss in spans.items():
        for s, e, rule in ss:
            if not any(s < lab["end"] and lab["start"] < e for lab in labels[i]):
                fp_rules[rule] = fp_rules.get(rule, 0) + 1

    if args.json:
        print(
            json.dumps(
                {
                    "set": str(args.set),
                    "documents": len(docs),
                    "kb": round(kb, 1),
                    "credsweeper_version": version,
                    "rows": [r for r, _ in rows],
                    "credsweeper_fp_rules": fp_rules,
                },
                indent=2,
            )
        )
        return 0
    print(f"{args.set}: {len(docs)} samples, {kb:.1f} KB; {version}")
    head = (
        f"{'detector':<30} {'recall':>6} {'prec':>6} {'f1':>6} {'FP':>4} {'missed':>6} {'ms/KB':>7}"
    )
    print(head)
    print("-" * len(head))
    for r, _ in rows:
        print(
            f"{r['name']:<30} {r['recall']:6.3f} {r['precision']:6.3f} {r['f1']:6.3f} "
            f"{r['fp']:4d} {r['missed']:6d} {r['ms_per_kb']:7.2f}  {r['note']}"
        )
    print("\nper sample kind: positives = missed/labelled, negatives = false alarms/samples")
    kinds = sorted({d["kind"] for d in docs})
    print(f"{'kind':<12}" + "".join(f"{r['name'][:28]:>30}" for r, _ in rows))
    tables = [_by_kind(ev, docs) for _, ev in rows]
    for k in kinds:
        print(f"{k:<12}" + "".join(f"{f'{t[k][1]}/{t[k][0]}':>30}" for t in tables))
    print(
        "\nCredSweeper false alarms by rule (defaults):",
        ", ".join(f"{k} {v}" for k, v in sorted(fp_rules.items(), key=lambda x: -x[1])),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
