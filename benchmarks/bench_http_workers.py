"""HTTP workers side by side: `clearance serve --workers 1` and `--workers 2` sharing a PostgreSQL
audit log and a Redis cache, under the locust test; requests/s, p50/p99, errors, audit rows.

    python -m benchmarks.bench_http_workers [--users 16] [--seconds 40] [--rate 0] [--workers 1 2]

Starts a throwaway PostgreSQL (durable settings: fsync on, as a real server) and a Redis server
(tests/pg.py, tests/redis_server.py), then for each worker count: a fresh database, a validator
key, the server, a warm-up (every document twice per worker, so reports come from Redis), locust
headless for --seconds, then the audit row check (rows written during the run = successful
requests, none twice) and `audit verify` on the PostgreSQL log.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _post(url: str, key: str, body: dict[str, str]) -> str:
    """POST one validation; returns the pid of the worker that answered."""
    req = urllib.request.Request(
        url + "/v1/validate",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=300) as r:
        assert r.status == 200
        return str(r.headers.get("x-clearance-worker", ""))


def _rows(pg_url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT row_hash) FROM validations").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _readyz(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/readyz", timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
        return body


def run_one(
    workers: int, pg: Any, redis_url: str, args: argparse.Namespace, n: int
) -> dict[str, Any]:
    """One server with ``workers`` processes under locust; its numbers."""
    from benchmarks.load import free_port, stop, summarise, tree_cpu_s, wait_healthy
    from benchmarks.locustfile import documents
    from engine.audit import open_audit_store
    from engine.keys import KeyStore

    pg_url = pg.create_database(f"bench{n}_w{workers}")
    import redis

    redis.Redis.from_url(redis_url).flushall()
    home = Path(tempfile.mkdtemp(prefix=f"clearance-workers{workers}-"))
    env = {
        **os.environ,
        "CLEARANCE_HOME": str(home),
        "CLEARANCE_AUDIT_URL": pg_url,
        "CLEARANCE_CACHE_URL": redis_url,
        "CLEARANCE_PROVIDER": args.provider,
        "CLEARANCE_LOAD_RATE": str(args.rate),
        "TOKENIZERS_PARALLELISM": "false",
    }
    for var in ("CLEARANCE_AUDIT_DB", "CLEARANCE_CACHE_DIR", "CLEARANCE_NO_AUDIT"):
        env.pop(var, None)
    store = KeyStore(pg_url)  # the keys live beside the audit log, in PostgreSQL
    key = store.create("load-test", "validator")[1]
    store.close()
    env["CLEARANCE_LOAD_KEY"] = key

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--port", str(port)]
        + ["--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )
    prefix = home / "locust"
    try:
        wait_healthy(url, server)
        while _readyz(url)["status"] != "ready":
            time.sleep(0.5)
        docs = documents()
        seen = {_post(url, key, doc) for doc in docs * (workers * 2)}
        before, _ = _rows(pg_url)
        cmd = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"]
        cmd += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s"]
        cmd += ["--host", url, "--json-file", str(prefix), "--only-summary"]
        cmd += ["--stop-timeout", "5", "--loglevel", "WARNING"]
        load = os.getloadavg()[0]
        cpu0 = tree_cpu_s(server.pid)
        subprocess.run(
            cmd,
            env=env,
            cwd=ROOT,
            check=False,
            stdout=subprocess.DEVNULL,
            timeout=args.seconds + 120,
        )
        server_cpu = tree_cpu_s(server.pid) - cpu0
        ready = _readyz(url)
    finally:
        stop(server)
    stats = summarise(json.loads(Path(f"{prefix}.json").read_text()))
    rows, distinct = _rows(pg_url)
    with open_audit_store(pg_url, readonly=True) as log:
        verified = log.verify()
    ok = stats["requests"] - stats["failures"]
    return {
        "workers": workers,
        "warm-up workers": len(seen - {""}),
        "load": load,
        "ready": ready["status"],
        "checks": {k: v["status"] for k, v in ready["checks"].items()},
        "server_cpu_ms": server_cpu * 1000 / max(1, stats["requests"]),
        "recorded": rows - before,
        "duplicates": rows - distinct,
        "ok": ok,
        "verify": verified.ok,
        "verified": verified.validations,
        **stats,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument(
        "--rate", type=float, default=0, help="requests/s per user (0: as fast as answers come)"
    )
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--provider", default="offline")
    args = ap.parse_args(argv)
    if not 1 <= args.seconds <= 600 or not 1 <= args.users <= 1000:
        ap.error("keep it bounded: 1-600 seconds, 1-1000 users")
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from pg import TempPostgres
    from redis_server import RedisServer

    pg = TempPostgres(durable=True)
    redis_dir = Path(tempfile.mkdtemp(prefix="clearance-redis-"))
    pg.start()
    redis = RedisServer(redis_dir, "--maxmemory", "256mb", "--maxmemory-policy", "volatile-lru")
    results = []
    try:
        for n, workers in enumerate(args.workers):
            print(f"-- {workers} worker(s): {args.users} users, {args.seconds} s ...", flush=True)
            results.append(run_one(workers, pg, redis.url, args, n))
    finally:
        redis.stop()
        pg.stop()

    print(
        f"\nmachine: {os.cpu_count()} CPUs shared with other work; locust, PostgreSQL (fsync on) "
        f"and Redis on the same cores; {args.users} users, "
        + (
            "closed loop (next request when the answer is in)"
            if not args.rate
            else f"{args.rate:g} requests/s each"
        )
        + f", {args.seconds} s each; provider {args.provider}, reports from the Redis cache"
    )
    head = "| workers | requests | requests/s | p50 ms | p99 ms | errors | audit rows | verify |"
    print(head)
    print("|" + " --- |" * 8)
    failed = False
    for r in results:
        rows_ok = r["recorded"] == r["ok"] and r["duplicates"] == 0
        failed |= not rows_ok or not r["verify"] or r["failures"] > 0
        print(
            f"| {r['workers']} | {r['requests']} | {r['rps']:.1f} | {r['p50']:.0f} | "
            f"{r['p99']:.0f} | {r['failures']} | {r['recorded']} = {r['ok']} ok requests, "
            f"{r['duplicates']} duplicated | {'OK' if r['verify'] else 'FAILED'}, "
            f"{r['verified']} rows |"
        )
    for r in results:
        print(
            f"  {r['workers']} worker(s): load average {r['load']:.1f} at the start; "
            f"{r['warm-up workers']} worker pid(s) answered the warm-up; server CPU "
            f"{r['server_cpu_ms']:.1f} ms per request; /readyz after the run: {r['ready']} "
            f"{r['checks']}"
        )
        for error, count in r["errors"][:3]:
            print(f"    failure x{count}: {error[:160]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
