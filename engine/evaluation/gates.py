"""Gate accuracy: per-gate precision/recall on labelled corpora and requirement accuracy on GDPR-T-200."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ast import DOC_TYPES
from engine.errors import UserError
from engine.report import Status

LABELS_FILE = "labels.json"
#: label values a corpus may use; "indeterminate" is an outcome, never an expectation.
EXPECTED = ("pass", "fail", "not_applicable")
#: the repository root, against which paths in an evaluation TOML are resolved.
REPO_ROOT = Path(__file__).resolve().parents[2]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _f1(tp: int, fp: int, fn: int) -> float | None:
    """2TP / (2TP + FP + FN): defined whenever anything failed or should have (0.0 when a gate
    only missed or only raised false alarms), undefined for a gate that never failed."""
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else None


def _mean(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


# --- labelled corpora -------------------------------------------------------------------------


@dataclass(kw_only=True)
class Confusion:
    """Confusion counts and the ratios derived from them (None where a ratio is undefined)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        return _f1(self.tp, self.fp, self.fn)

    @property
    def specificity(self) -> float | None:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def balanced_accuracy(self) -> float | None:
        r, s = self.recall, self.specificity
        if r is None or s is None:
            return r if s is None else s
        return (r + s) / 2


@dataclass
class GateScore(Confusion):
    """Confusion counts of one gate; the positive class is "the gate fails". Pass and
    not_applicable are both negatives. An indeterminate outcome is neither: it is counted apart
    (split by what was expected) so an undecided gate can never pass for a correct one."""

    gate: str
    indeterminate_expected_fail: int = 0
    indeterminate_expected_ok: int = 0
    #: decided correctly as a negative but pass vs not_applicable differs from the label.
    applicability_mismatch: int = 0

    @property
    def indeterminate(self) -> int:
        return self.indeterminate_expected_fail + self.indeterminate_expected_ok

    @property
    def support(self) -> int:
        """Documents labelled as failing this gate (decided or not)."""
        return self.tp + self.fn + self.indeterminate_expected_fail

    def fail_closed(self) -> tuple[float | None, float | None]:
        """Precision and recall if every indeterminate outcome were a failure (what a reviewer
        sees when undecided gates are flagged): shown beside, never instead of, the figures above."""
        tp = self.tp + self.indeterminate_expected_fail
        fp = self.fp + self.indeterminate_expected_ok
        return _ratio(tp, tp + fp), _ratio(tp, tp + self.fn)

    def add(self, other: GateScore) -> None:
        for name in (
            "tp",
            "fp",
            "fn",
            "tn",
            "indeterminate_expected_fail",
            "indeterminate_expected_ok",
            "applicability_mismatch",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "indeterminate": self.indeterminate,
            "indeterminate_expected_fail": self.indeterminate_expected_fail,
            "indeterminate_expected_ok": self.indeterminate_expected_ok,
            "applicability_mismatch": self.applicability_mismatch,
            "support": self.support,
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "f1": _round(self.f1),
        }


@dataclass
class Mismatch:
    document: str
    gate: str
    expected: str
    actual: str

    def as_dict(self) -> dict[str, str]:
        return {
            "document": self.document,
            "gate": self.gate,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass
class LabelledDoc:
    name: str
    path: Path
    doc_type: str | None
    expected: dict[str, str]


@dataclass
class LabelledCorpus:
    path: Path
    module: str
    documents: list[LabelledDoc]
    #: files in the folder that the labels do not mention (reported, never evaluated).
    unlabelled: list[str] = field(default_factory=list)


@dataclass
class CorpusEvaluation:
    path: str
    module: str
    provider: str
    documents: int
    scores: dict[str, GateScore] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def micro(self) -> GateScore:
        total = GateScore("ALL")
        for s in self.scores.values():
            total.add(s)
        return total

    def macro(self) -> dict[str, float | None]:
        rows = list(self.scores.values())
        return {
            "precision": _round(_mean(s.precision for s in rows)),
            "recall": _round(_mean(s.recall for s in rows)),
            "f1": _round(_mean(s.f1 for s in rows)),
        }

    def as_dict(self) -> dict[str, Any]:
        micro = self.micro
        fc_p, fc_r = micro.fail_closed()
        return {
            "path": self.path,
            "module": self.module,
            "provider": self.provider,
            "documents": self.documents,
            "positive_class": "gate fails",
            "gates": [s.as_dict() for s in sorted(self.scores.values(), key=lambda s: s.gate)],
            "micro": {k: v for k, v in micro.as_dict().items() if k != "gate"},
            "micro_if_indeterminate_fails": {"precision": _round(fc_p), "recall": _round(fc_r)},
            "macro": self.macro(),
            "mismatches": [m.as_dict() for m in self.mismatches],
            "warnings": self.warnings,
            "seconds": round(self.seconds, 2),
        }


def load_corpus(folder: str | Path) -> LabelledCorpus:
    """Read ``labels.json`` of a corpus folder; malformed labels are the user's to fix (exit 2)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{root}: no such corpus folder")
    labels_path = root / LABELS_FILE
    if not labels_path.is_file():
        raise UserError(
            f'{root}: no {LABELS_FILE} (expected {{"module": ..., "documents": '
            "{name: {doc_type, expected: {GATE: pass|fail|not_applicable}}}})"
        )
    try:
        data = json.loads(labels_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{labels_path}: not valid JSON: {exc}") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("module"), str)
        or not isinstance(data.get("documents"), dict)
    ):
        raise UserError(f"{labels_path}: expected an object with 'module' and 'documents'")
    docs: list[LabelledDoc] = []
    for name, entry in sorted(data["documents"].items()):
        where = f"{labels_path}: document '{name}'"
        if not isinstance(entry, dict) or not isinstance(entry.get("expected"), dict):
            raise UserError(f'{where}: expected {{"doc_type": ..., "expected": {{...}}}}')
        doc_type = entry.get("doc_type")
        if doc_type is not None and doc_type not in DOC_TYPES:
            raise UserError(
                f"{where}: unknown doc_type '{doc_type}' (expected one of: {', '.join(DOC_TYPES)})"
            )
        bad = {g: v for g, v in entry["expected"].items() if v not in EXPECTED}
        if bad:
            gate, value = next(iter(bad.items()))
            raise UserError(
                f"{where}: {gate} is labelled '{value}' (expected one of: {', '.join(EXPECTED)})"
            )
        path = root / name
        if not path.is_file():
            raise UserError(f"{where}: no such file {path}")
        docs.append(LabelledDoc(name, path, doc_type, dict(entry["expected"])))
    named = {d.name for d in docs}
    unlabelled = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file()
        and p.name != LABELS_FILE
        and not p.name.startswith(".")
        and p.name.lower() != "readme.md"
        and str(p.relative_to(root)) not in named
    )
    return LabelledCorpus(root, data["module"], docs, unlabelled)


def _actual(status: Status) -> str:
    if status == Status.waived:  # never happens without an audit log; treat as the finding
        return "fail"
    return status.value


def evaluate_corpus(
    folder: str | Path, engine: Any, progress: Callable[[str], None] | None = None
) -> CorpusEvaluation:
    """Validate every labelled document of ``folder`` with its module and doc type, and score
    each gate of the module against the labels."""
    corpus = load_corpus(folder)
    started = time.perf_counter()
    gates = [g.code for g in engine.ruleset([corpus.module]).gates]
    result = CorpusEvaluation(
        str(folder), corpus.module, engine.provider.name, len(corpus.documents)
    )
    result.scores = {code: GateScore(code) for code in gates}
    if corpus.unlabelled:
        result.warnings.append(
            f"{len(corpus.unlabelled)} file(s) have no labels and were not "
            f"evaluated: {', '.join(corpus.unlabelled[:5])}"
            + (" ..." if len(corpus.unlabelled) > 5 else "")
        )
    unknown: set[str] = set()
    for doc in corpus.documents:
        if progress:
            progress(doc.name)
        report = engine.validate(doc.path, modules=[corpus.module], doc_type=doc.doc_type)
        actual = {r.gate: _actual(r.status) for r in report.gates}
        unknown |= set(doc.expected) - set(actual)
        missing = [g for g in gates if g not in doc.expected]
        if missing:
            result.warnings.append(f"{doc.name}: no label for {', '.join(missing)} (not scored)")
        for code in gates:
            want, got = doc.expected.get(code), actual.get(code)
            if want is None or got is None:
                continue
            s = result.scores[code]
            if got == "indeterminate":
                if want == "fail":
                    s.indeterminate_expected_fail += 1
                else:
                    s.indeterminate_expected_ok += 1
            elif want == "fail":
                if got == "fail":
                    s.tp += 1
                else:
                    s.fn += 1
            elif got == "fail":
                s.fp += 1
            else:
                s.tn += 1
                if got != want:
                    s.applicability_mismatch += 1
            if got != want:
                result.mismatches.append(Mismatch(doc.name, code, want, got))
    if unknown:
        result.warnings.append(
            f"labels name gates that module '{corpus.module}' does not have: "
            f"{', '.join(sorted(unknown))}"
        )
    result.seconds = time.perf_counter() - started
    return result


# --- GDPR-Transparency-200 ----------------------------------------------------------------------


@dataclass
class T200Config:
    path: Path  # the TOML file
    corpus: Path
    module: str
    doc_type: str
    requirements: dict[str, list[str]]


@dataclass
class RequirementScore(Confusion):
    """Positive class: the requirement is disclosed (the annotators' label; all its gates pass).
    Balanced accuracy is symmetric, so it does not depend on that choice."""

    requirement: str
    gates: list[str]
    #: documents where some gate was indeterminate (counted as "not disclosed").
    indeterminate: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requirement": self.requirement,
            "gates": self.gates,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "disclosed": self.tp + self.fn,
            "not_disclosed": self.fp + self.tn,
            "indeterminate": self.indeterminate,
            "balanced_accuracy": _round(self.balanced_accuracy),
            "precision": _round(self.precision),
            "recall": _round(self.recall),
            "specificity": _round(self.specificity),
        }


@dataclass
class T200Evaluation:
    config: str
    corpus: str
    provider: str
    documents: int
    deterministic_only: bool
    scores: dict[str, RequirementScore] = field(default_factory=dict)
    #: document -> requirements predicted wrongly ("+R" false disclosure, "-R" missed one).
    errors: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def macro(self) -> dict[str, float | None]:
        rows = list(self.scores.values())
        return {
            "balanced_accuracy": _round(_mean(s.balanced_accuracy for s in rows)),
            "precision": _round(_mean(s.precision for s in rows)),
            "recall": _round(_mean(s.recall for s in rows)),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "corpus": self.corpus,
            "provider": self.provider,
            "documents": self.documents,
            "deterministic_only": self.deterministic_only,
            "positive_class": "disclosed",
            "indeterminate_counts_as": "not disclosed",
            "requirements": [s.as_dict() for s in self.scores.values()],
            "macro": self.macro(),
            "errors": self.errors,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


def load_t200_config(path: str | Path, root: Path = REPO_ROOT) -> T200Config:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such evaluation file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{p}: not valid TOML: {exc}") from None
    reqs = data.get("requirements")
    if not isinstance(reqs, dict) or not reqs:
        raise UserError(f'{p}: needs a [requirements] table: name = ["GATE-CODE", ...]')
    for name, codes in reqs.items():
        if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
            raise UserError(f"{p}: requirement '{name}' must map to a non-empty list of gate codes")
    corpus = data.get("corpus")
    if not isinstance(corpus, str):
        raise UserError(f'{p}: needs corpus = "path/to/corpus" (relative to the repository root)')
    doc_type = data.get("doc_type", "privacy_notice")
    if doc_type not in DOC_TYPES:
        raise UserError(f"{p}: unknown doc_type '{doc_type}'")
    corpus_path = Path(corpus)
    if not corpus_path.is_absolute():
        corpus_path = (root / corpus_path).resolve()
    return T200Config(
        p,
        corpus_path,
        str(data.get("module", "gdpr")),
        doc_type,
        {k: list(v) for k, v in reqs.items()},
    )


def load_t200_labels(corpus: Path) -> tuple[list[str], dict[str, set[str]]]:
    if not corpus.is_dir():
        raise UserError(
            f"GDPR-T-200 corpus not found at {corpus}: it lives outside the "
            "repository (../shared/corpus/gdpr-t200) and is never copied into it"
        )
    labels = corpus / "labels.json"
    try:
        data = json.loads(labels.read_text(encoding="utf-8"))
        requirements = list(data["requirements"])
        docs = {name: set(reqs) for name, reqs in data["documents"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{labels}: cannot read the corpus labels: {exc}") from None
    return requirements, docs


def evaluate_t200(
    config: T200Config,
    engine: Any,
    *,
    deterministic_only: bool,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    engine_for: Callable[[str], Any] | None = None,
) -> T200Evaluation:
    """Validate each document of the split and compare, per requirement, "all mapped gates
    pass" with the annotators' label. Indeterminate gates count as "not disclosed".
    ``engine_for(name)``: the engine that judges that document (cross-validation gives each
    fold an engine whose trained heads never saw it); default ``engine`` for all."""
    requirements, docs = load_t200_labels(config.corpus)
    unknown_reqs = sorted(set(config.requirements) - set(requirements))
    if unknown_reqs:
        raise UserError(f"{config.path}: requirements not in the corpus: {', '.join(unknown_reqs)}")
    codes = {g.code for g in engine.ruleset([config.module]).gates}
    bad = sorted({c for cs in config.requirements.values() for c in cs} - codes)
    if bad:
        raise UserError(
            f"{config.path}: gate codes not in module '{config.module}': {', '.join(bad)}"
        )
    names = sorted(docs)[:limit] if limit else sorted(docs)
    result = T200Evaluation(
        str(config.path), str(config.corpus), engine.provider.name, len(names), deterministic_only
    )
    result.scores = {
        r: RequirementScore(r, config.requirements[r])
        for r in requirements
        if r in config.requirements
    }
    missing = [r for r in requirements if r not in config.requirements]
    if missing:
        result.notes.append(f"requirements without gates (not measured): {', '.join(missing)}")
    if deterministic_only:
        result.notes.append(
            "semantic checks disabled (provider 'none'): a gate left "
            "indeterminate counts as 'not disclosed'"
        )
    started = time.perf_counter()
    for name in names:
        if progress:
            progress(name)
        judge = engine_for(name) if engine_for is not None else engine
        report = judge.validate(
            config.corpus / name, modules=[config.module], doc_type=config.doc_type
        )
        status = {r.gate: r.status for r in report.gates}
        wrong: list[str] = []
        for req, s in result.scores.items():
            states = [status.get(c) for c in s.gates]
            predicted = all(st == Status.pass_ for st in states)
            if any(st == Status.indeterminate for st in states):
                s.indeterminate += 1
            truth = req in docs[name]
            if predicted and truth:
                s.tp += 1
            elif predicted:
                s.fp += 1
                wrong.append(f"+{req}")
            elif truth:
                s.fn += 1
                wrong.append(f"-{req}")
            else:
                s.tn += 1
        if wrong:
            result.errors[name] = wrong
    result.seconds = time.perf_counter() - started
    return result


# --- rendering ----------------------------------------------------------------------------------


def t200_cross_validated(
    config: T200Config,
    make: Callable[[Any], Any],
    *,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[T200Evaluation, list[dict[str, Any]]]:
    """The full gates with the offline provider, 5-fold cross-validated by document: each
    fold's documents are judged with heads trained on the other four folds only. ``make``
    builds an engine around a provider. Returns the evaluation and the heads' own CV rows."""
    from engine.providers import heads as H
    from engine.providers.offline import OfflineProvider

    H.single_thread_blas()
    plain = OfflineProvider(heads={})
    ts = H.load_training_set(config, plain, progress, limit)
    targets = H.targets_for(make(plain), config)
    cvs = [H.cross_validate(ts, t, plain) for t in targets]
    band = H.pooled_band(cvs)
    fold_of = H.folds_by_document(ts.names)
    engines = [make(OfflineProvider(heads=H.fold_heads(cvs, f, band))) for f in range(H.FOLDS)]
    res = evaluate_t200(
        config,
        engines[0],
        deterministic_only=False,
        limit=limit,
        progress=progress,
        engine_for=lambda name: engines[fold_of[name]],
    )
    res.notes.append(
        f"{H.FOLDS}-fold cross-validation by document: each document judged by heads trained "
        f"without its fold ({sum(c.prefers_head(band) for c in cvs)} of {len(targets)} questions "
        "with a head, where cross-validation prefers one; the rest by similarity)"
    )
    rows = [
        {"gate": cv.target.gate, "requirements": cv.target.requirements, **cv.metrics(band)}
        for cv in cvs
    ]
    return res, rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_corpus(res: CorpusEvaluation, console: Any, show_mismatches: bool = True) -> None:
    from rich.table import Table

    console.print(
        f"{res.path}: module {res.module}, {res.documents} documents, provider "
        f"{res.provider} (positive class: gate fails)",
        soft_wrap=True,
        markup=False,
    )
    table = Table()
    for col in ("gate", "TP", "FP", "FN", "TN", "indet.", "precision", "recall", "F1"):
        # numbers never shrink away in a narrow terminal; only the name column may wrap
        text = col == "gate"
        table.add_column(
            col,
            justify="left" if text else "right",
            no_wrap=not text,
            min_width=None if text else len(col),
        )
    for s in sorted(res.scores.values(), key=lambda s: s.gate):
        table.add_row(
            s.gate,
            str(s.tp),
            str(s.fp),
            str(s.fn),
            str(s.tn),
            str(s.indeterminate),
            _fmt(s.precision),
            _fmt(s.recall),
            _fmt(s.f1),
        )
    m = res.micro
    table.add_section()
    table.add_row(
        "micro",
        str(m.tp),
        str(m.fp),
        str(m.fn),
        str(m.tn),
        str(m.indeterminate),
        _fmt(m.precision),
        _fmt(m.recall),
        _fmt(m.f1),
    )
    mac = res.macro()
    table.add_row(
        "macro", "", "", "", "", "", _fmt(mac["precision"]), _fmt(mac["recall"]), _fmt(mac["f1"])
    )
    console.print(table)
    if m.indeterminate:
        fc_p, fc_r = m.fail_closed()
        console.print(
            f"{m.indeterminate} outcome(s) indeterminate ({m.indeterminate_expected_fail}"
            f" labelled fail, {m.indeterminate_expected_ok} labelled pass/n.a.): not "
            "counted as pass or fail above; if every one were a failure, micro "
            f"precision {_fmt(fc_p)}, recall {_fmt(fc_r)}",
            soft_wrap=True,
        )
    if show_mismatches and res.mismatches:
        console.print(f"{len(res.mismatches)} mismatch(es):")
        for mm in res.mismatches:
            console.print(
                f"  {mm.document}  {mm.gate}: expected {mm.expected}, got {mm.actual}",
                markup=False,
                highlight=False,
            )
    for w in res.warnings:
        console.print(f"warning: {w}", markup=False, highlight=False)
    console.print(f"{res.seconds:.1f} s")


def render_t200(res: T200Evaluation, console: Any) -> None:
    from rich.table import Table

    mode = (
        "deterministic checks only"
        if res.deterministic_only
        else f"semantic provider {res.provider}"
    )
    console.print(
        f"GDPR-T-200 development split: {res.documents} documents, {mode} "
        "(positive class: disclosed)",
        soft_wrap=True,
        markup=False,
    )
    table = Table()
    for col in (
        "requirement",
        "gates",
        "disclosed",
        "TP",
        "FP",
        "FN",
        "TN",
        "indet.",
        "bal. acc.",
        "precision",
        "recall",
    ):
        text = col in ("requirement", "gates")
        table.add_column(
            col,
            justify="left" if text else "right",
            no_wrap=not text,
            min_width=None if text else len(col),
        )
    for s in res.scores.values():
        table.add_row(
            s.requirement,
            " ".join(s.gates),
            str(s.tp + s.fn),
            str(s.tp),
            str(s.fp),
            str(s.fn),
            str(s.tn),
            str(s.indeterminate),
            _fmt(s.balanced_accuracy),
            _fmt(s.precision),
            _fmt(s.recall),
        )
    mac = res.macro()
    table.add_section()
    table.add_row(
        "macro",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        _fmt(mac["balanced_accuracy"]),
        _fmt(mac["precision"]),
        _fmt(mac["recall"]),
    )
    console.print(table)
    for n in res.notes:
        console.print(f"note: {n}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"macro balanced accuracy {_fmt(mac['balanced_accuracy'])} over "
        f"{len(res.scores)} requirements; {res.seconds:.1f} s"
    )
