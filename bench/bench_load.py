"""Benchmark 1-2: cold load + validate vs ruamel.yaml round-trip, and the warm pass.

    python3 bench/bench_load.py [--builds 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.timing import median_time, peak_rss_mb  # noqa: E402
from reconciler.source.loading import Loader  # noqa: E402


def ruamel_load_all(repo: Path) -> int:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    count = 0
    for path in sorted(repo.rglob("*.yaml")):
        with open(path, encoding="utf-8") as fh:
            count += len(list(yaml.load_all(fh)))
    return count


def run(quick: bool = False, builds: int | None = None, runs: int | None = None) -> dict:
    builds = builds or (1_000 if quick else 10_000)
    runs = runs or (1 if quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", builds)
        cold = median_time(lambda: Loader().load_revision(str(repo), "HEAD"), runs)
        cold_dir = median_time(lambda: Loader().load_directory(str(repo)), runs)
        loader = Loader()
        snap = loader.load_revision(str(repo), "HEAD")
        assert snap.valid, [str(p) for p in snap.errors[:5]]
        warm = median_time(lambda: loader.load_revision(str(repo), "HEAD"), runs * 3)
        dloader = Loader()
        dloader.load_directory(str(repo))
        warm_dir = median_time(lambda: dloader.load_directory(str(repo)), runs * 3)
        ruamel = median_time(lambda: ruamel_load_all(repo), 1 if quick else 3)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "reconciler", "--help"], capture_output=True, check=True)
        help_s = time.perf_counter() - start
    return {
        "builds": builds,
        "cold_rev_s": round(cold, 3),
        "cold_dir_s": round(cold_dir, 3),
        "warm_rev_ms": round(warm * 1000, 1),
        "warm_dir_ms": round(warm_dir * 1000, 1),
        "ruamel_roundtrip_s": round(ruamel, 3),
        "ratio_vs_ruamel": round(ruamel / cold, 1),
        "help_s": round(help_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds, runs=args.runs), indent=2))
