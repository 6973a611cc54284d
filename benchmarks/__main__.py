"""`make bench`: the speed benchmark, then the detectors' held-out accuracy and time per KB
(others: `python -m benchmarks.bench_<name>`)."""

from benchmarks.bench_detectors import main as detectors
from benchmarks.bench_speed import main

code = main()
print()
raise SystemExit(code or detectors([]))
