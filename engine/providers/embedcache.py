"""On-disk passage-embedding cache: one float32 vector per (model id, passage hash), never the text."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import diskcache

#: embeddings are small (384 float32 = 1.5 KB); 128 MB holds ~80,000 passages (~800 policies)
DEFAULT_SIZE_LIMIT = 128 * 1024 * 1024


def passage_key(model_id: str, text: str) -> str:
    """The cache key: the model and a hash of the exact text embedded (heading context
    included), so the raw passage is never stored and an edited passage is a new key."""
    return f"emb:{model_id}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def embedding_cache_dir() -> Path:
    """Beside the report cache (``CLEARANCE_CACHE_DIR`` / ``$CLEARANCE_HOME/cache`` / XDG)."""
    from engine.cache import cache_dir

    return cache_dir() / "embeddings"


class EmbeddingCache:
    """Vectors by key in a ``diskcache.Cache``; any storage failure switches it off (the provider
    then embeds everything, as without a cache) and leaves one message in :attr:`warnings`."""

    def __init__(
        self, directory: Path | str | None = None, size_limit: int = DEFAULT_SIZE_LIMIT
    ) -> None:
        self.directory = Path(directory) if directory is not None else embedding_cache_dir()
        self.warnings: list[str] = []
        self._cache: diskcache.Cache | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(
                str(self.directory),
                timeout=5.0,
                size_limit=size_limit,
                eviction_policy="least-recently-used",
                disk_min_file_size=1 << 20,  # every vector lives in the SQLite file
            )
        except Exception as exc:  # noqa: BLE001 - a broken cache must not fail a validation
            self._disable(exc)

    @property
    def enabled(self) -> bool:
        return self._cache is not None

    def _disable(self, exc: BaseException) -> None:
        if not self.warnings:
            self.warnings.append(
                f"embedding cache disabled ({self.directory}): {type(exc).__name__}: {exc}"
            )
        cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):
                cache.close()

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """The vectors (raw float32 bytes) found for ``keys``."""
        if self._cache is None or not keys:
            return {}
        out: dict[str, bytes] = {}
        try:
            for k in keys:
                v = self._cache.get(k, default=None, retry=True)
                if isinstance(v, bytes):
                    out[k] = v
        except Exception as exc:  # noqa: BLE001
            self._disable(exc)
        return out

    def set_many(self, items: dict[str, bytes]) -> None:
        if self._cache is None or not items:
            return
        try:
            with self._cache.transact(retry=True):  # one SQLite transaction for a whole batch
                for k, v in items.items():
                    self._cache.set(k, v, retry=True)
        except Exception as exc:  # noqa: BLE001
            self._disable(exc)

    def __len__(self) -> int:
        if self._cache is None:
            return 0
        try:
            return len(self._cache)
        except Exception:  # noqa: BLE001
            return 0

    def close(self) -> None:
        if self._cache is not None:
            with contextlib.suppress(Exception):
                self._cache.close()


def default_cache() -> Any:
    """The embedding cache the offline provider uses, or None when caching is switched off."""
    from engine.cache import cache_disabled

    if cache_disabled() or os.environ.get("CLEARANCE_NO_EMBEDDING_CACHE"):
        return None
    return EmbeddingCache()
