"""Batch throughput: process pool vs Ray (1 and 2 actors), Ray's start-up; Redis vs disk cache."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


def _documents(folder: Path, copies: int) -> list[Path]:
    """Every sample document (text, Markdown, HTML, PDF, DOCX), ``copies`` times under distinct
    names: the run's documents are the same for every executor."""
    from engine.batch import collect

    for n in range(copies):
        for f in collect([SAMPLES]):
            target = folder / f"copy{n}" / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, target)
    return collect([folder])


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batch(copies: int, repeats: int) -> dict[str, Any]:
    """Documents per second (wall time) for each executor on the same documents, the median of
    ``repeats`` runs; the first run of each is kept out as warm-up (imports, model files in the
    page cache). Ray's cluster start and actor start-up are timed apart from throughput."""
    import ray

    from engine.batch import Job, run
    from engine.batch_ray import RayExecutor

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["CLEARANCE_HOME"] = str(work / "home")  # the audit log is written, as in use
    os.environ["CLEARANCE_NO_CACHE"] = "1"  # every run validates every document
    files = _documents(work / "docs", copies)
    job = Job()
    out: dict[str, Any] = {"documents": len(files), "repeats": repeats}
    rates: dict[str, list[float]] = {}

    def rate(name: str, fn: Callable[[], Any]) -> None:
        fn()  # warm-up
        rates[name] = [len(files) / _timed(fn) for _ in range(repeats)]

    rate("process pool, 1 process (in-process)", lambda: run(files, job, jobs=1))
    rate("process pool, 2 processes", lambda: run(files, job, jobs=2))

    t0 = time.perf_counter()
    ray.init(
        address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
    )
    out["ray_init_s"] = round(time.perf_counter() - t0, 2)
    for workers in (1, 2):
        name = f"ray, {workers} actor{'s' if workers > 1 else ''}"
        ready: list[float] = []
        steady: list[float] = []

        def ray_run(
            workers: int = workers, ready: list[float] = ready, steady: list[float] = steady
        ) -> None:
            executor = RayExecutor(job, workers=workers)
            t = time.perf_counter()
            executor.start(len(files))
            executor.wait_ready()  # actors built: engine, gates compiled, model loaded
            ready.append(time.perf_counter() - t)
            try:
                steady.append(len(files) / _timed(lambda: executor.run(files)))
            finally:
                executor.close()

        rate(name, ray_run)
        out[f"ray_actor_start_s ({workers})"] = round(statistics.median(ready[1:]), 2)
        out[f"docs_per_s once started ({name})"] = round(statistics.median(steady[1:]), 2)
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)
    out["docs_per_s"] = {k: round(statistics.median(v), 2) for k, v in rates.items()}
    out["docs_per_s_runs"] = {k: [round(x, 2) for x in v] for k, v in rates.items()}
    out["note"] = (
        "docs_per_s: wall time of a whole run, its workers' start-up included (a pool's "
        "processes, Ray's actors) but not ray.init (ray_init_s); Ray once started: from "
        "the actors ready (engine built, model loaded) to the last report"
    )
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cache_latency(ops: int, redis_url: str | None) -> dict[str, Any]:
    """p50/p99 of get (hit), get (miss) and put of a real report (every built-in gate, on the
    sample document with the largest decided report), on the disk cache and on Redis over
    loopback."""
    from engine.api import Engine
    from engine.batch import collect
    from engine.cache import DiskCache, is_decided
    from engine.cache_redis import RedisCache

    engine = Engine(cache=None, audit=None)
    reports = [engine.validate(f) for f in collect([SAMPLES])]
    # the largest report that may be cached (an undecided one is never stored)
    report = max((r for r in reports if is_decided(r)), key=lambda r: len(r.model_dump_json()))
    work = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    server = None
    if redis_url is None:
        port = _free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--dir", str(work)],
            stdout=subprocess.DEVNULL,
        )
        redis_url = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.5)
    stores: dict[str, Any] = {
        "disk": DiskCache(work / "disk", ttl=None),
        "redis": RedisCache(redis_url, ttl=None),
    }
    out: dict[str, Any] = {"ops": ops, "report_bytes": len(report.model_dump_json())}
    timings: dict[str, dict[str, list[float]]] = {
        name: {"put": [], "get hit": [], "get miss": []} for name in stores
    }
    try:
        for i in range(ops):
            key = f"{i:064x}"
            # the stores take turns, op by op: a busy machine slows both alike
            for name, store in stores.items():
                t0 = time.perf_counter()
                store.put_report(key, report)
                t1 = time.perf_counter()
                hit = store.get_report(key)
                t2 = time.perf_counter()
                store.get_report(f"{i:063x}z")
                t3 = time.perf_counter()
                assert hit is not None, store.warnings
                timings[name]["put"].append(t1 - t0)
                timings[name]["get hit"].append(t2 - t1)
                timings[name]["get miss"].append(t3 - t2)
        # the bare round trip, for scale: SET and GET of the same JSON with no Clearance code
        client, blob = stores["redis"]._client, report.model_dump_json()
        raw: dict[str, list[float]] = {"put": [], "get hit": []}
        for i in range(ops):
            t0 = time.perf_counter()
            client.set(f"bench:{i}", blob)
            t1 = time.perf_counter()
            client.get(f"bench:{i}")
            raw["put"].append(t1 - t0)
            raw["get hit"].append(time.perf_counter() - t1)
        timings["redis, bare SET/GET"] = raw
        for name in timings:
            out[name] = {
                k: {
                    "p50_ms": round(1000 * statistics.median(v), 3),
                    "p99_ms": round(1000 * statistics.quantiles(v, n=100)[98], 3),
                }
                for k, v in timings[name].items()
            }
        for store in stores.values():
            store.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    out["note"] = (
        "get hit includes parsing the JSON report back (the same code for both stores); "
        "Redis over loopback on the same machine"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4, help="copies of the 8 sample documents")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache-ops", type=int, default=500)
    parser.add_argument("--redis-url", help="measure this server (default: start redis-server)")
    parser.add_argument("--only", choices=("batch", "cache"))
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "cpus": os.cpu_count()}
    if args.only != "batch":
        if args.redis_url or shutil.which("redis-server"):
            result["cache"] = cache_latency(args.cache_ops, args.redis_url)
        else:
            result["cache"] = "skipped: no redis-server (apt-get install -y redis-server)"
    if args.only != "cache":
        result["batch"] = batch(args.copies, args.repeats)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
