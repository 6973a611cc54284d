"""Group commit for the audit log: concurrent validations share one transaction (one fsync)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from engine.audit import AuditLog
from engine.errors import ServiceError
from engine.hooks import GateSource
from engine.report import Report, Waiver


class GroupCommitAudit:
    """An audit sink for a busy server: concurrent validations wait for one shared commit.

    Each caller still waits until its own row is durably written (or gets the error), so no
    validation is answered unrecorded; a writer thread commits whatever queued meanwhile in one
    transaction, so 100 concurrent requests cost one fsync, not 100.

    Inside :meth:`deferred`, :meth:`record` does not write at all: the row is held, and the
    request handler submits it (:meth:`submit`) and awaits the commit on the event loop, only once it
    knows the verdict will be answered. A validation that ran past its deadline (answered 504)
    is then never recorded: no row carries a verdict nobody received. A validation thread is
    free for the next request while the row is being committed, so a few threads keep many
    commits in flight (and batches grow with the load)."""

    MAX_BATCH = 256

    def __init__(self, audit: AuditLog) -> None:
        self.log = audit
        self._local = threading.local()
        self._closed = False
        self._lock = threading.Lock()
        self._q: queue.SimpleQueue[tuple[Report, str, list[GateSource], Future[int]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def record(self, report: Report, *, principal: str, gates: list[GateSource]) -> int:
        held = getattr(self._local, "held", None)
        if held is not None:
            held.append((report, principal, gates))
            return 0  # the id is not known yet: the caller submits the row, then awaits it
        return self.submit([(report, principal, gates)])[0].result()

    def submit(self, rows: list[tuple[Report, str, list[GateSource]]]) -> list[Future[int]]:
        """Queue rows for the next group commit; returns their futures (ids or errors)."""
        futures: list[Future[int]] = []
        with self._lock:  # nothing is queued behind the shutdown marker
            if self._closed:
                raise ServiceError("the audit log was closed; the validation was not recorded")
            for report, principal, gates in rows:
                fut: Future[int] = Future()
                fut.set_running_or_notify_cancel()  # a waiter that gives up cannot cancel it
                self._q.put((report, principal, gates, fut))
                futures.append(fut)
        return futures

    @contextmanager
    def deferred(self) -> Iterator[list[tuple[Report, str, list[GateSource]]]]:
        """Records made by this thread inside the block are held, not written; the list
        yielded collects them, and the caller MUST :meth:`submit` them and wait for the
        futures before answering (or drop them: the verdict was not delivered)."""
        held: list[tuple[Report, str, list[GateSource]]] = []
        self._local.held = held
        try:
            yield held
        finally:
            self._local.held = None

    def waivers_for(self, doc_sha256: str) -> dict[str, Waiver]:
        return self.log.waivers_for(doc_sha256)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._q.put(None)
        self._thread.join(timeout=10)
        self.log.close()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            # Anything queued after shutdown gets an error, never an endless wait.
            while True:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[3].set_exception(
                        ServiceError("the audit log was closed; the validation was not recorded")
                    )

    def _loop(self) -> None:
        while True:
            first = self._q.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._q.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[Report, str, list[GateSource], Future[int]]]) -> None:
        try:
            ids = self.log.record_many([(r, p, g) for r, p, g, _ in batch])
        except Exception:
            # One bad record must not fail its neighbours: retry each alone.
            for r, p, g, fut in batch:
                try:
                    fut.set_result(self.log.record(r, principal=p, gates=g))
                except Exception as exc:
                    fut.set_exception(exc)
            return
        for (_, _, _, fut), rid in zip(batch, ids, strict=True):
            fut.set_result(rid)
