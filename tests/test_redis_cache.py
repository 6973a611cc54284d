"""Redis result cache against a real redis-server: the disk cache's behaviour, TTL, size
limit by the server's maxmemory, undecided answers never stored or served, outages survived."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from engine.cache import DiskCache, JsonCache, open_cache
from engine.cache_redis import RedisCache, redact
from engine.providers.base import Answer, Evidence
from engine.report import Status

try:
    from redis_server import RedisServer, own_redis, redis_server, redis_url  # noqa: F401
    from test_audit import make_report
except ImportError:  # tests/ collected as a package
    from tests.redis_server import RedisServer, own_redis, redis_server, redis_url  # noqa: F401
    from tests.test_audit import make_report

KEY = "0f" * 32
PROVIDER = "offline:minilm:p1"
SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


@pytest.fixture
def rcache(redis_url: str) -> RedisCache:
    c = RedisCache(redis_url)
    yield c
    c.close()


def _undecided():  # type: ignore[no-untyped-def]
    report = make_report()
    gate = report.gates[0].model_copy(update={"status": Status.indeterminate})
    return report.model_copy(update={"gates": [gate, *report.gates[1:]]})


def _script(cache: JsonCache) -> list[object]:
    """The same lookups and stores, and what each returned, for comparing two stores."""
    seen: list[object] = [cache.get_report(KEY), cache.get_answer(KEY)]
    cache.put_report(KEY, make_report())
    cache.put_answer(KEY, Answer("no", 0.7, "not stated", (Evidence("q", 3, 12),)), PROVIDER)
    cache.put_answer("1" * 64, Answer("unclear", 0.0, "no answer"), PROVIDER)
    cache.put_report("2" * 64, _undecided())
    got = cache.get_report(KEY)
    seen += [
        got.model_copy(update={"cache_hit": False}) == make_report() if got else None,
        got.cache_hit if got else None,
        cache.get_answer(KEY),
        cache.get_answer("1" * 64),
        cache.get_report("2" * 64),
        cache.answer_provenance(KEY),
    ]
    return seen


def test_same_hits_and_misses_as_the_disk_cache(rcache: RedisCache, tmp_path: Path) -> None:
    disk = DiskCache(tmp_path / "disk")
    try:
        on_disk, on_redis = _script(disk), _script(rcache)
        assert on_redis == on_disk
        assert on_redis[2:4] == [True, True]  # the report came back, marked as a hit
        d, r = disk.stats(), rcache.stats()
        assert (r.entries, r.hits, r.misses) == (d.entries, d.hits, d.misses) == (2, 3, 4)
        assert rcache.warnings == [] and rcache.enabled
    finally:
        disk.close()
    # keys are the disk cache's, under the clearance: prefix; values are JSON text
    client = rcache._client
    assert sorted(client.scan_iter(match="clearance:*:*" + KEY)) == [
        f"clearance:answer:{KEY}",
        f"clearance:report:{KEY}",
    ]
    assert json.loads(client.get(f"clearance:answer:{KEY}"))["by"] == PROVIDER
    assert rcache.clear() == 2 and rcache.stats().entries == 0


def test_engine_hits_redis_like_disk(rcache: RedisCache, tmp_path: Path) -> None:
    from engine.api import Engine

    doc = SAMPLES / "engineering-memo.md"
    reports = {}
    for name, cache in (("disk", DiskCache(tmp_path / "d")), ("redis", rcache)):
        engine = Engine(cache=cache, audit=None, provider=None, gate_paths=[])
        first, again = engine.validate(doc), engine.validate(doc)
        assert (first.cache_hit, again.cache_hit) == (False, True), name
        assert again.verdict == first.verdict and again.warnings == first.warnings == []
        reports[name] = again.model_dump(exclude={"ms": True, "llm": {"latency_ms"}})
    assert reports["redis"] == reports["disk"]
    # another process or host: its own client on the same server, a hit at once
    other = Engine(cache=RedisCache(rcache.url), audit=None, provider=None, gate_paths=[])
    assert other.validate(doc).cache_hit


def test_ttl_expires_entries(redis_url: str) -> None:
    c = RedisCache(redis_url, ttl=0.3)
    c.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    assert c.get_answer(KEY) is not None
    assert 0 < c._client.pttl(f"clearance:answer:{KEY}") <= 300  # Redis expires it itself
    time.sleep(0.4)
    assert c.get_answer(KEY) is None
    forever = RedisCache(redis_url, ttl=None)
    forever.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    assert forever._client.pttl(f"clearance:answer:{KEY}") == -1  # CLEARANCE_CACHE_TTL=0


def test_undecided_is_never_stored_nor_served(rcache: RedisCache) -> None:
    rcache.put_report(KEY, _undecided())
    rcache.put_answer(KEY, Answer("unclear", 0.0, "no answer"), PROVIDER)
    rcache.put_answer("1" * 64, Answer("yes", 1.0, "ok"))  # who answered is not known
    assert rcache._client.dbsize() == 0
    # written by another writer that broke the rule: not served, and removed
    rcache._client.set(f"clearance:report:{KEY}", _undecided().model_dump_json())
    rcache._client.set(f"clearance:answer:{KEY}", '{"verdict": "unclear", "by": "x"}')
    assert rcache.get_report(KEY) is None and rcache.get_answer(KEY) is None
    assert not rcache._client.exists(f"clearance:report:{KEY}", f"clearance:answer:{KEY}")


def test_size_limit_is_the_servers_maxmemory(rcache: RedisCache) -> None:
    report = make_report(gates=30)
    for i in range(400):  # ~15 KB each: ~6 MB offered to a 4 MB server
        rcache.put_report(f"{i:064x}", report)
    s = rcache.stats()
    assert s.entries < 400 and s.size_limit == 4 * 1024 * 1024
    assert s.policy == "allkeys-lru"
    assert rcache.get_report(f"{399:064x}") is not None  # the newest survive
    assert rcache.warnings == []


def test_redis_killed_mid_run_validations_go_on_uncached(own_redis: RedisServer) -> None:
    from engine.api import Engine

    engine = Engine(cache=RedisCache(own_redis.url), audit=None, provider=None)
    memo, notice = SAMPLES / "engineering-memo.md", SAMPLES / "privacy-notice.md"
    first = engine.validate(memo)
    assert engine.validate(memo).cache_hit and first.warnings == []
    own_redis.kill()
    for doc in (notice, memo):  # a new document, and one that was cached
        report = engine.validate(doc)
        assert not report.cache_hit and report.verdict in ("fail", "pass", "review")
        assert any(
            w.startswith(f"cache unavailable ({own_redis.url}): ConnectionError")
            and "validated without the cache" in w
            for w in report.warnings
        ), report.warnings
    assert engine.validate(memo).summary == first.summary


def test_a_hung_server_times_out_and_the_cache_comes_back(own_redis: RedisServer) -> None:
    c = RedisCache(own_redis.url, timeout=0.2, retry_after=0.3)
    c.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    own_redis.pause()  # accepts connections, answers nothing
    try:
        assert c.get_answer(KEY) is None
        assert len(c.warnings) == 1 and "Timeout" in c.warnings[0]
        assert c.get_answer(KEY) is None  # skipped while down: no second wait
    finally:
        own_redis.resume()
    time.sleep(0.35)
    assert c.get_answer(KEY) is not None and c.warnings == []


def test_settings_and_bad_urls(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    monkeypatch.setenv("CLEARANCE_CACHE_URL", redis_url)
    monkeypatch.setenv("CLEARANCE_CACHE_TTL", "60")
    c = open_cache()
    assert isinstance(c, RedisCache) and c.ttl == 60 and c.enabled
    monkeypatch.setenv("CLEARANCE_NO_CACHE", "1")
    assert open_cache() is None
    monkeypatch.delenv("CLEARANCE_NO_CACHE")
    monkeypatch.setenv("CLEARANCE_CACHE_URL", "mysql://u:secret@h/0")
    bad = open_cache()
    assert isinstance(bad, RedisCache) and not bad.enabled
    assert bad.get_report(KEY) is None and bad.put_report(KEY, make_report()) is None
    assert "cache disabled (mysql://u:***@h/0)" in bad.warnings[0]
    assert "secret" not in bad.warnings[0]
    assert redact("redis://:pw@h:6380/1") == "redis://:***@h:6380/1"
    monkeypatch.setenv("CLEARANCE_CACHE_URL", redis_url)
    monkeypatch.setenv("CLEARANCE_CACHE_TIMEOUT", "soon")
    assert "CLEARANCE_CACHE_TIMEOUT" in RedisCache().warnings[0]


def test_cli_stats_and_clear_on_redis(
    rcache: RedisCache, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    rcache.put_report(KEY, make_report())
    rcache.get_report(KEY)
    monkeypatch.setenv("CLEARANCE_CACHE_URL", rcache.url)
    code, out, err = run_cli("cache", "stats")
    assert code == 0, err
    assert f"cache     {rcache.url}" in out and "entries   1" in out and "hit rate  100.0%" in out
    assert "allkeys-lru" in out
    code, out, _ = run_cli("cache", "stats", "--format", "json")
    assert json.loads(out)["hits"] == 1
    code, out, _ = run_cli("cache", "clear")
    assert code == 0 and f"removed 1 cache entries from {rcache.url}" in out
