"""`make bench`: the speed benchmark, the detectors' held-out accuracy and time per KB, then the
semantic layer's cost (offline judge against provider `none`; needs ../shared/corpus/gdpr-t200),
the CLI's start-up import time, then batch executors and cache stores (bench_batch; others:
`python -m benchmarks.bench_<name>`)."""

import json

from benchmarks.bench_detectors import main as detectors
from benchmarks.bench_import import main as import_time
from benchmarks.bench_semantic import DEFAULT_CORPUS, speed
from benchmarks.bench_speed import main

code = main()
print()
code = code or detectors([])
print()
if DEFAULT_CORPUS.is_dir():
    print("semantic layer (ten GDPR-T-200 policies, a 1 MB notice, an edited paragraph):")
    print(json.dumps(speed(DEFAULT_CORPUS), indent=2))
else:
    print(f"semantic layer: skipped ({DEFAULT_CORPUS} not found)")
print()
import_time(["--runs", "5"])  # reported, not enforced: timings vary with the machine's load
print()
print("batch executors (process pool, Ray) and cache stores (disk, Redis):")
try:
    import ray  # noqa: F401
except ImportError:
    print("skipped: ray is not installed (pip install -e '.[ray]')")
else:
    from benchmarks.bench_batch import main as batch

    code = code or batch([])
raise SystemExit(code)
