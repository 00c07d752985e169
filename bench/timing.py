"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import resource
import statistics
import time
from typing import Callable


def median_time(fn: Callable[[], object], runs: int = 5, setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(runs):
        if setup:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
