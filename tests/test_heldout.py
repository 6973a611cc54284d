"""The held-out verdict set (data/corpus/frozen, frozen before any gate ran on it) stays at least
as well judged as the numbers published in docs/accuracy.md, and no document the engine cannot
type is ever passed."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT

FROZEN = ROOT / "data" / "corpus" / "frozen"
#: the published results (docs/accuracy.md, "Verdicts on documents the gates never saw"): a
#: change that makes them worse fails here; one that makes them better should update both.
PUBLISHED = {
    "told": {"false alarm": 0, "missed": 2},
    "newcomer": {"false alarm": 1, "missed": 1},
}


@pytest.fixture(scope="module")
def heldout(run_cli_module):
    code, out, err = run_cli_module("eval", "--heldout", FROZEN, "--format", "json")
    assert code == 0, err
    return json.loads(out)["heldout"]


@pytest.fixture(scope="module")
def run_cli_module():
    from engine.cli import main

    def run(*args):
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
        return code, out.getvalue(), err.getvalue()

    return run


@pytest.mark.parametrize("mode", ["told", "newcomer"])
def test_no_worse_than_published(heldout, mode):
    counts = heldout["counts"][mode]
    assert sum(counts["compliant"].values()) == 27 and sum(counts["defect"].values()) == 27
    assert counts["compliant"].get("false alarm", 0) <= PUBLISHED[mode]["false alarm"], counts
    assert counts["defect"].get("missed", 0) <= PUBLISHED[mode]["missed"], counts


def test_an_untyped_document_never_passes(heldout):
    untyped = [o for o in heldout["outcomes"] if o["mode"] == "newcomer" and o["inferred"] is None]
    assert all(o["exit_code"] != 0 for o in untyped), untyped


def test_the_set_is_still_frozen():
    import hashlib

    for line in (FROZEN / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        assert hashlib.sha256((FROZEN / name.strip()).read_bytes()).hexdigest() == digest, name
