"""Verdicts on a held-out labelled corpus (``data/corpus/frozen``): blocking false alarms on
compliant documents and missed defects, as a release owner would meet them.

Each document is validated twice: *told* (its labelled type and jurisdiction given, as a project
with a ``clearance.toml`` would) and *as a newcomer* (nothing given: the type is inferred, every
module applies, the default untyped policy holds). A defect counts as caught when the verdict
blocks (exit 1) and a blocking failed gate cites the provision the defect breaches (or is one of
the label's ``expect_gates``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.report import Report, Status

#: label jurisdictions as the CLI takes them
_JURISDICTION = {"ca-us": ["us-ca"], "any": None}
_SECTION = re.compile(r"(\d+(?:\.\d+)?(?:\(\w+\))*)")


def provisions(cite: str) -> set[str]:
    """``"45 CFR 164.502(b), 164.514(d)"`` -> {"164.502(b)", "164.514(d)"}; spaces dropped."""
    return {
        m.group(1)
        for m in _SECTION.finditer(cite.replace(" ", ""))
        if "(" in m.group(1) or "." in m.group(1)
    }


def cites_match(defect_cite: str, gate_cite: str) -> bool:
    """Whether a gate's citation names the provision a defect breaches: one provision is the
    other or a sub-provision of it (``13(2)`` ~ ``13(2)(a)``, never ``13(2)(a)`` ~ ``13(2)(b)``)."""
    want, have = provisions(defect_cite), provisions(gate_cite)
    return any(a.startswith(b) or b.startswith(a) for a in want for b in have)


@dataclass
class Outcome:
    file: str
    doc_type: str
    compliant: bool
    mode: str  # told | newcomer
    verdict: str
    exit_code: int
    blocking: list[str]  # blocking failed gate codes
    caught: bool | None = None  # defects only
    inferred: str | None = None

    @property
    def kind(self) -> str:
        # "review": exit 3 (a blocking gate undecided, or no type), or verdict review (a
        # non-blocking gate left for a person): never a pass, never a silent miss
        review = self.exit_code == 3 or self.verdict in ("review", "indeterminate")
        if self.compliant:
            if self.exit_code == 1:
                return "false alarm"
            return "review" if review else "pass"
        if self.caught:
            return "caught"
        if self.exit_code == 1:
            return "blocked, other reason"
        return "review" if review else "missed"


@dataclass
class Result:
    outcomes: list[Outcome] = field(default_factory=list)

    def counts(self, mode: str) -> dict[str, Counter]:
        out: dict[str, Counter] = {"compliant": Counter(), "defect": Counter()}
        for o in self.outcomes:
            if o.mode == mode:
                out["compliant" if o.compliant else "defect"][o.kind] += 1
        return out

    def table(self) -> str:
        rows = [
            "| mode | compliant docs | blocking false alarms | sent to review | defect docs | "
            "caught | blocked for another reason | review | missed (passed) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for mode in ("told", "newcomer"):
            c = self.counts(mode)
            rows.append(
                f"| {mode} | {sum(c['compliant'].values())} | "
                f"{c['compliant']['false alarm']} | {c['compliant']['review']} | "
                f"{sum(c['defect'].values())} | {c['defect']['caught']} | "
                f"{c['defect']['blocked, other reason']} | {c['defect']['review']} | "
                f"{c['defect']['missed']} |"
            )
        return "\n".join(rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": {
                m: {k: dict(v) for k, v in self.counts(m).items()} for m in ("told", "newcomer")
            },
            "outcomes": [
                {
                    "file": o.file,
                    "doc_type": o.doc_type,
                    "mode": o.mode,
                    "kind": o.kind,
                    "verdict": o.verdict,
                    "exit_code": o.exit_code,
                    "blocking": o.blocking,
                    "inferred": o.inferred,
                }
                for o in self.outcomes
            ],
        }

    def errors(self, mode: str) -> list[str]:
        out = []
        for o in self.outcomes:
            if o.mode == mode and o.kind not in ("pass", "caught"):
                extra = f" inferred={o.inferred}" if mode == "newcomer" else ""
                out.append(
                    f"{o.kind:>22}: {o.file} ({o.doc_type}{extra}) verdict {o.verdict}; "
                    f"blocking: {', '.join(o.blocking) or '-'}"
                )
        return out


def load_labels(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "labels.json").read_text(encoding="utf-8"))


def judge(report: Report, label: dict[str, Any], mode: str) -> Outcome:
    blocking = [g for g in report.gates if g.blocking and g.status == Status.fail]
    out = Outcome(
        label["file"],
        label["doc_type"],
        label["compliant"],
        mode,
        report.verdict,
        report.exit_code,
        [g.gate for g in blocking],
        inferred=report.document.doc_type,
    )
    if not label["compliant"]:
        expect = set(label.get("expect_gates") or [])
        out.caught = report.exit_code == 1 and any(
            g.gate in expect or (label.get("cite") and cites_match(label["cite"], g.cite))
            for g in blocking
        )
    return out


def measure(engine: Any, folder: Path) -> Result:
    result = Result()
    for label in load_labels(folder):
        path = folder / label["file"]
        told = engine.validate(
            path,
            doc_type=label["doc_type"],
            jurisdictions=_JURISDICTION.get(label["jurisdiction"], [label["jurisdiction"]]),
        )
        result.outcomes.append(judge(told, label, "told"))
        newcomer = engine.validate(path)
        result.outcomes.append(judge(newcomer, label, "newcomer"))
    return result
