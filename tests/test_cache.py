"""Disk cache: round trips, TTL, size limit, persisted stats, and degrading when broken."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine.cache as cache_mod
from engine.cache import DiskCache
from engine.cli import main
from engine.providers.base import Answer, Evidence

try:
    from test_audit import make_report
except ImportError:  # tests/ collected as a package
    from tests.test_audit import make_report

ROOT = Path(__file__).resolve().parent.parent
KEY = "0f" * 32
PROVIDER = "anthropic:claude-test:p1"


@pytest.fixture
def cache(tmp_path: Path) -> DiskCache:
    c = DiskCache(tmp_path / "cache")
    yield c
    c.close()


def test_report_round_trip_marks_a_hit(cache: DiskCache) -> None:
    assert cache.get_report(KEY) is None
    report = make_report()
    cache.put_report(KEY, report)
    got = cache.get_report(KEY)
    assert got is not None and got.cache_hit
    assert got.model_copy(update={"cache_hit": False}) == report
    assert cache.warnings == []


def test_answer_round_trip(cache: DiskCache) -> None:
    answer = Answer("no", 0.7, "not stated", (Evidence("the quote", 3, 12),))
    cache.put_answer(KEY, answer, PROVIDER)
    got = cache.get_answer(KEY)
    assert got == Answer("no", 0.7, "not stated", (Evidence("the quote", 3, 12),), cached=True)
    assert cache.get_answer("1" * 64) is None


def test_values_are_json_text_never_pickles(cache: DiskCache) -> None:
    cache.put_report(KEY, make_report())
    cache.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    with sqlite3.connect(cache.directory / "cache.db") as conn:
        modes = {m for (m,) in conn.execute("SELECT mode FROM Cache")}
    assert modes and 4 not in modes  # 4 is diskcache.core.MODE_PICKLE


def test_a_damaged_entry_is_a_miss_not_an_error(cache: DiskCache) -> None:
    assert cache._cache is not None
    cache._cache.set("report:" + KEY, "{not json")
    cache._cache.set("answer:" + KEY, '{"verdict": "yes"}')
    assert cache.get_report(KEY) is None and cache.get_answer(KEY) is None
    assert cache.enabled and cache.warnings == []
    assert len(cache._cache) == 0  # dropped, so the next validation refills it


def test_ttl_expires_entries(tmp_path: Path) -> None:
    c = DiskCache(tmp_path / "c", ttl=0.2)
    c.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    assert c.get_answer(KEY) is not None
    time.sleep(0.3)
    assert c.get_answer(KEY) is None
    c.close()


def test_size_limit_evicts_oldest(tmp_path: Path) -> None:
    limit = 256 * 1024
    c = DiskCache(tmp_path / "c", size_limit=limit)
    report = make_report(gates=30)
    for i in range(400):  # ~15 KB each: ~6 MB offered to a 256 KB cache
        c.put_report(f"{i:064x}", report)
    s = c.stats()
    assert s.entries < 400
    assert c._cache is not None and c._cache.volume() < 2 * limit
    assert c.get_report(f"{399:064x}") is not None  # the newest survive
    assert c.get_report(f"{0:064x}") is None  # the oldest went first
    assert c.warnings == []
    c.close()


def test_stats_persist_across_processes_and_clear_resets(cache: DiskCache) -> None:
    cache.put_report(KEY, make_report())
    cache.get_report(KEY)
    cache.get_report("9" * 64)
    code = (
        "import sys; from engine.cache import DiskCache; "
        f"c = DiskCache({str(cache.directory)!r}); "
        f"sys.exit(0 if c.get_report({KEY!r}) else 1)"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    s = cache.stats()
    assert (s.entries, s.hits, s.misses, s.hit_rate) == (1, 2, 1, 2 / 3)
    assert s.size_bytes > 0
    assert cache.clear() == 1
    s = cache.stats()
    assert (s.entries, s.hits, s.misses, s.hit_rate) == (0, 0, 0, None)


def test_corrupt_database_degrades_to_no_cache_with_one_warning(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    c = DiskCache(directory)
    c.put_report(KEY, make_report())
    c.close()
    (directory / "cache.db").write_bytes(b"this is not a database" * 100)
    for name in ("cache.db-wal", "cache.db-shm"):
        (directory / name).unlink(missing_ok=True)
    broken = DiskCache(directory)
    assert not broken.enabled
    assert broken.get_report(KEY) is None
    broken.put_report(KEY, make_report())
    broken.put_answer(KEY, Answer("yes", 1.0, "ok"), PROVIDER)
    assert broken.get_answer(KEY) is None
    assert len(broken.warnings) == 1 and "cache disabled" in broken.warnings[0]


def test_unwritable_location_degrades_to_no_cache(tmp_path: Path) -> None:
    # Tests run as root, where chmod does not stop writes: a path under a regular file does.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c = DiskCache(blocker / "cache")
    c.put_report(KEY, make_report())
    assert c.get_report(KEY) is None
    assert not c.enabled and len(c.warnings) == 1 and "Not a directory" in c.warnings[0]


def test_failure_after_opening_disables_once(cache: DiskCache) -> None:
    class Broken:
        def get(self, *a: object, **k: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        def close(self) -> None:
            pass

    cache._cache = Broken()  # type: ignore[assignment]
    assert cache.get_report(KEY) is None
    assert cache.get_answer(KEY) is None
    assert not cache.enabled and cache.warnings == [
        f"cache disabled ({cache.directory}): OperationalError: disk I/O error"
    ]


def test_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CLEARANCE_CACHE_DIR",
        "CLEARANCE_HOME",
        "CLEARANCE_NO_CACHE",
        "CLEARANCE_CACHE_SIZE",
        "CLEARANCE_CACHE_TTL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_mod.cache_dir() == tmp_path / "xdg" / "clearance"
    monkeypatch.setenv("CLEARANCE_HOME", str(tmp_path / "home"))
    assert cache_mod.cache_dir() == tmp_path / "home" / "cache"
    monkeypatch.setenv("CLEARANCE_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("CLEARANCE_CACHE_SIZE", "1000000")
    monkeypatch.setenv("CLEARANCE_CACHE_TTL", "0")
    c = cache_mod.open_cache()
    assert c is not None and c.directory == tmp_path / "explicit"
    assert (c.size_limit, c.ttl, c.enabled) == (1000000, None, True)
    c.close()
    monkeypatch.setenv("CLEARANCE_CACHE_SIZE", "lots")
    bad = cache_mod.open_cache()
    assert bad is not None and not bad.enabled and "CLEARANCE_CACHE_SIZE" in bad.warnings[0]
    monkeypatch.setenv("CLEARANCE_NO_CACHE", "1")
    assert cache_mod.open_cache() is None


def test_cli_stats_and_clear(cache: DiskCache, capsys: pytest.CaptureFixture[str]) -> None:
    cache.put_report(KEY, make_report())
    cache.get_report(KEY)
    assert main(["cache", "stats", "--dir", str(cache.directory)]) == 0
    out = capsys.readouterr().out
    assert "entries   1" in out and "hit rate  100.0%" in out
    assert main(["cache", "stats", "--dir", str(cache.directory), "--format", "json"]) == 0
    assert '"hits": 1' in capsys.readouterr().out
    assert main(["cache", "clear", "--dir", str(cache.directory)]) == 0
    assert "removed 1 cache entries" in capsys.readouterr().out


def test_cli_reports_an_unusable_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["cache", "stats", "--dir", str(blocker / "c")]) == 4
    assert "cache disabled" in capsys.readouterr().err


def test_a_hit_reads_one_row_and_never_splits_the_document(tmp_path: Path) -> None:
    """A hit needs the document's hash, not its sections or line table (worked out lazily),
    and a report of every built-in gate is kept in the SQLite file, not in a file of its own."""
    from engine.api import Engine
    from engine.ingest import document_from_text

    engine = Engine(cache=DiskCache(tmp_path / "c"), audit=None, provider=None)
    text = "# Privacy notice\n\nWe are Acme Ltd, the controller. Call 415-555-0134.\n" * 40
    first = engine.validate(document_from_text(text), doc_type="privacy_notice")
    assert (
        not first.cache_hit and len(first.model_dump_json()) > 32 << 10
    )  # over diskcache's default file size
    doc = document_from_text(text)
    again = engine.validate(doc, doc_type="privacy_notice")
    assert again.cache_hit and again.verdict == first.verdict
    assert "sections" not in vars(doc) and "_line_starts" not in vars(doc)
    assert doc.sections[0].heading == "Privacy notice" and doc.line_col(17) == (2, 1)
    with sqlite3.connect(tmp_path / "c" / "cache.db") as conn:
        files = [f for (f,) in conn.execute("SELECT filename FROM Cache") if f]
    assert files == []


# -- an outage is not remembered (issue 16, part 5) --------------------------------------------

try:  # tests/ may or may not be a package
    from tests.fake_anthropic import Fault, fake_anthropic, fake_anthropic_server  # noqa: F401
except ImportError:
    from fake_anthropic import Fault, fake_anthropic, fake_anthropic_server  # noqa: F401

NOTICE = """# Privacy notice

Acme Ltd is the data controller. Write to privacy@acme.example with any request.

# Retention

We keep account records for two years after the account closes.
"""


def _provider(server):  # type: ignore[no-untyped-def]
    from engine.providers.anthropic import AnthropicProvider

    async def no_wait(_: float) -> None:
        return None

    return AnthropicProvider(
        api_key="test-key",
        base_url=server.url,
        timeout_s=2.0,
        max_attempts=2,
        backoff_base_s=0.01,
        backoff_cap_s=0.02,
        sleep=no_wait,
    )


def test_an_outage_is_not_cached(tmp_path: Path, fake_anthropic) -> None:  # type: ignore[no-untyped-def]
    """With the provider failing, the undecided report and answers are not stored: once it is
    back, the next run asks it and gets decided answers, each cached with who gave them."""
    from engine.api import Engine
    from engine.ingest import document_from_text
    from engine.report import Status

    def validate():  # type: ignore[no-untyped-def]
        engine = Engine(
            cache=DiskCache(tmp_path / "c"), audit=None, provider=_provider(fake_anthropic)
        )
        report = engine.validate(
            document_from_text(NOTICE, name="n.md"), doc_type="privacy_notice", modules=["gdpr"]
        )
        return engine, report

    fake_anthropic.always = Fault("error", status=500)
    _, down = validate()
    assert any(g.status == Status.indeterminate for g in down.gates)
    assert fake_anthropic.requests  # it did try
    fake_anthropic.always = None
    asked_before = len(fake_anthropic.requests)
    engine, up = validate()
    assert not up.cache_hit  # the outage's report was not served again
    assert len(fake_anthropic.requests) > asked_before  # the provider was asked
    answers = [a for g in up.gates for a in g.semantic]
    assert answers and all(a.verdict in ("yes", "no") and not a.cached for a in answers)
    assert all(a.provider == "anthropic" and a.model for a in answers)
    # the decided answers are cached, each naming the provider and model that gave it
    cache = engine.cache
    assert isinstance(cache, DiskCache)
    keys = [k for k in cache._cache.iterkeys() if k.startswith("answer:")]  # type: ignore[union-attr]
    assert keys
    by = {cache.answer_provenance(k[len("answer:") :]) for k in keys}
    assert by == {engine.provider.identity()}
    # and a third run is a hit: decided reports are cached as before
    _, again = validate()
    assert again.cache_hit and again.verdict == up.verdict


def test_undecided_reports_and_answers_are_refused_by_the_cache(cache: DiskCache) -> None:
    from engine.report import Status

    report = make_report()
    undecided = report.model_copy(
        update={
            "gates": [
                report.gates[0].model_copy(update={"status": Status.indeterminate}),
                *report.gates[1:],
            ]
        }
    )
    cache.put_report(KEY, undecided)
    assert cache.get_report(KEY) is None
    cache.put_answer(KEY, Answer("unclear", 0.0, "no answer"), PROVIDER)
    cache.put_answer("1" * 64, Answer("yes", 1.0, "ok"))  # who answered is not known
    assert cache.get_answer(KEY) is None and cache.get_answer("1" * 64) is None
