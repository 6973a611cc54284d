"""Manifests (CSV or JSONL lists of paths) for runs too large for a command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLES, write
from engine.batch import read_manifest
from engine.errors import UserError


def test_jsonl_and_csv_manifests(tmp_path: Path) -> None:
    jsonl = write(
        tmp_path / "m" / "run.jsonl",
        '{"path": "docs/a.md", "owner": "legal"}\n\n"docs/b.txt"\n"/abs/c.md"\n',
    )
    base = tmp_path / "m"
    assert read_manifest(jsonl) == [base / "docs/a.md", base / "docs/b.txt", Path("/abs/c.md")]
    with_header = write(base / "run.csv", "id,path\n1,docs/a.md\n2, docs/b.txt \n,\n")
    assert read_manifest(with_header) == [base / "docs/a.md", base / "docs/b.txt"]
    bare = write(base / "bare.csv", "docs/a.md\ndocs/b.txt\n")
    assert read_manifest(bare) == [base / "docs/a.md", base / "docs/b.txt"]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.jsonl", '"a.md"\n{not json\n', "m.jsonl:2: not a JSON line"),
        ("m.jsonl", '{"file": "a.md"}\n', 'm.jsonl:1: expected a path string or {"path": ...}'),
        ("m.csv", "path,id\n,3\n", "m.csv:2: no path in column 1"),
        ("m.txt", "a.md\n", "unknown manifest format '.txt' (expected one of: .csv, .jsonl)"),
    ],
)
def test_bad_manifests_say_where(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(UserError, match=None) as err:
        read_manifest(write(tmp_path / name, text))
    assert message in str(err.value)


def test_cli_manifest_with_the_local_executor(tmp_path: Path, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("CLEARANCE_PROVIDER", "none")
    manifest = write(
        tmp_path / "run.csv", f"path\n{SAMPLES / 'engineering-memo.md'}\n{SAMPLES / 'nope.md'}\n"
    )
    code, out, err = run_cli("validate", "--manifest", manifest, "-j", "1")
    assert code == 2 and "SEC-001" in out and "nope.md" in err  # a missing file is an input error
    code, _, err = run_cli("validate", "--manifest", tmp_path / "missing.jsonl")
    assert code == 2 and "cannot read manifest" in err
    code, _, err = run_cli("validate")
    assert code == 2 and "--manifest" in err
    code, _, err = run_cli("validate", SAMPLES / "engineering-memo.md", "--executor", "spark")
    assert code == 2 and "local, ray" in err


def test_a_multi_node_ray_cluster_needs_a_shared_audit_log() -> None:
    from engine.batch_ray import check_shared_audit

    check_shared_audit(1, {})  # one node: its SQLite file is the run's log
    check_shared_audit(3, {"CLEARANCE_AUDIT_URL": "postgresql://db/clearance"})
    check_shared_audit(3, {"CLEARANCE_NO_AUDIT": "1"})
    with pytest.raises(UserError, match="3 nodes: set CLEARANCE_AUDIT_URL"):
        check_shared_audit(3, {"CLEARANCE_AUDIT_DB": "/data/audit.db"})


def test_an_unreachable_ray_address_fails_fast_with_a_clear_error() -> None:
    import socket

    from engine.batch_ray import check_reachable

    with socket.socket() as s:  # a port nothing listens at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(UserError, match="--address must be host:port"):
        check_reachable("head-node")
    check_reachable("auto")  # Ray's own
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_reachable(f"ray://127.0.0.1:{listening.getsockname()[1]}")
