"""`make bench`: the speed benchmark (others: `python -m benchmarks.bench_<name>`)."""

from benchmarks.bench_speed import main

raise SystemExit(main())
