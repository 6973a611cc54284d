"""Trained heads: a calibrated logistic regression over passage embeddings, one per semantic question."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADS_DIR = Path(__file__).resolve().parents[2] / "data" / "heads"
FORMAT = 1
EMBED_DIM = 384
#: the similarity feature's scale: a cosine spread of ~0.3 becomes ~1.5, so the L2 penalty does
#: not silence it next to 384 embedding weights
SIM_SCALE = 5.0


def question_hash(text: str) -> str:
    """What ties a head to its question: the question's text, whitespace-normalised."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


@dataclass
class Head:
    """A passage classifier: ``sigmoid(a * (x @ w + b) + c)`` is the calibrated probability that
    the passage (and so the document) discloses what the question asks; the document's answer is
    its best passage."""

    gate: str
    question: str
    question_sha: str
    model: str
    weights: Any  # 384 (or 385) floats: a tuple as read from a file, a numpy array once fitted
    bias: float
    platt_a: float
    platt_b: float
    decided_above: float
    decided_below: float
    meta: dict[str, Any] = field(default_factory=dict)
    #: the reference statements whose best cosine with a passage is the head's 385th feature
    statements: tuple[str, ...] = ()

    def passage_probabilities(self, vectors: Any, similarity: Any = None) -> Any:
        """Calibrated probability per passage; ``similarity``: each passage's best cosine with
        :attr:`statements` (needed when the head was trained with that feature)."""
        import numpy as np

        if not isinstance(self.weights, np.ndarray):
            # read as plain floats (numpy is not imported to load heads, only to use one)
            self.weights = np.asarray(self.weights, dtype=np.float32)
        x = vectors
        if len(self.weights) == EMBED_DIM + 1:
            x = np.hstack([vectors, SIM_SCALE * np.asarray(similarity)[:, None]])
        z = self.platt_a * (x @ self.weights + self.bias) + self.platt_b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "gate": self.gate,
            "question": self.question,
            "question_sha": self.question_sha,
            "model": self.model,
            "statements": list(self.statements),
            **self.meta,
            "decided_above": round(self.decided_above, 4),
            "decided_below": round(self.decided_below, 4),
            "platt": [round(self.platt_a, 6), round(self.platt_b, 6)],
            "bias": round(self.bias, 6),
            "weights": [round(float(v), 6) for v in self.weights],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Head:
        known = {
            "format",
            "gate",
            "question",
            "question_sha",
            "model",
            "decided_above",
            "decided_below",
            "platt",
            "bias",
            "weights",
            "statements",
        }
        # plain floats: a validation builds the provider (its identity is in the cache key)
        # without necessarily asking it anything, and numpy costs ~120 modules to import
        weights = tuple(float(v) for v in d["weights"])
        statements = tuple(str(t) for t in d.get("statements", ()))
        if len(weights) not in (EMBED_DIM, EMBED_DIM + 1):
            raise ValueError(
                f"expected {EMBED_DIM} or {EMBED_DIM + 1} weights, got ({len(weights)},)"
            )
        if len(weights) == EMBED_DIM + 1 and not statements:
            raise ValueError("a head with a similarity feature needs its statements")
        return cls(
            gate=str(d["gate"]),
            question=str(d["question"]),
            question_sha=str(d["question_sha"]),
            model=str(d["model"]),
            weights=weights,
            bias=float(d["bias"]),
            platt_a=float(d["platt"][0]),
            platt_b=float(d["platt"][1]),
            decided_above=float(d["decided_above"]),
            decided_below=float(d["decided_below"]),
            meta={k: v for k, v in d.items() if k not in known},
            statements=statements,
        )


def read_head_files(directory: Path | None = None) -> tuple[list[Head], list[str]]:
    """Every head under ``directory`` and a message for each file that could not be read."""
    directory = directory if directory is not None else HEADS_DIR
    heads: list[Head] = []
    problems: list[str] = []
    if not directory.is_dir():
        return heads, problems
    for path in sorted(directory.glob("*.json")):
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("format") != FORMAT:
                raise ValueError(f"unknown format {d.get('format')!r}")
            heads.append(Head.from_dict(d))
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    return heads, problems


def load_heads(directory: Path | None = None, model: str | None = None) -> dict[str, Head]:
    """Heads by question hash, for the provider's model. A head is found by its question's
    current text: a gate whose question changed finds none (the head is stale) and falls back to
    similarity; ``clearance lint`` says so."""
    if model is None:
        from engine.providers.offline import MODEL_ID

        model = MODEL_ID
    heads, _ = read_head_files(directory)
    return {h.question_sha: h for h in heads if h.model == model}


def heads_fingerprint(heads: dict[str, Head]) -> str:
    """Short identity of a set of heads (part of the provider's cache identity)."""
    if not heads:
        return "noheads"
    blob = json.dumps(
        sorted(
            (h.question_sha, h.meta.get("training_set_sha256", ""), h.bias) for h in heads.values()
        )
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def stale_heads(gates: list[Any], directory: Path | None = None) -> list[str]:
    """Warnings for heads whose gate's semantic question no longer matches the text they were
    trained for (or whose gate is gone): those questions are answered by similarity."""
    heads, problems = read_head_files(directory)
    by_code = {g.code: g for g in gates}
    out = [f"unreadable head {p}" for p in problems]
    for h in heads:
        g = by_code.get(h.gate)
        if g is None:
            continue  # a module not loaded in this run
        texts = [n.check.question.text for n in g.semantic_nodes()]
        if not any(question_hash(t) == h.question_sha for t in texts):
            out.append(
                f"{h.gate}: trained head is stale (the gate's semantic question changed since "
                "`clearance train`); the question is answered by similarity until it is retrained"
            )
    return out


# --- training -------------------------------------------------------------------------------------
#
# GDPR-T-200 labels whole documents, not passages, so a head is trained as a multiple-instance
# problem: every passage of a document that does not disclose the requirement is a negative; in a
# document that does, the passages most like the question's `like` statements start as the
# positives (the statements themselves are positives too), and two rounds re-pick them by the
# head's own score. The document's score is its best passage's. Everything that is fitted -- the
# regression, the Platt scaling, the decision threshold and the unsure band -- is fitted on
# training folds only; cross-validation splits by document.

SEED = 0
FOLDS = 5
L2 = 1.0  # ridge on the weights (not the bias), in units of the summed sample weight
TOP_K = 2  # positives re-picked per disclosing document
NEG_PER_DOC = 16  # negatives sampled per document (all passages of short documents)
ROUNDS = 2
#: a decision is "unsure" when its calibrated probability is within this of the threshold:
#: the widest band whose held-out decisions (outer CV, pooled over the heads) are right less
#: than 3 times in 4 -- the rule the similarity band follows too (see band_width)
PROB_BAND = 0.1
BAND_INSIDE_ACCURACY = 0.75
#: how much better (banded balanced accuracy, CV) a head must do than similarity to ship: about
#: one document of a requirement with 50 disclosing documents; smaller gaps are noise
PREFER_MARGIN = 0.01


def band_width(distances: Any, right: Any, step: float, limit: float) -> float:
    """The widest ``w`` (on a grid of ``step`` up to ``limit``) such that the held-out decisions
    closer than ``w`` to their threshold are right less than ``BAND_INSIDE_ACCURACY`` of the
    time: an answer that close is closer to a coin than to a finding."""
    import numpy as np

    d, r = np.asarray(distances, dtype=float), np.asarray(right, dtype=bool)
    best = 0.0
    for k in range(1, int(round(limit / step)) + 1):
        w = round(k * step, 6)
        inside = d < w
        if inside.any() and r[inside].mean() < BAND_INSIDE_ACCURACY:
            best = w
    return best


def single_thread_blas() -> bool:
    """Ask numpy's OpenBLAS for one thread (best effort, Linux): the matrices here are small,
    and on a busy 2-core machine BLAS threads cost 5-10x more in hand-offs than they gain.
    threadpoolctl does this in general; it is not a dependency, and this is its one call."""
    import ctypes

    import numpy  # noqa: F401 - loads the library whose thread count is set

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            libs = sorted({ln.split()[-1] for ln in maps if "openblas" in ln.lower()})
        for path in libs:
            lib = ctypes.CDLL(path)
            for name in (
                "scipy_openblas_set_num_threads64_",
                "openblas_set_num_threads64_",
                "openblas_set_num_threads",
            ):
                if hasattr(lib, name):
                    getattr(lib, name)(1)
                    return True
    except OSError:
        pass
    return False


def fit_logistic(
    x: Any, y: Any, w: Any, l2: float | None = None, iters: int = 12, start: Any = None
) -> tuple[Any, float]:
    """Weighted L2-regularised logistic regression by Newton's method (385 unknowns: exact and
    deterministic, no solver dependency). Returns weights and bias."""
    import numpy as np

    l2 = L2 if l2 is None else l2
    n, d = x.shape
    # float32 for the Gram matrix (the cost), float64 for the solve (the accuracy)
    xb = np.hstack([x, np.ones((n, 1), dtype=x.dtype)]).astype(np.float32)
    beta = np.zeros(d + 1) if start is None else np.asarray(start, dtype=np.float64).copy()
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        z = np.clip(xb @ beta.astype(np.float32), -30, 30).astype(np.float64)
        p = 1.0 / (1.0 + np.exp(-z))
        g = (xb.T @ (w * (p - y)).astype(np.float32)).astype(np.float64) + reg * beta
        s = (w * p * (1 - p)).astype(np.float32)
        h = (xb * s[:, None]).T @ xb
        step = np.linalg.solve(h.astype(np.float64) + np.diag(reg + 1e-9), g)
        beta -= step
        if np.abs(step).max() < 1e-3:
            break
    return beta[:-1].astype(np.float32), float(beta[-1])


def fit_platt(scores: Any, y: Any) -> tuple[float, float]:
    """Platt scaling with the usual target smoothing (Platt 1999), balanced by class."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    w = np.where(y > 0, 0.5 / max(n_pos, 1), 0.5 / max(n_neg, 1)) * len(y)
    beta, bias = fit_logistic(np.asarray(scores, dtype=np.float64)[:, None], t, w, l2=1e-6)
    return float(beta[0]), bias


@dataclass
class DocVectors:
    """One training document: its passage vectors and whether it discloses the target."""

    name: str
    vectors: Any  # (n, 384)
    spans: list[tuple[int, int]]


def folds_by_document(names: list[str], k: int = FOLDS, seed: int = SEED) -> dict[str, int]:
    """A fixed fold per document: sorted names, shuffled by ``seed`` (never by passage)."""
    import numpy as np

    order = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(order))
    return {order[j]: int(i % k) for i, j in enumerate(perm)}


def _train_one(
    docs: list[DocVectors], labels: list[bool], seeds: Any, statements: Any, rng_seed: int
) -> tuple[Any, float]:
    """The multiple-instance fit described above; returns (weights, bias)."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    neg_rows = []
    for d, y in zip(docs, labels, strict=True):
        if not y and len(d.vectors):
            n = len(d.vectors)
            pick = (
                rng.choice(n, size=min(n, NEG_PER_DOC), replace=False)
                if n > NEG_PER_DOC
                else np.arange(n)
            )
            neg_rows.append(d.vectors[np.sort(pick)])
    negatives = np.vstack(neg_rows) if neg_rows else np.zeros((0, statements.shape[1]), np.float32)
    score_of = [seeds(d.vectors) for d in docs]
    weights: Any = None  # the first round starts from scratch, later ones from the last fit
    bias = 0.0
    for _ in range(ROUNDS):
        pos_rows, easy_neg = [statements], []
        for d, y, s in zip(docs, labels, score_of, strict=True):
            if not y or not len(d.vectors):
                continue
            order = np.argsort(-s, kind="stable")
            pos_rows.append(d.vectors[order[:TOP_K]])
            # the least like it in a disclosing document: a few clean negatives from there too
            tail = order[len(order) // 2 :]
            if len(tail):
                easy_neg.append(d.vectors[tail[: max(1, NEG_PER_DOC // 8)]])
        pos = np.vstack(pos_rows)
        neg = np.vstack([negatives, *easy_neg]) if easy_neg else negatives
        x = np.vstack([pos, neg])
        target = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
        # balanced classes, total weight = number of documents (keeps L2 on one scale)
        w = np.where(target > 0, 0.5 / max(len(pos), 1), 0.5 / max(len(neg), 1)) * len(docs)
        start = None if weights is None else np.append(weights, bias)
        weights, bias = fit_logistic(x, target, w, start=start)
        score_of = [d.vectors @ weights + bias if len(d.vectors) else np.zeros(0) for d in docs]
    return weights, bias


def doc_scores(docs: list[DocVectors], weights: Any, bias: float) -> Any:
    import numpy as np

    return np.array(
        [float((d.vectors @ weights + bias).max()) if len(d.vectors) else -30.0 for d in docs]
    )


def best_cut(p: Any, y: Any) -> float:
    """The probability cut maximising balanced accuracy (midway between adjacent values)."""
    import numpy as np

    y = np.asarray(y, dtype=bool)
    vals = np.unique(p)
    cuts = np.concatenate([[vals[0] - 1e-6], (vals[1:] + vals[:-1]) / 2, [vals[-1] + 1e-6]])
    best, best_ba = 0.5, -1.0
    for c in cuts:
        pred = p >= c
        tpr = (pred & y).sum() / max(y.sum(), 1)
        tnr = (~pred & ~y).sum() / max((~y).sum(), 1)
        ba = (tpr + tnr) / 2
        if ba > best_ba + 1e-12 or (abs(ba - best_ba) <= 1e-12 and abs(c - 0.5) < abs(best - 0.5)):
            best, best_ba = float(c), ba
    return best


@dataclass
class Fitted:
    weights: Any
    bias: float
    platt: tuple[float, float]
    threshold: float


def fit_calibrated(
    docs: list[DocVectors],
    labels: list[bool],
    seeds: Any,
    statements: Any,
    seed: int,
    inner_folds: int = 3,
) -> Fitted:
    """Regression on all of ``docs``; Platt scaling and the threshold from inner
    cross-validation over the same documents (so calibration never sees its own training fit)."""
    import numpy as np

    y = np.asarray(labels, dtype=bool)
    inner = folds_by_document([d.name for d in docs], inner_folds, seed + 1)
    oof = np.zeros(len(docs))
    for f in range(inner_folds):
        tr = [i for i, d in enumerate(docs) if inner[d.name] != f]
        te = [i for i, d in enumerate(docs) if inner[d.name] == f]
        if not te or y[tr].all() or not y[tr].any():
            continue
        w, b = _train_one([docs[i] for i in tr], [labels[i] for i in tr], seeds, statements, seed)
        oof[te] = doc_scores([docs[i] for i in te], w, b)
    a, c = fit_platt(oof, y)
    prob = 1 / (1 + np.exp(-np.clip(a * oof + c, -30, 30)))
    threshold = best_cut(prob, y)
    w, b = _train_one(docs, labels, seeds, statements, seed)
    return Fitted(w, b, (a, c), threshold)


def probabilities(fitted: Fitted, docs: list[DocVectors]) -> Any:
    import numpy as np

    s = doc_scores(docs, fitted.weights, fitted.bias)
    a, c = fitted.platt
    return 1 / (1 + np.exp(-np.clip(a * s + c, -30, 30)))


def rates(pred: Any, y: Any) -> dict[str, float | None]:
    """Balanced accuracy, precision, recall (positive class: disclosed)."""
    import numpy as np

    pred, y = np.asarray(pred, dtype=bool), np.asarray(y, dtype=bool)
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn, tn = int((~pred & y).sum()), int((~pred & ~y).sum())
    rec = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None
    ba = None if rec is None or spec is None else (rec + spec) / 2
    return {
        "balanced_accuracy": None if ba is None else round(ba, 4),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": None if rec is None else round(rec, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


# --- the corpus, and `clearance train` ------------------------------------------------------------


@dataclass
class Target:
    """One head to train: a gate's semantic question and the requirements it must find."""

    gate: str
    question: str
    like: tuple[str, ...]
    requirements: list[str]


@dataclass
class TrainingSet:
    names: list[str]
    docs: dict[str, DocVectors]
    disclosed: dict[str, set[str]]
    sha256: str


def targets_for(engine: Any, config: Any) -> list[Target]:
    """The gates of the evaluation file that ask a semantic question, with their requirements
    (a gate mapped to two requirements must find both)."""
    by_gate: dict[str, list[str]] = {}
    for req, codes in config.requirements.items():
        for c in codes:
            by_gate.setdefault(c, []).append(req)
    out: list[Target] = []
    for g in engine.ruleset([config.module]).gates:
        if g.code not in by_gate:
            continue
        nodes = list(g.semantic_nodes())
        if not nodes:
            continue  # decided by wording checks only: nothing to train
        q = nodes[0].check.question
        out.append(Target(g.code, q.text, tuple(q.like), by_gate[g.code]))
    return out


def load_training_set(
    config: Any, provider: Any, progress: Any = None, limit: int | None = None
) -> TrainingSet:
    """Embed every corpus document (the provider's disk cache makes a second run cheap)."""
    from engine.document import Document
    from engine.evaluation.gates import load_t200_labels
    from engine.providers.offline import MODEL_ID

    _, labels = load_t200_labels(config.corpus)
    names = sorted(labels)[:limit] if limit else sorted(labels)
    h = hashlib.sha256(MODEL_ID.encode())
    docs: dict[str, DocVectors] = {}
    for name in names:
        if progress:
            progress(name)
        text = (config.corpus / name).read_text(encoding="utf-8")
        doc = Document(text, name=name, media_type="text/markdown")
        idx = provider.index(doc)
        docs[name] = DocVectors(name, idx.vectors, idx.spans)
        h.update(f"{name}\0{doc.sha256}\0{','.join(sorted(labels[name]))}\n".encode())
    return TrainingSet(names, docs, {n: labels[n] for n in names}, h.hexdigest())


def statements_of(target: Target) -> list[str]:
    return list(target.like) or [target.question]


def _augment(
    ts: TrainingSet, provider: Any, target: Target
) -> tuple[dict[str, DocVectors], Any, Any]:
    """Each passage's embedding plus its best similarity to the question's statements (the
    similarity judge's own score, as a feature the regression may weigh), the statements as
    positives, and the seed scorer that picks the first positives (that similarity)."""
    import numpy as np

    vecs = provider._statement_vectors(statements_of(target))
    docs: dict[str, DocVectors] = {}
    for n in ts.names:
        d = ts.docs[n]
        sim = (d.vectors @ vecs.T).max(axis=1) if len(d.vectors) else np.zeros(0, np.float32)
        x = np.hstack([d.vectors, SIM_SCALE * sim[:, None]]).astype(np.float32)
        docs[n] = DocVectors(n, x, d.spans)
    pos = np.hstack([vecs, np.full((len(vecs), 1), SIM_SCALE, np.float32)]).astype(np.float32)

    def seeds(x: Any) -> Any:
        return x[:, -1]

    return docs, seeds, pos


@dataclass
class CrossValidation:
    target: Target
    oof: Any  # out-of-fold calibrated probability per document
    thresholds: Any  # the threshold each document's fold decided with
    labels: Any
    fold_fits: list[Fitted]
    #: the similarity judge on the same folds: best cosine per document, fold thresholds
    sim_oof: Any = None
    sim_thresholds: Any = None

    def metrics(self, band: tuple[float, float] = (PROB_BAND, PROB_BAND)) -> dict[str, Any]:
        """Head and similarity, cross-validated on the same folds; ``band`` = (below, above)."""

        said = self.oof >= self.thresholds
        decided = rates(said, self.labels)
        d = self.oof - self.thresholds
        unsure = (d < band[1]) & (d >= -band[0])
        # the engine counts an unsure answer as "not disclosed" (INDETERMINATE gate)
        banded = rates(said & ~unsure, self.labels)
        right = said == self.labels
        out: dict[str, Any] = {
            "documents": int(len(self.labels)),
            "disclosed": int(self.labels.sum()),
            "at_threshold": decided,
            "with_band": {**banded, "unsure": int(unsure.sum())},
            "accuracy_outside_band": round(float(right[~unsure].mean()), 4)
            if (~unsure).any()
            else None,
            "accuracy_inside_band": round(float(right[unsure].mean()), 4) if unsure.any() else None,
        }
        if self.sim_oof is not None:
            from engine.providers.offline import load_band

            sim_said = self.sim_oof >= self.sim_thresholds
            sd = self.sim_oof - self.sim_thresholds
            sb = load_band()
            sim_unsure = (sd < sb.above) & (sd >= -sb.below)
            sim = rates(sim_said, self.labels)
            sim_banded = rates(sim_said & ~sim_unsure, self.labels)
            out["similarity_at_threshold"] = sim
            out["similarity_with_band"] = {**sim_banded, "unsure": int(sim_unsure.sum())}
            # compared as the engine delivers them: each with its unsure band ("not disclosed")
            head_ba = banded["balanced_accuracy"] or 0.0
            sim_ba = sim_banded["balanced_accuracy"] or 0.0
            # a tie goes to the simpler judge: a head must win by PREFER_MARGIN
            out["prefer"] = "head" if head_ba >= sim_ba + PREFER_MARGIN else "similarity"
        return out

    def prefers_head(self, band: tuple[float, float]) -> bool:
        return self.metrics(band).get("prefer", "head") == "head"


def cross_validate(
    ts: TrainingSet, target: Target, provider: Any, folds: int = FOLDS, seed: int = SEED
) -> CrossValidation:
    """5-fold cross-validation by document: each fold's head (regression, Platt, threshold) is
    fitted on the other folds only; the similarity judge's threshold likewise."""
    import numpy as np

    docs, seeds, statements = _augment(ts, provider, target)
    fold_of = folds_by_document(ts.names, folds, seed)
    labels = np.array([all(r in ts.disclosed[n] for r in target.requirements) for n in ts.names])
    sim = np.array(
        [
            float(seeds(docs[n].vectors).max()) / SIM_SCALE if len(docs[n].vectors) else 0.0
            for n in ts.names
        ]
    )
    oof = np.zeros(len(ts.names))
    thr = np.zeros(len(ts.names))
    sim_thr = np.zeros(len(ts.names))
    fits: list[Fitted] = []
    for f in range(folds):
        tr = [i for i, n in enumerate(ts.names) if fold_of[n] != f]
        te = [i for i, n in enumerate(ts.names) if fold_of[n] == f]
        fit = fit_calibrated(
            [docs[ts.names[i]] for i in tr], [bool(labels[i]) for i in tr], seeds, statements, seed
        )
        fits.append(fit)
        oof[te] = probabilities(fit, [docs[ts.names[i]] for i in te])
        thr[te] = fit.threshold
        sim_thr[te] = best_cut(sim[tr], labels[tr])
    return CrossValidation(target, oof, thr, labels, fits, sim, sim_thr)


def pooled_band(cvs: list[CrossValidation]) -> tuple[float, float]:
    """(below, above): the probability band of every head, by :func:`band_width` over the
    pooled out-of-fold decisions of all the heads trained."""
    import numpy as np

    if not cvs:
        return PROB_BAND, PROB_BAND
    d = np.concatenate([c.oof - c.thresholds for c in cvs])
    r = np.concatenate([(c.oof >= c.thresholds) == c.labels for c in cvs])
    above = band_width(d[d >= 0], r[d >= 0], step=0.01, limit=0.3)
    below = band_width(-d[d < 0], r[d < 0], step=0.01, limit=0.3)
    return below, above


def make_head(target: Target, fit: Fitted, meta: dict[str, Any], band: tuple[float, float]) -> Head:
    from engine.providers.offline import MODEL_ID

    return Head(
        gate=target.gate,
        question=target.question,
        question_sha=question_hash(target.question),
        model=MODEL_ID,
        weights=fit.weights,
        bias=fit.bias,
        platt_a=fit.platt[0],
        platt_b=fit.platt[1],
        decided_above=min(1.0, fit.threshold + band[1]),
        decided_below=max(0.0, fit.threshold - band[0]),
        meta=meta,
        statements=tuple(statements_of(target)),
    )


def final_head(
    ts: TrainingSet, cv: CrossValidation, provider: Any, band: tuple[float, float], seed: int = SEED
) -> Head:
    """The shipped head: fitted on every document, carrying its cross-validated metrics."""
    target = cv.target
    docs, seeds, statements = _augment(ts, provider, target)
    fit = fit_calibrated(
        [docs[n] for n in ts.names], [bool(v) for v in cv.labels], seeds, statements, seed
    )
    meta = {
        "requirements": target.requirements,
        "training_set": "GDPR-Transparency-200 development split",
        "training_set_sha256": ts.sha256,
        "seed": seed,
        "hyperparameters": {
            "l2": L2,
            "top_k": TOP_K,
            "negatives_per_document": NEG_PER_DOC,
            "rounds": ROUNDS,
            "folds": FOLDS,
            "inner_folds": 3,
            "similarity_scale": SIM_SCALE,
            "band_below": band[0],
            "band_above": band[1],
        },
        "threshold": round(fit.threshold, 4),
        "cv": cv.metrics(band),
        "trained_by": "clearance train",
    }
    return make_head(target, fit, meta, band)


def fold_heads(cvs: list[CrossValidation], fold: int, band: tuple[float, float]) -> dict[str, Head]:
    """The heads fold ``fold`` is judged with: trained without its documents, and only for the
    questions where cross-validation prefers a head to similarity."""
    out: dict[str, Head] = {}
    for cv in cvs:
        if not cv.prefers_head(band):
            continue
        h = make_head(cv.target, cv.fold_fits[fold], {"fold": fold}, band)
        out[h.question_sha] = h
    return out


def write_head(head: Head, directory: Path | None = None) -> Path:
    directory = directory if directory is not None else HEADS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{head.gate}.json"
    path.write_text(
        json.dumps(head.as_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path
