"""Batch validation on a Ray cluster: actors that build one engine each, fed bounded batches."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.batch import Job, Outcome, outcome_of, work_with, worker_engine
from engine.errors import UserError

#: documents per task: large enough that a task's overhead (~1 ms) is small against a
#: document (~20-2000 ms), small enough that a dead worker loses little and the bar moves.
DEFAULT_BATCH = 4
#: tasks queued on each worker at a time: one running, one waiting, so no worker idles
#: between batches while the driver holds only 2 x workers batches of results in memory.
IN_FLIGHT_PER_WORKER = 2
#: a document is given up (exit 4) after this many workers died while holding it: a
#: document that kills its worker must not kill the whole cluster one worker at a time.
MAX_ATTEMPTS = 3

_ENV_PREFIX = "CLEARANCE_"


def _forwarded_env() -> dict[str, str]:
    """The settings the workers must share with this process: every ``CLEARANCE_*`` variable
    (audit URL or path, cache URL, provider, thresholds). A cluster's nodes were started with
    their own environment, so it travels with each actor. Credentials other than these (an
    ``ANTHROPIC_API_KEY``) are the nodes' own business."""
    return {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIX)}


def check_shared_audit(nodes: int, env: dict[str, str]) -> None:
    """On more than one node, the audit log must be one every node writes to: a SQLite path
    would be a separate file on each node, and no single chain would hold the run."""
    if nodes <= 1 or env.get("CLEARANCE_AUDIT_URL") or env.get("CLEARANCE_NO_AUDIT"):
        return
    raise UserError(
        f"the Ray cluster has {nodes} nodes: set CLEARANCE_AUDIT_URL to a shared audit log "
        "(postgresql://...); a SQLite audit path would be a separate file on each node"
    )


class _Worker:
    """One Ray actor: the engine (gates compiled, model loaded on first use) is built once and
    validates every batch sent to this actor. Wrapped with ``ray.remote`` when a run starts, so
    importing this module does not import Ray."""

    def __init__(self, job: Job, env: dict[str, str], cwd: str) -> None:
        for key in [k for k in os.environ if k.startswith(_ENV_PREFIX)]:
            if key not in env:  # left over from whoever started this worker process
                del os.environ[key]
        os.environ.update(env)
        if os.path.isdir(cwd):  # relative paths mean what they meant to the driver
            os.chdir(cwd)
        self.job = job
        self.engine, self.error = worker_engine(job)
        if self.engine is not None and self.engine.provider.name == "offline":
            # load the model now, once per actor, not inside the first document's time limit
            from engine.providers.offline import load_embedder

            load_embedder()

    def ready(self) -> int:
        return os.getpid()

    def validate(
        self, items: list[tuple[int, str]]
    ) -> list[tuple[int, str | None, str | None, int]]:
        out = []
        for i, path in items:
            _, blob, error, code = work_with(self.engine, self.error, path, self.job)
            out.append((i, blob, error, code))
        return out


@dataclass
class _Slot:
    """A place for one worker; a worker that dies is replaced in its slot."""

    actor: Any
    generation: int = 0
    in_flight: int = 0
    alive: bool = True


@dataclass
class RayStats:
    """What a run cost, for the benchmark and the tests."""

    workers: int = 0
    init_s: float = 0.0  # ray.init (0 when already connected)
    deaths: int = 0  # workers seen dead during the run
    retried: int = 0  # documents sent again after their worker died
    tasks: int = 0
    started_cluster: bool = False
    pids: set[int] = field(default_factory=set)


#: seconds to reach a cluster's address before giving up: Ray itself retries for minutes
CONNECT_TIMEOUT = 5.0


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail fast on a cluster address nothing listens at: ``ray.init`` would otherwise retry
    for many minutes (measured: still waiting after 11 minutes) before saying anything.
    ``auto`` and ``local`` are Ray's own words and are left to it."""
    if address in ("auto", "local"):
        return
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise UserError(
            f"--address must be host:port, ray://host:port, auto or local, got '{address}'"
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address}: {exc}") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray: pip install 'clearance[ray]' (or pip install ray)"
        ) from None
    return ray


class RayExecutor:
    """Validate documents on Ray actors; outcomes in input order, like :func:`engine.batch.run`.

    Documents stream to ``workers`` actors in batches of ``batch_size``, at most
    ``in_flight`` batches per actor at a time, so the driver holds a bounded number of
    pending results however long the run. When an actor dies (its node lost, killed, out of
    memory) its documents are sent again, one per task, to a new actor in its place."""

    def __init__(
        self,
        job: Job,
        *,
        address: str | None = None,
        workers: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        in_flight: int = IN_FLIGHT_PER_WORKER,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.job = job
        self.address = address
        self.wanted = workers
        self.batch_size = max(1, batch_size)
        self.in_flight = max(1, in_flight)
        self.max_attempts = max(1, max_attempts)
        self.stats = RayStats()
        self.slots: list[_Slot] = []
        self._ray: Any = None
        self._actor_cls: Any = None

    # -- the cluster -----------------------------------------------------------------------

    def connect(self) -> Any:
        """Join the cluster at ``address``, or start a local one; reuse a connection already
        made in this process (the tests keep one cluster for the session)."""
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                check_reachable(self.address)
            t0 = time.perf_counter()
            try:
                ray.init(
                    address=self.address or "local",
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,  # the workers' logs stay in the cluster's log folder
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UserError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
            self.stats.init_s = time.perf_counter() - t0
            self.stats.started_cluster = True
        return ray

    def start(self, documents: int) -> list[Any]:
        """Connect and start the actors (not waiting for them to be ready)."""
        ray = self.connect()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        # one CPU each; more actors than CPUs would wait for a CPU that never frees
        n = max(1, min(self.wanted or cpus, cpus, documents))
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_Worker)
        self._env, self._cwd = _forwarded_env(), os.getcwd()
        check_shared_audit(sum(1 for node in ray.nodes() if node.get("Alive")), self._env)
        self.slots = [_Slot(self._new_actor()) for _ in range(n)]
        self.stats.workers = n
        return [s.actor for s in self.slots]

    def _new_actor(self) -> Any:
        return self._actor_cls.remote(self.job, self._env, self._cwd)

    def wait_ready(self) -> None:
        """Block until every actor has built its engine (the benchmark times start-up)."""
        pids = self._ray.get([s.actor.ready.remote() for s in self.slots])
        self.stats.pids.update(pids)

    def close(self) -> None:
        """Stop the actors; shut down a cluster this executor started."""
        ray = self._ray
        if ray is None:
            return
        for s in self.slots:
            with contextlib.suppress(Exception):  # already dead: nothing to stop
                ray.kill(s.actor)
        self.slots = []
        if self.stats.started_cluster:
            ray.shutdown()

    # -- the run ---------------------------------------------------------------------------

    def run(
        self, files: list[Path], on_done: Callable[[Outcome], None] | None = None
    ) -> list[Outcome]:
        if not files:
            return []
        if not self.slots:
            self.start(len(files))
        ray = self._ray
        from ray.exceptions import RayError, RayTaskError

        results: dict[int, Outcome] = {}
        fresh: Iterator[list[tuple[int, str]]] = _chunks(files, self.batch_size)
        retry: deque[tuple[int, str]] = deque()
        attempts: dict[int, int] = {}
        pending: dict[Any, tuple[int, int, list[tuple[int, str]]]] = {}
        replacements = 2 * len(self.slots)  # then the run gives up on a slot

        def finish(out: Outcome, i: int) -> None:
            results[i] = out
            if on_done:
                on_done(out)

        def feed(k: int) -> None:
            slot = self.slots[k]
            while slot.alive and slot.in_flight < self.in_flight:
                # a retried document goes alone: if it is what kills workers, it kills one
                items = [retry.popleft()] if retry else next(fresh, None)
                if not items:
                    return
                ref = slot.actor.validate.remote(items)
                pending[ref] = (k, slot.generation, items)
                slot.in_flight += 1
                self.stats.tasks += 1

        for k in range(len(self.slots)):
            feed(k)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            k, generation, items = pending.pop(ref)
            slot = self.slots[k]
            if generation == slot.generation:
                slot.in_flight -= 1
            try:
                rows = ray.get(ref)
            except RayTaskError as exc:  # a bug in the worker's code: said, per document
                cause = type(exc.cause).__name__ if exc.cause else "error"
                for i, path in items:
                    finish(Outcome(files[i], None, f"{path}: worker failed: {cause}", 4), i)
            except RayError as exc:  # the worker is gone: its documents go again
                if generation == slot.generation:
                    self.stats.deaths += 1
                    slot.generation += 1
                    slot.in_flight = 0
                    if replacements > 0:
                        replacements -= 1
                        slot.actor = self._new_actor()
                    else:
                        slot.alive = False
                for i, path in items:
                    attempts[i] = attempts.get(i, 0) + 1
                    if attempts[i] >= self.max_attempts:
                        why = f"{path}: {attempts[i]} Ray workers died while validating it"
                        finish(Outcome(files[i], None, f"{why} ({type(exc).__name__})", 4), i)
                    else:
                        retry.append((i, path))
                        self.stats.retried += 1
            else:
                for i, blob, error, code in rows:
                    finish(outcome_of(files[i], blob, error, code), i)
            for j in range(len(self.slots)):  # retries go to whichever worker has room
                feed(j)
        # every slot gave up: what is left is said, never dropped
        for i, path in [*retry, *(item for chunk in fresh for item in chunk)]:
            finish(Outcome(files[i], None, f"{path}: no Ray worker left to validate it", 4), i)
        return [results[i] for i in range(len(files))]


def _chunks(files: list[Path], size: int) -> Iterator[list[tuple[int, str]]]:
    for start in range(0, len(files), size):
        yield [(i, str(files[i])) for i in range(start, min(start + size, len(files)))]


def run_ray(
    files: list[Path],
    job: Job,
    *,
    address: str | None = None,
    jobs: int | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """``clearance validate --executor ray``: the whole run, the cluster started and stopped
    here unless this process is already connected to one."""
    executor = RayExecutor(job, address=address, workers=jobs)
    try:
        return executor.run(files, on_done)
    finally:
        executor.close()
