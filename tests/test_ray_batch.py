"""`validate --executor ray` on a real local Ray cluster: the local run's verdicts, in input
order; a worker killed mid-run has its documents retried; workers write the audit log."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLES, write
from engine.batch import Job, Outcome, collect, run

try:
    from redis_server import redis_server, redis_url  # noqa: F401
    from test_batch import _audit_names, _stable
except ImportError:  # tests/ collected as a package
    from tests.redis_server import redis_server, redis_url  # noqa: F401
    from tests.test_batch import _audit_names, _stable


@pytest.fixture(scope="module")
def ray_cluster():  # type: ignore[no-untyped-def]
    """One local cluster of 2 CPUs for this module (Ray's start-up, ~3 s, is paid once), shut
    down after it so that no later test forks a process that holds Ray's threads."""
    try:
        import ray
    except ImportError:
        reason = "ray is not installed (pip install -e '.[dev]' installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


QUIET = {"CLEARANCE_PROVIDER": "none", "CLEARANCE_NO_CACHE": "1"}


@pytest.fixture
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # no semantic provider and no cache: the verdicts are the gates' own, every run validates
    for k, v in QUIET.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The sample documents (every format), and an empty one: an input error travels too."""
    root = tmp_path_factory.mktemp("docs")
    for f in collect([SAMPLES]):
        shutil.copy(f, write(root / f.name, ""))
    write(root / "empty.md", "")
    return collect([root])


@pytest.fixture(scope="module")
def local(docs: list[Path]) -> list[Outcome]:
    """The same documents validated in-process, once for the module (nothing recorded)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {**QUIET, "CLEARANCE_NO_AUDIT": "1"}.items():
            mp.setenv(k, v)
        return run(docs, Job(), jobs=1)


def _dumps(outcomes: list[Outcome]) -> list[object]:
    return [
        (o.path, _stable(json.loads(o.report.model_dump_json())) if o.report else o.error, o.code)
        for o in outcomes
    ]


def test_a_worker_killed_mid_run_has_its_documents_retried(
    ray_cluster, quiet, docs: list[Path], local: list[Outcome]
) -> None:
    from engine.batch_ray import RayExecutor

    # 9 documents, one a task, 2 in flight per worker: when the first result is in, the
    # other worker holds work, and work is left to hand out, so the death is always seen
    executor = RayExecutor(Job(), workers=2, batch_size=1)
    killed: list[object] = []

    def kill_the_other_worker(out: Outcome) -> None:
        if not killed:  # after the first result: the other worker still holds batches
            busy = max(executor.slots, key=lambda s: s.in_flight)
            killed.append(busy.actor)
            ray_cluster.kill(busy.actor)

    try:
        remote = executor.run(docs, kill_the_other_worker)
    finally:
        executor.close()
    assert killed and executor.stats.deaths == 1 and executor.stats.retried >= 1
    assert _dumps(remote) == _dumps(local)  # every document has its verdict, the same


def test_cli_ray_matches_the_local_run_and_workers_write_the_audit_log(
    ray_cluster,
    quiet,
    run_cli,
    docs: list[Path],
    local: list[Outcome],
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.cache import is_decided
    from engine.cache_redis import RedisCache

    # the actors share this run's cache: a Redis server, as on a cluster
    monkeypatch.delenv("CLEARANCE_NO_CACHE")
    monkeypatch.setenv("CLEARANCE_CACHE_URL", redis_url)
    manifest = write(tmp_path / "run.jsonl", "\n".join(json.dumps({"path": str(f)}) for f in docs))
    code, out, err = run_cli(
        "validate", "--manifest", manifest, "--executor", "ray", "-j", "2", "-f", "json"
    )
    assert code == 2, err  # the empty document: an input error, said, the others validated
    assert "clearance: error: empty.md: the document is empty" in err
    expected = [json.loads(o.report.model_dump_json()) for o in local if o.report]
    # the local run's reports, in input order
    assert [_stable(r) for r in json.loads(out)] == [_stable(r) for r in expected]
    # written by the actors, to this test's CLEARANCE_HOME, once each
    assert _audit_names() == sorted(f.name for f in docs if f.name != "empty.md")
    # and stored every decided report in Redis (the undecided ones, never)
    decided = sum(1 for o in local if o.report and is_decided(o.report))
    assert decided and RedisCache(redis_url).stats().entries == decided
    code, _, err = run_cli("validate", docs[0], "--address", "auto")
    assert code == 2 and "--executor ray" in err
