"""`python -m bench [--quick] [--only NAME ...] [--json FILE]`: the product's benchmarks, one table.

Each benchmark is a module `bench/bench_<name>.py` with a `run(quick: bool) -> dict` that
returns its figures (seconds as `*_s`, milliseconds as `*_ms`, ratios as `ratio_*`). Figures
are medians of several runs; comparisons with other tools are measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer runs (under a minute)")
    parser.add_argument("--only", nargs="*", default=None, help=f"benchmarks to run (of: {', '.join(available())})")
    parser.add_argument("--json", default="bench/results/latest.json", help="where to write the figures")
    args = parser.parse_args(argv)
    results = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    failed = 0
    for name in args.only or available():
        module = importlib.import_module(f"bench.bench_{name}")
        if not hasattr(module, "run"):
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            results["benchmarks"][name] = module.run(quick=args.quick)
        except Exception as exc:  # a benchmark that cannot run (no control plane) is reported, not fatal
            failed += 1
            results["benchmarks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(table(results))
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"\nfigures written to {args.json}", file=sys.stderr)
    return 1 if failed else 0


def table(results: dict) -> str:
    rows = [("benchmark", "figure", "value")]
    for name, figures in results["benchmarks"].items():
        for key, value in figures.items():
            rows.append((name, key, str(value)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
