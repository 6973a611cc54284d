"""Span-level precision/recall/F1 per entity type for the PII/PHI and secret detectors."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from gates.base import Match


@dataclass
class TypeScore:
    """Counts for one entity type. A prediction is a true positive when a labelled span of the
    same type overlaps it; a labelled span is found when any same-type prediction overlaps it."""

    type: str
    tp: int = 0  # predictions that hit a label
    fp: int = 0
    found: int = 0  # labels that some prediction hit
    missed: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.found / (self.found + self.missed) if self.found + self.missed else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.found + self.missed

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "type": self.type,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "support": self.support,
            "predicted": self.tp + self.fp,
            "tp": self.tp,
            "fp": self.fp,
            "missed": self.missed,
        }


@dataclass
class EntityEvaluation:
    path: str
    documents: int
    scores: dict[str, TypeScore] = field(default_factory=dict)
    #: (document index, type, start, end) of each miss and false alarm, for debugging a regression.
    errors: list[tuple[int, str, str, int, int]] = field(default_factory=list)

    @property
    def micro(self) -> TypeScore:
        total = TypeScore("ALL")
        for s in self.scores.values():
            total.tp += s.tp
            total.fp += s.fp
            total.found += s.found
            total.missed += s.missed
        return total

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "documents": self.documents,
            "types": [s.as_dict() for s in sorted(self.scores.values(), key=lambda s: s.type)],
            "overall": self.micro.as_dict(),
        }


def load_labelled(path: str | Path) -> list[dict]:
    """Read a JSON-lines file of ``{"text": ..., "entities": [{"type","start","end"}]}``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such labelled set")
    docs: list[dict] = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            text = doc["text"]
            for ent in doc["entities"]:
                if not (0 <= ent["start"] < ent["end"] <= len(text)) or not ent["type"]:
                    raise ValueError(f"bad span {ent}")
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{p}:{n}: not a labelled document: {exc}") from None
        docs.append(doc)
    return docs


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def score_document(
    index: int, labels: Iterable[dict], predicted: Iterable[Match], result: EntityEvaluation
) -> None:
    labels = list(labels)
    predicted = list(predicted)
    for m in predicted:
        s = result.scores.setdefault(m.detail, TypeScore(m.detail))
        if any(
            e["type"] == m.detail and _overlaps(m.start, m.end, e["start"], e["end"])
            for e in labels
        ):
            s.tp += 1
        else:
            s.fp += 1
            result.errors.append((index, "false_positive", m.detail, m.start, m.end))
    for e in labels:
        s = result.scores.setdefault(e["type"], TypeScore(e["type"]))
        if any(
            m.detail == e["type"] and _overlaps(m.start, m.end, e["start"], e["end"])
            for m in predicted
        ):
            s.found += 1
        else:
            s.missed += 1
            result.errors.append((index, "missed", e["type"], e["start"], e["end"]))


#: the type a secrets corpus labels every credential with (see data/secrets-eval/generate.py)
SECRET = "SECRET"


def evaluate_entities(
    path: str | Path,
    kinds: tuple[str, ...] = ("pii", "secret"),
    types: tuple[str, ...] | None = None,
) -> EntityEvaluation:
    """Run :func:`gates.redact.detect_all` (what de-identification uses) on every labelled
    document and score it per entity type; with ``types``, only those types are scored (a set
    labelled for names only says nothing about the dates in it). ``SECRET`` among ``types``
    scores every secret detector's matches as that one type."""
    from gates.redact import detect_all
    from gates.secrets import DETECTORS as SECRETS

    secret_names = set(SECRETS)
    docs = load_labelled(path)
    result = EntityEvaluation(str(path), len(docs))
    for i, doc in enumerate(docs):
        found = detect_all(doc["text"], kinds)
        labels = doc["entities"]
        if types is not None and SECRET in types:
            # a secrets corpus labels the value, not the vendor: any secret detector counts
            found = [m._replace(detail=SECRET) if m.detail in secret_names else m for m in found]
        if types is not None:
            found = [m for m in found if m.detail in types]
            labels = [e for e in labels if e["type"] in types]
        score_document(i, labels, found, result)
    return result


def format_table(result: EntityEvaluation) -> str:
    rows = sorted(result.scores.values(), key=lambda s: s.type)
    width = max([len(s.type) for s in rows] + [7])
    head = f"{'type':<{width}}  precision  recall     f1  support  predicted"
    lines = [f"{result.path}: {result.documents} documents", head, "-" * len(head)]
    for s in [*rows, result.micro]:
        if s.type == "ALL":
            lines.append("-" * len(head))
        lines.append(
            f"{s.type:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  "
            f"{s.support:7d}  {s.tp + s.fp:9d}"
        )
    return "\n".join(lines)
