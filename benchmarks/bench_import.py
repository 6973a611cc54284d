"""CLI start-up benchmark: import time of `clearance --help`, `validate --help` and `validate` on
a small document, from `python -X importtime`, in fresh interpreters (median of N runs); with
``--baseline DIR``, another checkout measured in interleaved runs (before/after under the same
load)."""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: the budget of issue 18: import time of --help and of validating a small file
BUDGET_MS = 400.0
# What the `clearance` console script runs.
ENTRY = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
SMALL = "We collect your email address to send you our newsletter.\n"
# `import time: self | cumulative | name`, the name indented two spaces per level of nesting
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


@dataclass
class Sample:
    """One fresh interpreter's run."""

    import_ms: float  # the cumulative times of the outermost imports (everything nested)
    self_ms: float  # the sum of every module's self time (the same, measured the other way)
    modules: int  # modules imported (does not depend on the machine's load)
    wall_ms: float  # the whole process, start to exit
    top: dict[str, float]  # each outermost import's cumulative ms


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """Total import time (ms: the cumulative times of the outermost imports, which include
    everything nested) and each outermost import's cumulative ms."""
    top: dict[str, float] = {}
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m and not m.group(3):
            top[m.group(4)] = top.get(m.group(4), 0.0) + int(m.group(2)) / 1000
    return sum(top.values()), top


def _self_and_count(stderr: str) -> tuple[float, int]:
    matches = [m for m in map(_LINE.match, stderr.splitlines()) if m]
    return sum(int(m.group(1)) for m in matches) / 1000, len(matches)


def run_once(args: list[str], env: dict[str, str], root: Path = ROOT) -> Sample:
    """One fresh interpreter running ``clearance ARGS`` from the source tree ``root``."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *args],
        cwd=root,  # the working directory comes first on sys.path: that tree's code is measured
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = (time.perf_counter() - start) * 1000
    if proc.returncode not in (0, 1, 3):  # 1 and 3 are verdicts; anything else is a failure
        raise SystemExit(f"clearance {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    total, top = parse_importtime(proc.stderr)
    self_ms, count = _self_and_count(proc.stderr)
    return Sample(total, self_ms, count, wall, top)


def _row(label: str, tree: str, samples: list[Sample]) -> dict[str, Any]:
    imports = [s.import_ms for s in samples]
    median_run = sorted(samples, key=lambda s: s.import_ms)[len(samples) // 2]
    heaviest = sorted(median_run.top.items(), key=lambda kv: -kv[1])[:5]
    return {
        "command": label,
        "tree": tree,
        "import_ms_median": round(statistics.median(imports), 1),
        "import_ms_min": round(min(imports), 1),
        "self_ms_median": round(statistics.median(s.self_ms for s in samples), 1),
        "modules": median_run.modules,
        "wall_ms_median": round(statistics.median(s.wall_ms for s in samples), 1),
        "within_budget": statistics.median(imports) <= BUDGET_MS,
        "heaviest_imports_ms": {k: round(v, 1) for k, v in heaviest},
    }


def measure(runs: int = 7, root: Path = ROOT, baseline: Path | None = None) -> list[dict[str, Any]]:
    """Median and minimum import and wall-clock time of each scenario over ``runs`` runs; with
    a ``baseline`` tree, each of its runs right before the same run of ``root``."""
    trees = {"baseline": baseline, "this": root} if baseline else {"this": root}
    with tempfile.TemporaryDirectory() as home:
        doc = Path(home) / "notice.txt"
        doc.write_text(SMALL, encoding="utf-8")
        # A fresh Clearance home (the audit log and the cache are written, as by default).
        # Bytecode is written (and then read) as by an installed package: with
        # PYTHONDONTWRITEBYTECODE every run would compile the project's sources again and
        # count that as import time.
        drop = {"ANTHROPIC_API_KEY", "PYTHONDONTWRITEBYTECODE"}
        base = {k: v for k, v in os.environ.items() if k not in drop}
        base["CLEARANCE_HOME"] = home
        none = {**base, "CLEARANCE_PROVIDER": "none"}  # no model: the start-up alone
        offline = {**base, "CLEARANCE_PROVIDER": "offline"}  # the default provider
        scenarios = {
            "clearance --help": (["--help"], none),
            "clearance validate --help": (["validate", "--help"], none),
            "clearance validate notice.txt": (["validate", str(doc)], none),
            "validate notice.txt, offline": (["validate", str(doc)], offline),
        }
        rows: list[dict[str, Any]] = []
        for label, (args, env) in scenarios.items():
            samples: dict[str, list[Sample]] = {name: [] for name in trees}
            for tree in trees.values():
                assert tree is not None
                run_once(args, env, tree)  # warm the OS file cache and the .pyc files
            for _ in range(runs):
                for name, tree in trees.items():
                    assert tree is not None
                    samples[name].append(run_once(args, env, tree))
            rows.extend(_row(label, name, samples[name]) for name in trees)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7, help="measured runs per command")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument(
        "--root", type=Path, default=ROOT, help="source tree to measure (e.g. another checkout)"
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another source tree (e.g. `git archive` of an older commit), measured in turn",
    )
    ap.add_argument(
        "--check", action="store_true", help=f"exit 1 if a median is over {BUDGET_MS:g} ms"
    )
    opts = ap.parse_args(argv)
    rows = measure(opts.runs, opts.root, opts.baseline)
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"CLI import time (python -X importtime; median of {opts.runs} fresh runs, ms)")
        print(
            f"{'command':<31} {'tree':<8} {'import':>7} {'min':>7} {'self':>7} {'modules':>7} "
            f"{'wall':>7}  budget {BUDGET_MS:g} ms"
        )
        for r in rows:
            print(
                f"{r['command']:<31} {r['tree']:<8} {r['import_ms_median']:>7.1f} "
                f"{r['import_ms_min']:>7.1f} {r['self_ms_median']:>7.1f} {r['modules']:>7} "
                f"{r['wall_ms_median']:>7.1f}  {'ok' if r['within_budget'] else 'OVER'}"
            )
            heavy = ", ".join(f"{k} {v:.0f}" for k, v in r["heaviest_imports_ms"].items())
            print(f"  heaviest: {heavy}")
    mine = [r for r in rows if r["tree"] == "this"]
    return 1 if opts.check and not all(r["within_budget"] for r in mine) else 0


if __name__ == "__main__":
    raise SystemExit(main())
