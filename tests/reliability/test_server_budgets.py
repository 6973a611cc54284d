"""Server budgets (issue 16, part 1) on a real uvicorn server: a validation past its deadline is
answered 504 AND stops working, is never recorded, and too many at once get 503 + Retry-After."""

from __future__ import annotations

import json
import resource
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import LiveServers
from engine.api import Engine
from engine.audit import AuditLog
from engine.providers.base import NullProvider
from engine.server import GroupCommitAudit, Settings, create_app

#: one check that matches every letter: ~150,000 matches, several seconds when not stopped
GATES = """module heavy { title "Heavy" version "1" }
gate HEAVY-1 letters { title "t" cite "x" forbid regex /[a-z ]/ example pass "1." example fail "a" }
gate HEAVY-2 pairs { title "t" cite "x" forbid regex /[a-z][a-z ]/ example pass "1." example fail "ab" }
gate HEAVY-3 words { title "t" cite "x" forbid regex /[a-z]+ / example pass "1." example fail "ab " }
"""
HEAVY = ("lorem ipsum dolor sit amet " * 6000)[:150_000]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _validating() -> list[str]:
    """Threads whose stack is inside the engine's evaluation or a check right now."""
    busy = []
    for ident, frame in sys._current_frames().items():
        f = frame
        while f is not None:
            path = f.f_code.co_filename.replace("\\", "/")
            if path.endswith(("engine/evaluate.py", "gates/regex.py", "gates/scan.py")):
                busy.append(str(ident))
                break
            f = f.f_back
    return busy


@pytest.fixture
def heavy_server(tmp_path: Path) -> Iterator:
    """Start a server over the heavy module with the given settings; stopped at the end."""
    (tmp_path / "heavy").mkdir()
    (tmp_path / "heavy" / "heavy.gates").write_text(GATES, encoding="utf-8")
    servers, sinks = LiveServers(), []

    def start(**settings: object):  # type: ignore[no-untyped-def]
        sink = GroupCommitAudit(AuditLog(tmp_path / f"audit{len(sinks)}.db"))
        sinks.append(sink)
        engine = Engine(
            gate_paths=[tmp_path / "heavy"],
            include_builtin=False,
            cache=None,
            audit=sink,
            provider=NullProvider(),
        )
        app = create_app(engine, settings=Settings(auth=False, **settings))  # type: ignore[arg-type]
        return servers.start(app), app.state.clearance, sink

    yield start
    servers.close()
    for sink in sinks:
        sink.close()


def test_a_timed_out_validation_stops_and_is_not_recorded(heavy_server) -> None:
    url, state, sink = heavy_server(timeout_s=0.5, threads=1)
    with httpx.Client(base_url=url, timeout=30) as c:
        t0 = time.monotonic()
        r = c.post("/v1/validate", json={"text": HEAVY, "name": "heavy.txt"})
        answered = time.monotonic() - t0
        assert r.status_code == 504, r.text
        assert "0.5 s" in r.json()["detail"] and answered < 2.0
        # the work itself stops: the thread winds down within about a second and then the
        # process burns no more CPU (before, it went on for the full uncut validation)
        waited = time.monotonic()
        while state.running and time.monotonic() - waited < 5:
            time.sleep(0.02)
        stopped_after = time.monotonic() - waited
        assert state.running == 0 and stopped_after < 1.5, stopped_after
        assert not _validating(), "a thread is still evaluating the abandoned document"
        cpu0 = _cpu()
        time.sleep(1.0)
        assert _cpu() - cpu0 < 0.15, f"{_cpu() - cpu0:.2f} s of CPU after the work stopped"
        # a validation that is answered is recorded; the one that timed out never is
        ok = c.post("/v1/validate", json={"text": "short note", "name": "ok.txt"})
        assert ok.status_code == 200, ok.text
    rows = sink.log.recent(10)
    assert [row["doc_name"] for row in rows] == ["ok.txt"]


def test_too_many_validations_get_503_with_retry_after(heavy_server) -> None:
    url, state, _ = heavy_server(timeout_s=0.8, threads=1, max_inflight=2, retry_after_s=3)
    statuses: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            got = c.post("/v1/validate", json={"text": HEAVY, "name": "heavy.txt"})
        with lock:
            statuses.append(got)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in statuses)
    assert codes == [503, 503, 504, 504], codes
    busy = next(r for r in statuses if r.status_code == 503)
    assert busy.headers["retry-after"] == "3"
    assert busy.headers["content-type"].startswith("application/problem+json")
    assert "too many validations" in busy.json()["detail"]
    until = time.monotonic() + 5
    while state.running and time.monotonic() < until:
        time.sleep(0.02)
    assert state.running == 0  # every admitted validation, even the abandoned, was counted out


def test_the_deadline_also_stops_the_engine_between_and_inside_checks(tmp_path: Path) -> None:
    """The same deadline in-process (what a CLI or any caller opens with deadline_scope)."""
    from engine.budget import Deadline, DeadlineExceeded, deadline_scope
    from engine.ingest import document_from_text

    (tmp_path / "heavy").mkdir()
    (tmp_path / "heavy" / "heavy.gates").write_text(GATES, encoding="utf-8")
    engine = Engine(
        gate_paths=[tmp_path / "heavy"],
        include_builtin=False,
        cache=None,
        audit=None,
        provider=NullProvider(),
    )
    doc = document_from_text(HEAVY * 3, name="heavy.txt")
    t0 = time.monotonic()
    with deadline_scope(Deadline.after(0.3)), pytest.raises(DeadlineExceeded, match="0.3 s"):
        engine.validate(doc)
    assert time.monotonic() - t0 < 1.5


def test_a_verdict_the_client_hung_up_on_is_not_recorded(heavy_server) -> None:
    url, state, sink = heavy_server(timeout_s=30, threads=1)
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"text": HEAVY[:20_000], "name": "gone.txt"}).encode()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(
            b"POST /v1/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        until = time.monotonic() + 10
        while not state.running and time.monotonic() < until:
            time.sleep(0.01)
        assert state.running == 1  # the validation is under way when the client hangs up
    until = time.monotonic() + 30
    while state.running and time.monotonic() < until:
        time.sleep(0.02)
    time.sleep(0.3)  # the handler decides after its thread is done
    with httpx.Client(base_url=url, timeout=30) as c:
        assert (
            c.post("/v1/validate", json={"text": "short note", "name": "ok.txt"}).status_code == 200
        )
    assert [row["doc_name"] for row in sink.log.recent(10)] == ["ok.txt"]
