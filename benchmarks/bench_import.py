"""CLI start-up benchmark: import time of `clearance --help`, `validate --help` and `validate` on
a small document, from `python -X importtime`, in fresh interpreters (median of N runs)."""

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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: the budget of issue 18: import time of --help and of validating a small file
BUDGET_MS = 400.0
# What the `clearance` console script runs.
ENTRY = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
SMALL = "We collect your email address to send you our newsletter.\n"
# `import time: self | cumulative | name`, the name indented two spaces per level of nesting
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)")


def parse_importtime(stderr: str) -> tuple[float, dict[str, float]]:
    """Total import time (ms: the cumulative times of the outermost imports, which include
    everything nested) and each outermost import's cumulative ms."""
    top: dict[str, float] = {}
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m and not m.group(2):
            top[m.group(3)] = top.get(m.group(3), 0.0) + int(m.group(1)) / 1000
    return sum(top.values()), top


def run_once(
    args: list[str], env: dict[str, str], root: Path = ROOT
) -> tuple[float, float, dict[str, float]]:
    """One fresh interpreter: (import ms, wall-clock ms of the whole process, top imports)."""
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
    return total, wall, top


def measure(runs: int = 7, root: Path = ROOT) -> list[dict[str, Any]]:
    """Median and minimum import and wall-clock time of each scenario over ``runs`` runs."""
    with tempfile.TemporaryDirectory() as home:
        doc = Path(home) / "notice.txt"
        doc.write_text(SMALL, encoding="utf-8")
        # A fresh Clearance home (the audit log is written, as by default); no model is asked,
        # so the time is the start-up, not a provider's.
        env = {**os.environ, "CLEARANCE_HOME": home, "CLEARANCE_PROVIDER": "none"}
        scenarios = {
            "clearance --help": ["--help"],
            "clearance validate --help": ["validate", "--help"],
            "clearance validate notice.txt": ["validate", str(doc)],
        }
        rows = []
        for label, args in scenarios.items():
            run_once(args, env, root)  # warm the OS file cache and the .pyc files, not measured
            samples = [run_once(args, env, root) for _ in range(runs)]
            imports = [s[0] for s in samples]
            median_run = sorted(samples, key=lambda s: s[0])[len(samples) // 2]
            heaviest = sorted(median_run[2].items(), key=lambda kv: -kv[1])[:5]
            rows.append(
                {
                    "command": label,
                    "import_ms_median": round(statistics.median(imports), 1),
                    "import_ms_min": round(min(imports), 1),
                    "wall_ms_median": round(statistics.median(s[1] for s in samples), 1),
                    "within_budget": statistics.median(imports) <= BUDGET_MS,
                    "heaviest_imports_ms": {k: round(v, 1) for k, v in heaviest},
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=7, help="measured runs per command")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument(
        "--root", type=Path, default=ROOT, help="source tree to measure (e.g. another checkout)"
    )
    ap.add_argument(
        "--check", action="store_true", help=f"exit 1 if a median is over {BUDGET_MS:g} ms"
    )
    opts = ap.parse_args(argv)
    rows = measure(opts.runs, opts.root)
    if opts.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"CLI import time (python -X importtime; median of {opts.runs} fresh runs, ms)")
        print(f"{'command':<32} {'import':>8} {'min':>8} {'wall':>8}  budget {BUDGET_MS:g} ms")
        for r in rows:
            print(
                f"{r['command']:<32} {r['import_ms_median']:>8.1f} {r['import_ms_min']:>8.1f} "
                f"{r['wall_ms_median']:>8.1f}  {'ok' if r['within_budget'] else 'OVER'}"
            )
            heavy = ", ".join(f"{k} {v:.0f}" for k, v in r["heaviest_imports_ms"].items())
            print(f"  heaviest: {heavy}")
    return 1 if opts.check and not all(r["within_budget"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
