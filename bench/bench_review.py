"""Benchmark 4: `review` of a 50-build PR on a 10,000-build repository (no clusters).

    python3 bench/bench_review.py [--builds 10000] [--changed 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.timing import median_time, peak_rss_mb  # noqa: E402


def _pr(repo: Path, changed: int) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
           "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-b", "pr"], check=True)
    files = sorted((repo / "builds").rglob("*.yaml"))[:changed]
    for path in files:
        path.write_text(path.read_text().replace(":1.0\n", ":1.1\n"))
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", f"bump {changed} builds"], check=True, env=env)


def run(quick: bool = False, builds: int | None = None, changed: int = 50) -> dict:
    from reconciler.reviewing import review

    builds = builds or (1_000 if quick else 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        repo = generate(Path(tmp) / "repo", builds)
        _pr(repo, changed)
        result = review(str(repo), "main", "pr")
        assert len(result.selections) == changed, len(result.selections)
        seconds = median_time(lambda: review(str(repo), "main", "pr"), 1 if quick else 3)
    return {"builds": builds, "changed_builds": changed, "review_s": round(seconds, 3),
            "plan_changes": len(result.plan.changes), "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds, changed=args.changed), indent=2))
