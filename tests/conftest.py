"""Shared fixtures: every test runs with its own Clearance home (cache, audit DB) in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

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
