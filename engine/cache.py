"""Result cache of reports and semantic answers: disk, or Redis (cache_redis); broken = no cache."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import diskcache

from engine.providers.base import Answer, Evidence
from engine.report import Report, Status

DEFAULT_SIZE_LIMIT = 256 * 1024 * 1024  # bytes
DEFAULT_TTL = 30 * 24 * 3600  # seconds; answers from a model should not outlive a month

# Key prefixes keep the two levels apart in one store; the keys themselves are hashes already.
_REPORT = "report:"
_ANSWER = "answer:"
_DECIDED = ("yes", "no")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        from engine.errors import UserError

        raise UserError(f"{name} must be a whole number, got '{raw}'") from None


def is_decided(report: Report) -> bool:
    """Whether a report may be cached: no INDETERMINATE gate and no unclear semantic answer.
    An undecided report records a moment (a provider outage, a timeout), not the document: a
    cached copy would keep serving the outage after the provider is back."""
    return not any(
        g.status == Status.indeterminate or any(a.verdict == "unclear" for a in g.semantic)
        for g in report.gates
    )


def cache_dir() -> Path:
    """``CLEARANCE_CACHE_DIR``, else ``$CLEARANCE_HOME/cache``, else the user cache directory."""
    if explicit := os.environ.get("CLEARANCE_CACHE_DIR"):
        return Path(explicit).expanduser()
    if home := os.environ.get("CLEARANCE_HOME"):
        return Path(home).expanduser() / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "clearance"


def cache_size_limit() -> int:
    return _env_int("CLEARANCE_CACHE_SIZE", DEFAULT_SIZE_LIMIT)


def cache_ttl() -> int | None:
    """Seconds an entry lives; ``0`` means entries never expire (only evicted by size)."""
    ttl = _env_int("CLEARANCE_CACHE_TTL", DEFAULT_TTL)
    return ttl if ttl > 0 else None


def cache_disabled() -> bool:
    return _env_flag("CLEARANCE_NO_CACHE")


@dataclass(frozen=True)
class CacheStats:
    directory: str
    entries: int
    size_bytes: int
    size_limit: int
    hits: int
    misses: int
    policy: str | None = None  # Redis: the server's maxmemory-policy (what goes when full)

    @property
    def hit_rate(self) -> float | None:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else None


class JsonCache:
    """The :class:`engine.hooks.ResultCache` rules shared by every store: values are JSON text
    (never pickles), so a cache written by another version can at worst miss; an undecided
    report or answer is never stored, and one found stored is never served. A store supplies
    ``_get``, ``_set`` and ``_drop`` and degrades by itself (see :class:`DiskCache`)."""

    directory: Path | str  # where the entries are: a folder, or a Redis URL (no password)

    def _get(self, key: str) -> Any:
        raise NotImplementedError

    def _set(self, key: str, value: str) -> None:
        raise NotImplementedError

    def _drop(self, key: str) -> None:
        raise NotImplementedError

    def stats(self) -> CacheStats:
        raise NotImplementedError

    def clear(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- ResultCache -----------------------------------------------------------------------

    def get_report(self, key: str) -> Report | None:
        raw = self._get(_REPORT + key)
        if raw is None:
            return None
        try:
            report = Report.model_validate_json(raw)
        except ValueError:
            # Written by an older report schema or damaged: a miss, and make room for a fresh one.
            self._drop(_REPORT + key)
            return None
        if not is_decided(report):
            self._drop(_REPORT + key)  # stored by a writer that broke the rule: never served
            return None
        return report.model_copy(update={"cache_hit": True})

    def put_report(self, key: str, report: Report) -> None:
        if not is_decided(report):
            return  # never cache what was not decided (see is_decided)
        self._set(_REPORT + key, report.model_dump_json())

    def get_answer(self, key: str) -> Answer | None:
        raw = self._get(_ANSWER + key)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if data.get("verdict") not in _DECIDED or not data.pop("by", None):
                raise ValueError("undecided, or no provider recorded")  # written before both rules
            evidence = tuple(Evidence(**e) for e in data.pop("evidence", ()))
            return Answer(**{**data, "evidence": evidence, "cached": True})
        except (ValueError, TypeError, AttributeError):
            self._drop(_ANSWER + key)
            return None

    def put_answer(self, key: str, answer: Answer, by: str = "") -> None:
        """Store a decided answer with ``by``, the identity of the provider and model that gave
        it (``name:model:prompt_version``); an unclear answer, or one of unknown origin, is not
        stored."""
        if answer.verdict not in _DECIDED or not by:
            return
        data = asdict(answer)
        data.pop("cached", None)
        data["by"] = by
        self._set(_ANSWER + key, json.dumps(data, separators=(",", ":")))

    def answer_provenance(self, key: str) -> str | None:
        """Which provider and model gave the cached answer under ``key`` (None: no entry)."""
        raw = self._get(_ANSWER + key)
        try:
            return json.loads(raw).get("by") if raw is not None else None
        except (ValueError, AttributeError):
            return None


class DiskCache(JsonCache):
    """:class:`engine.hooks.ResultCache` over a ``diskcache.Cache`` directory.

    Values are stored as JSON text (never pickles), so a cache written by another version can at
    worst miss, not execute anything. Any storage failure switches the cache off for the rest of
    this object's life and leaves one message in :attr:`warnings`; validations carry on uncached.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        size_limit: int | None = None,
        ttl: float | None | bool = True,
        timeout: float = 5.0,
    ) -> None:
        self.directory: Path = Path(directory) if directory is not None else cache_dir()
        self.size_limit = size_limit if size_limit is not None else DEFAULT_SIZE_LIMIT
        self.ttl: float | None = None
        self.warnings: list[str] = []
        self._cache: diskcache.Cache | None = None
        try:
            # A bad setting disables the cache like a bad disk does: it must not stop validation.
            if size_limit is None:
                self.size_limit = cache_size_limit()
            # ttl=True means "from the environment"; None (or 0) means never expire.
            self.ttl = cache_ttl() if ttl is True else (ttl or None)
            self.directory.mkdir(parents=True, exist_ok=True)
            self._cache = diskcache.Cache(
                str(self.directory),
                timeout=timeout,
                size_limit=self.size_limit,
                eviction_policy="least-recently-stored",
                statistics=1,  # diskcache keeps hit/miss counters in its own database
                # values up to 1 MiB (a report of 82 gates is ~50 KB) live in its SQLite file,
                # not in a file each: a hit reads one row instead of opening a file (0.06 ms)
                disk_min_file_size=1 << 20,
            )
        except Exception as exc:  # any failure here must not fail a validation
            self._disable(exc)

    @property
    def enabled(self) -> bool:
        return self._cache is not None

    def _disable(self, exc: BaseException) -> None:
        if not self.warnings:
            self.warnings.append(f"cache disabled ({self.directory}): {type(exc).__name__}: {exc}")
        cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):  # already degrading; closing is best effort
                cache.close()

    def _get(self, key: str) -> Any:
        if self._cache is None:
            return None
        try:
            return self._cache.get(key, default=None, retry=True)
        except Exception as exc:
            self._disable(exc)
            return None

    def _set(self, key: str, value: str) -> None:
        if self._cache is None:
            return
        try:
            self._cache.set(key, value, expire=self.ttl, retry=True)
        except Exception as exc:
            self._disable(exc)

    def _drop(self, key: str) -> None:
        if self._cache is not None:
            try:
                self._cache.delete(key, retry=True)
            except Exception as exc:
                self._disable(exc)

    # -- maintenance (``clearance cache stats|clear``) -------------------------------------

    def stats(self) -> CacheStats:
        cache = self._require()
        try:
            hits, misses = cache.stats(enable=True)
            entries = len(cache)
        except Exception as exc:
            self._raise(exc)
        return CacheStats(
            str(self.directory),
            entries,
            _size_on_disk(self.directory),
            self.size_limit,
            hits,
            misses,
        )

    def clear(self) -> int:
        """Remove every entry and reset the counters; returns how many entries were removed."""
        cache = self._require()
        try:
            removed = cache.clear(retry=True)
            cache.stats(enable=True, reset=True)
        except Exception as exc:
            self._raise(exc)
        return int(removed)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def _require(self) -> diskcache.Cache:
        if self._cache is None:
            from engine.errors import ServiceError

            raise ServiceError(self.warnings[0] if self.warnings else "cache unavailable")
        return self._cache

    def _raise(self, exc: BaseException) -> NoReturn:
        from engine.errors import ServiceError

        raise ServiceError(f"cache at {self.directory} unusable: {exc}") from exc


def _size_on_disk(directory: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                continue  # removed by a concurrent eviction while we walked
    return total


def open_cache() -> JsonCache | None:
    """The cache the engine should use: ``None`` when ``CLEARANCE_NO_CACHE=1``; Redis when
    ``CLEARANCE_CACHE_URL`` is set (engine.cache_redis), else the disk cache. A cache that
    cannot be opened is still returned (disabled), so its warning reaches the report."""
    if cache_disabled():
        return None
    if os.environ.get("CLEARANCE_CACHE_URL", "").strip():
        from engine.cache_redis import RedisCache  # lazily: redis is only needed when used

        return RedisCache()
    return DiskCache()
