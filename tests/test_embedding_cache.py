"""Passage embeddings: each passage once, cached on disk by model and hash, bounded by the time limit."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine.document import Document
from engine.providers import offline
from engine.providers.embedcache import EmbeddingCache, embedding_cache_dir
from engine.providers.offline import OfflineProvider
from gates.base import Question

needs_model = pytest.mark.skipif(
    offline.load_embedder()[0] is None, reason="offline model packages are not installed"
)

PARAGRAPHS = [
    "We collect your name and email address when you create an account.",
    "We use your email address to send you the newsletter you asked for.",
    "We keep your personal data for two years after you close your account.",
    "You may ask us for a copy of the personal data we hold about you.",
    "You may complain to the Information Commissioner's Office.",
]


def notice(paragraphs: list[str]) -> Document:
    body = "\n\n".join(paragraphs)
    return Document(f"# Privacy notice\n\n{body}\n", media_type="text/markdown")


@needs_model
def test_an_edited_paragraph_is_the_only_passage_embedded_again(tmp_path):
    embedder, _ = offline.load_embedder()
    cache = EmbeddingCache(tmp_path / "emb")
    first = OfflineProvider(heads={}, embedding_cache=cache)
    before = embedder.passages_embedded
    idx1 = first.index(notice(PARAGRAPHS))
    assert embedder.passages_embedded - before == len(PARAGRAPHS) == len(idx1.passages)
    assert len(cache) == len(PARAGRAPHS)

    edited = list(PARAGRAPHS)
    edited[2] = "We keep your personal data for three years after you close your account."
    # a new provider (a new process, as far as memory goes): only the disk cache carries over
    second = OfflineProvider(heads={}, embedding_cache=cache)
    before = embedder.passages_embedded
    idx2 = second.index(notice(edited))
    assert embedder.passages_embedded - before == 1
    for i in (0, 1, 3, 4):
        assert np.array_equal(idx1.vectors[i], idx2.vectors[i])
    assert not np.array_equal(idx1.vectors[2], idx2.vectors[2])
    # and the same document again embeds nothing
    third = OfflineProvider(heads={}, embedding_cache=cache)
    before = embedder.passages_embedded
    third.index(notice(edited))
    assert embedder.passages_embedded == before


@needs_model
def test_the_cache_stores_vectors_never_text(tmp_path):
    cache = EmbeddingCache(tmp_path / "emb")
    OfflineProvider(heads={}, embedding_cache=cache).index(notice(PARAGRAPHS))
    cache.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "emb").iterdir() if p.is_file())
    assert b"Information Commissioner" not in blob and b"newsletter" not in blob


def test_cache_lives_under_the_clearance_home(clearance_home, monkeypatch):
    assert embedding_cache_dir() == clearance_home / "cache" / "embeddings"
    monkeypatch.setenv("CLEARANCE_NO_CACHE", "1")
    assert OfflineProvider(heads={}).embedding_cache is None


def test_a_broken_cache_directory_is_no_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = EmbeddingCache(blocker / "emb")
    assert not cache.enabled and cache.warnings
    assert cache.get_many(["k"]) == {}
    cache.set_many({"k": b"x"})  # no error


@needs_model
def test_headings_travel_with_their_passages_and_are_not_passages_themselves():
    doc = Document("# Retention\n\nWe delete it after a year.\n", media_type="text/markdown")
    idx = OfflineProvider(heads={}, embedding_cache=None).index(doc)
    assert [doc.text[p.start : p.end] for p in idx.passages] == ["We delete it after a year."]
    assert idx.passages[0].heading == "Retention"


@needs_model
def test_the_time_limit_stops_embedding_and_answers_unclear():
    q = Question(
        "Does the notice say how long data is kept?",
        like=("We keep your personal data for a defined period.",),
    )
    provider = OfflineProvider(heads={}, embedding_cache=None, timeout_s=0.0)
    doc = notice([p + " (time-limit test)" for p in PARAGRAPHS])
    answer = asyncio.run(provider.answer(doc, [q])).answers[q.id]
    assert answer.verdict == "unclear"
    assert "time limit" in answer.rationale and "0 of 5 passages" in answer.rationale
    # a partial index is not remembered: a later call with time to spare embeds it all
    provider.timeout_s = 60.0
    again = asyncio.run(provider.answer(doc, [q])).answers[q.id]
    assert "time limit" not in again.rationale
    assert provider.index(doc).complete
