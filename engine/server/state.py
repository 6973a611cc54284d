"""The HTTP API's settings and its running state (engine, key store, validation threads)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api import Engine
from engine.audit import AuditLog
from engine.config import resolve_config
from engine.keys import KeyStore
from engine.server.group_commit import GroupCommitAudit
from engine.server.problems import ApiProblem

DEFAULT_MAX_DOCUMENT = 5 * 1024 * 1024
DEFAULT_MAX_BODY = 8 * 1024 * 1024  # a document plus multipart/JSON overhead
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_INFLIGHT = 64
DEFAULT_THREADS = 4
DEFAULT_RETRY_AFTER_S = 2


@dataclass
class Settings:
    """The server's limits, from `clearance serve`'s options (see :meth:`from_env`)."""

    auth: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT
    #: the deadline of one validation, from the moment its body is read: past it the client
    #: gets 504 and the work stops at its next check (engine.budget)
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: validations admitted and not yet finished (queued, running, or abandoned by a 504 and
    #: still winding down) before new ones get 503 with Retry-After
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    threads: int = DEFAULT_THREADS
    retry_after_s: int = DEFAULT_RETRY_AFTER_S

    @classmethod
    def from_env(cls) -> Settings:
        """What `clearance serve` hands each uvicorn worker (workers are separate processes)."""
        env = os.environ.get
        return cls(
            auth=env("CLEARANCE_SERVE_NO_AUTH", "") != "1",
            max_body_bytes=int(env("CLEARANCE_SERVE_MAX_BODY", DEFAULT_MAX_BODY)),
            max_document_bytes=int(env("CLEARANCE_SERVE_MAX_DOCUMENT", DEFAULT_MAX_DOCUMENT)),
            timeout_s=float(env("CLEARANCE_SERVE_TIMEOUT", DEFAULT_TIMEOUT_S)),
            max_inflight=int(env("CLEARANCE_SERVE_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT)),
            threads=int(env("CLEARANCE_SERVE_THREADS", DEFAULT_THREADS)),
            retry_after_s=int(env("CLEARANCE_SERVE_RETRY_AFTER", DEFAULT_RETRY_AFTER_S)),
        )


class ServerState:
    """What one app holds while it runs (``app.state.clearance``): the engine, the key store,
    the validation thread pool and the count of validations in flight."""

    def __init__(
        self,
        engine: Engine | None,
        keys: KeyStore | None,
        settings: Settings,
        gate_paths: list[str],
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.settings = settings
        self.gate_paths = gate_paths
        #: validations admitted and not finished: counted down when their thread ends (or their
        #: queued job is cancelled), not when their request is answered, so work abandoned by a
        #: 504 still counts against max_inflight until it has really stopped
        self.running = 0
        self._count = threading.Lock()
        # CPU-bound work under the GIL: more threads than this only time-slice each other and
        # grow the tail latency; waiting validations queue in order instead. A thread whose
        # request was answered 504 keeps its worker until it reaches its next deadline check,
        # so abandoned work can never occupy more than `threads` threads.
        self.pool = ThreadPoolExecutor(settings.threads, thread_name_prefix="validate")
        self.owned: list[Any] = []  # what this app opened and must close

    def start(self) -> None:
        """Build what was not given (engine, audit sink, key store) and compile the gates."""
        if self.engine is None:
            from engine.audit import audit_disabled

            audit: Any = None
            if not audit_disabled():
                audit = GroupCommitAudit(AuditLog())
                self.owned.append(audit)
            # the project settings: CLEARANCE_CONFIG, else the nearest clearance.toml
            named = os.environ.get("CLEARANCE_CONFIG")
            config = resolve_config(Path(named) if named else None)
            self.engine = Engine(
                gate_paths=[*self.gate_paths, *map(str, config.gates)],
                audit=audit,
                max_bytes=self.settings.max_document_bytes,
                config=config,
            )
        if self.keys is None and self.settings.auth:
            self.keys = KeyStore()
            self.owned.append(self.keys)
        # Compile the gates and build the provider now, not on the first request.
        self.engine.ruleset(None)
        _ = self.engine.provider

    def admit(self) -> bool:
        """Count in one more validation, unless max_inflight are already in flight."""
        with self._count:
            if self.running >= self.settings.max_inflight:
                return False
            self.running += 1
            return True

    def finished(self, _: object = None) -> None:
        with self._count:
            self.running -= 1

    def stop(self) -> None:
        """Stop taking work and close what this app opened."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for thing in self.owned:
            thing.close()

    def running_engine(self) -> Engine:
        """The engine (built by :meth:`start`, which runs before the first request)."""
        assert self.engine is not None
        return self.engine

    def audit_log(self) -> AuditLog:
        """The audit log the engine records to; 503 when this server runs without one."""
        audit = self.engine.audit if self.engine else None
        audit = getattr(audit, "log", audit)
        if not isinstance(audit, AuditLog):
            raise ApiProblem(
                503,
                "Service unavailable",
                "the audit log is disabled on this server (CLEARANCE_NO_AUDIT)",
                kind="audit-disabled",
            )
        return audit
