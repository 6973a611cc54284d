"""Redis (or Valkey) result cache shared by many hosts: ``CLEARANCE_CACHE_URL=redis://...``."""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from engine.cache import CacheStats, JsonCache, cache_ttl

#: seconds one Redis command may take (connecting included) before the cache counts as down.
#: Short on purpose: a cache that answers slower than validating again is no cache.
DEFAULT_TIMEOUT = 0.5
#: after a failure, seconds without trying Redis again (each validation meanwhile runs
#: uncached, with the warning): a dead server costs one timeout per interval, not per lookup.
DEFAULT_RETRY_AFTER = 30.0
PREFIX = "clearance:"

# One round trip for a lookup and its hit/miss count; the counters live in Redis so that
# `clearance cache stats` covers every process and host that uses the server.
_GET_COUNTED = """
local v = redis.call('GET', KEYS[1])
if v then redis.call('INCR', KEYS[2]) else redis.call('INCR', KEYS[3]) end
return v
"""


def cache_url() -> str | None:
    return os.environ.get("CLEARANCE_CACHE_URL", "").strip() or None


def redact(url: str) -> str:
    """The URL without its password: it goes into reports and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable cache URL>"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        from engine.errors import UserError

        raise UserError(f"{name} must be a positive number of seconds, got '{raw}'")
    return value


class RedisCache(JsonCache):
    """:class:`engine.hooks.ResultCache` on a Redis or Valkey server, with the disk cache's keys
    (prefixed ``clearance:``), JSON values and TTL.

    The size limit is the server's: ``maxmemory`` with an evicting ``maxmemory-policy``
    (``volatile-lru`` when every entry has a TTL). A failing or slow server (any error, or no
    answer within ``timeout``) never fails a validation: the cache is skipped for
    ``retry_after`` seconds and :attr:`warnings` says why while it is down."""

    def __init__(
        self,
        url: str | None = None,
        *,
        ttl: float | None | bool = True,
        timeout: float | None = None,
        retry_after: float | None = None,
        prefix: str = PREFIX,
    ) -> None:
        self.url = url or cache_url() or "redis://localhost:6379/0"
        self.directory: str = redact(self.url)  # where it is, for messages and `cache stats`
        self.prefix = prefix
        self.ttl: float | None = None
        self.size_limit = 0
        self._reason: str | None = None
        self._down_until = 0.0
        self._client: Any = None
        try:
            self.ttl = cache_ttl() if ttl is True else (ttl or None)
            timeout = timeout or _env_seconds("CLEARANCE_CACHE_TIMEOUT", DEFAULT_TIMEOUT)
            self.retry_after = retry_after or DEFAULT_RETRY_AFTER
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # no retries inside a lookup: the next validation tries again (retry_after)
                retry=Retry(NoBackoff(), 0),
                decode_responses=True,
            )
            self._get_counted = self._client.register_script(_GET_COUNTED)
        except Exception as exc:  # a bad URL or setting: no cache, said in every report
            self._client = None
            self._reason = f"cache disabled ({self.directory}): {type(exc).__name__}: {exc}"

    @property
    def enabled(self) -> bool:
        return self._client is not None and self._reason is None

    @property
    def warnings(self) -> list[str]:
        """The reason the cache is being skipped, while it is (empty once Redis answers)."""
        return [self._reason] if self._reason else []

    def _usable(self) -> bool:
        return self._client is not None and (
            self._reason is None or time.monotonic() >= self._down_until
        )

    def _fail(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after
        self._reason = (
            f"cache unavailable ({self.directory}): {type(exc).__name__}: {exc}; "
            "validated without the cache"
        )

    def _ok(self) -> None:
        self._reason = None

    def _get(self, key: str) -> Any:
        if not self._usable():
            return None
        p = self.prefix
        try:
            value = self._get_counted(keys=[p + key, p + "stats:hits", p + "stats:misses"])
        except Exception as exc:
            self._fail(exc)
            return None
        self._ok()
        return value

    def _set(self, key: str, value: str) -> None:
        if not self._usable():
            return
        try:
            px = max(1, int(self.ttl * 1000)) if self.ttl else None
            self._client.set(self.prefix + key, value, px=px)
        except Exception as exc:
            self._fail(exc)
            return
        self._ok()

    def _drop(self, key: str) -> None:
        if not self._usable():
            return
        try:
            self._client.delete(self.prefix + key)
        except Exception as exc:
            self._fail(exc)

    # -- maintenance (``clearance cache stats|clear``) -------------------------------------

    def _entry_keys(self) -> Any:
        for kind in ("report:", "answer:"):
            yield from self._client.scan_iter(match=self.prefix + kind + "*", count=1000)

    def stats(self) -> CacheStats:
        client = self._require()
        try:
            entries = sum(1 for _ in self._entry_keys())
            hits, misses = client.mget(self.prefix + "stats:hits", self.prefix + "stats:misses")
            memory = client.info("memory")
        except Exception as exc:
            self._raise(exc)
        self.size_limit = int(memory.get("maxmemory", 0))
        return CacheStats(
            self.directory,
            entries,
            int(memory.get("used_memory", 0)),
            self.size_limit,
            int(hits or 0),
            int(misses or 0),
            policy=str(memory.get("maxmemory_policy", "")) or None,
        )

    def clear(self) -> int:
        """Remove every Clearance entry (nothing else on the server) and reset the counters."""
        client = self._require()
        removed = 0
        try:
            batch: list[str] = []
            for key in self._entry_keys():
                batch.append(key)
                if len(batch) == 1000:
                    removed += client.unlink(*batch)
                    batch = []
            if batch:
                removed += client.unlink(*batch)
            client.delete(self.prefix + "stats:hits", self.prefix + "stats:misses")
        except Exception as exc:
            self._raise(exc)
        return int(removed)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _require(self) -> Any:
        if self._client is None:
            from engine.errors import ServiceError

            raise ServiceError(self._reason or "cache unavailable")
        return self._client

    def _raise(self, exc: BaseException) -> NoReturn:
        from engine.errors import ServiceError

        raise ServiceError(f"cache at {self.directory} unusable: {exc}") from exc
