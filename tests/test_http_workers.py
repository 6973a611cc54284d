"""`clearance serve --workers 2` for real: two processes on one port sharing a PostgreSQL audit log
and a Redis cache; no audit row lost or duplicated; /readyz follows Redis going away."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

try:
    from redis_server import RedisServer, own_redis  # noqa: F401
except ImportError:  # run from the repository root as a package
    from tests.redis_server import RedisServer, own_redis  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
BATCH = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(
    pg_url: str, own_redis: RedisServer, tmp_path: Path
) -> Iterator[tuple[str, RedisServer, str]]:
    """`clearance serve --workers 2` as a subprocess, with the audit log on the throwaway
    PostgreSQL and the cache on a Redis of this test's own; yields (base URL, Redis, PG URL)."""
    port = _free_port()
    env = {
        **os.environ,
        "CLEARANCE_AUDIT_URL": pg_url,
        "CLEARANCE_CACHE_URL": own_redis.url,
        "TOKENIZERS_PARALLELISM": "false",
    }
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", "2"]
        + ["--no-auth", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        until = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < until, "the server did not become ready"
            try:
                if httpx.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield base, own_redis, pg_url
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown, workers included
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
    # the start-up note says what the workers share
    assert "2 workers share the PostgreSQL audit log" in (tmp_path / "server.log").read_text()


def _documents() -> list[str]:
    return [
        p.read_text(encoding="utf-8")
        for p in sorted(SAMPLES.glob("*"))
        if p.is_file() and p.suffix in (".md", ".txt")
    ]


def _validate(base: str, text: str, name: str) -> tuple[int, str, dict[str, Any]]:
    # a new connection per request (no shared pool): each is accepted by whichever worker
    # takes it, as with many independent clients
    r = httpx.post(base + "/v1/validate", json={"text": text, "name": name}, timeout=120)
    return r.status_code, r.headers.get("x-clearance-worker", ""), r.json()


def _audit_rows(pg_url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT row_hash) FROM validations").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_two_workers_share_postgres_and_redis(served, run_cli, monkeypatch):
    base, redis, pg_url = served
    ready = httpx.get(base + "/readyz", timeout=10).json()
    assert ready["status"] == "ready", ready
    assert ready["checks"]["audit"]["backend"] == "postgres"
    assert ready["checks"]["audit"]["status"] == "ok"
    assert ready["checks"]["cache"] == {**ready["checks"]["cache"], "status": "ok"}
    assert ready["checks"]["cache"]["backend"] == "redis"
    assert ready["checks"]["gates"]["status"] == "ok"

    docs = _documents()
    sent, workers, rounds = 0, set(), 0
    # 60 concurrent validations, distinct documents; another round (at most 4 more) only if
    # the kernel happened to hand every connection to one worker
    with ThreadPoolExecutor(12) as pool:
        while len(workers) < 2 and rounds < 5:
            jobs = [
                pool.submit(
                    _validate, base, f"{docs[i % len(docs)]}\n\nref {rounds}-{i}\n", f"d{i}.md"
                )
                for i in range(BATCH)
            ]
            for job in jobs:
                status, worker, body = job.result()
                assert status == 200, body
                assert body["verdict"] in ("pass", "fail", "indeterminate")
                workers.add(worker)
            sent += BATCH
            rounds += 1
    assert len(workers) == 2 and "" not in workers, workers

    # every answered validation is one row, none twice, and the shared chain verifies
    rows, distinct = _audit_rows(pg_url)
    assert (rows, distinct) == (sent, sent)
    monkeypatch.setenv("CLEARANCE_AUDIT_URL", pg_url)
    code, out, err = run_cli("audit", "verify")
    assert code == 0, out + err
    assert out.startswith(f"OK: {sent} validations,"), out

    # Redis goes away: ready but degraded (the cache is optional), validations go on uncached
    # and say so; the audit log still gets every row
    redis.kill()
    for _ in range(4):  # both workers (each request may land on either)
        r = httpx.get(base + "/readyz", timeout=10)
        assert r.status_code == 200
        assert r.json()["status"] == "degraded"
        assert r.json()["checks"]["cache"]["status"] == "degraded"
        assert r.json()["checks"]["audit"]["status"] == "ok"
    status, _, body = _validate(base, docs[0] + "\n\nafter redis\n", "late.md")
    assert status == 200, body
    assert any("cache" in w and "without the cache" in w for w in body["warnings"]), body[
        "warnings"
    ]
    assert _audit_rows(pg_url) == (sent + 1, sent + 1)


def test_readyz_is_503_when_the_audit_log_is_not_usable(tmp_path):
    """The audit log is required: a schema this Clearance does not write makes the server
    unready (503), while /healthz (liveness) still answers; a missing cache is not an error."""
    import sqlite3

    from conftest import LiveServers
    from engine.api import Engine
    from engine.audit import SCHEMA_VERSION, AuditLog
    from engine.providers.base import NullProvider
    from engine.server import Settings, create_app

    db = tmp_path / "audit.db"
    engine = Engine(provider=NullProvider(), cache=None, audit=AuditLog(db))
    servers = LiveServers()
    try:
        base = servers.start(create_app(engine, settings=Settings(auth=False)))
        ready = httpx.get(base + "/readyz", timeout=10)
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready" and body["worker"] == os.getpid()
        assert body["checks"]["audit"] == {
            **body["checks"]["audit"],
            "status": "ok",
            "backend": "sqlite",
            "required": True,
            "detail": f"schema {SCHEMA_VERSION}",
        }
        assert body["checks"]["cache"]["status"] == "disabled"
        assert ready.headers["x-clearance-worker"] == str(os.getpid())

        with sqlite3.connect(db) as conn:  # a newer Clearance migrated the log meanwhile
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        unready = httpx.get(base + "/readyz", timeout=10)
        assert unready.status_code == 503
        assert unready.json()["status"] == "unready"
        audit = unready.json()["checks"]["audit"]
        assert audit["status"] == "down"
        assert audit["detail"] == f"schema version 99, this Clearance writes {SCHEMA_VERSION}"
        assert httpx.get(base + "/healthz", timeout=10).json()["status"] == "ok"
    finally:
        servers.close()


def test_readyz_is_503_when_postgres_is_gone(pg_url, pg_server):
    """The PostgreSQL database goes away under a running server: /readyz says the audit log is
    down (503) at once, instead of waiting on the connection pool."""
    import psycopg

    from conftest import LiveServers
    from engine.api import Engine
    from engine.audit import open_audit_store
    from engine.providers.base import NullProvider
    from engine.server import Settings, create_app

    store = open_audit_store(pg_url)
    engine = Engine(provider=NullProvider(), cache=None, audit=store)
    servers = LiveServers()
    try:
        base = servers.start(create_app(engine, settings=Settings(auth=False)))
        ready = httpx.get(base + "/readyz", timeout=10).json()
        assert ready["checks"]["audit"]["backend"] == "postgres"
        assert ready["status"] == "ready", ready
        name = urlsplit(pg_url).path.lstrip("/")
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        t0 = time.monotonic()
        r = httpx.get(base + "/readyz", timeout=30)
        assert r.status_code == 503
        assert r.json()["status"] == "unready"
        audit = r.json()["checks"]["audit"]
        assert audit["status"] == "down" and audit["required"] is True
        assert "does not exist" in audit["detail"], audit
        assert time.monotonic() - t0 < 20  # a bound on hanging, not a timing claim
    finally:
        servers.close()
        store.close()
