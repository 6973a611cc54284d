"""Shared fixtures: every test runs with its own Clearance home (cache, audit DB) in tmp_path."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"


@pytest.fixture(autouse=True)
def clearance_home(tmp_path_factory, monkeypatch) -> Path:
    """Point every runtime file (cache, audit DB) at a fresh folder, and keep the real API and any
    operator settings out of the tests."""
    home = tmp_path_factory.mktemp("clearance-home")
    monkeypatch.setenv("CLEARANCE_HOME", str(home))
    for var in (
        "CLEARANCE_CACHE_DIR",
        "CLEARANCE_AUDIT_DB",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "CLEARANCE_PROVIDER",
        "CLEARANCE_NO_CACHE",
        "CLEARANCE_NO_AUDIT",
        "CLEARANCE_STORE_RAW_TEXT",
        "CLEARANCE_ALLOW_RAW_TEXT",
        "CLEARANCE_LIB_PATH",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def run_cli(capsys):
    """Run the real CLI entry point in-process; returns (exit code, stdout, stderr)."""
    from engine.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class LiveServers:
    """Real uvicorn servers on free loopback ports, each in a background thread, for the tests
    that talk HTTP; ``close`` stops every one it started."""

    def __init__(self) -> None:
        self.running: list[tuple[Any, threading.Thread]] = []

    def start(self, app: Any) -> str:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        until = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < until, "server did not start"
            time.sleep(0.02)
        self.running.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for server, thread in self.running:
            server.should_exit = True
            thread.join(timeout=10)
        self.running.clear()


@pytest.fixture(autouse=True)
def _no_operator_cache_url(monkeypatch):
    """A developer's CLEARANCE_CACHE_URL (a shared Redis) stays out of the tests: the tests
    that use Redis start their own (tests/redis_server.py)."""
    for var in ("CLEARANCE_CACHE_URL", "CLEARANCE_CACHE_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
