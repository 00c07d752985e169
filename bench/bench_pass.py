"""Benchmarks 2 and 3: a reconcile pass over a 10,000-build repository when nothing changed,
and after one build changed.

Offline (no cluster round trips, as the aim says): fetch, load, authorize, select, render,
status. The first pass warms the mirror and the caches; the figure is a later pass, in the
same process, after a user pushed a one-line change.

    python3 bench/bench_pass.py [--builds 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.timing import peak_rss_mb  # noqa: E402

ENV = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "admin@example.com",
       "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "admin@example.com"}


def _push_change(src: Path, remote: Path, i: int) -> None:
    """A user pulls (the reconciler's status commits) and pushes a one-line change."""
    # (git prints "Updating files" progress for big checkouts even with -q: keep it unless it fails)
    pulled = subprocess.run(["git", "-C", str(src), "pull", "-q", "--ff-only", str(remote), "main"], env=ENV,
                            capture_output=True, text=True)
    if pulled.returncode != 0:
        raise RuntimeError(f"git pull failed: {pulled.stderr[-2000:]}")
    path = sorted((src / "builds").rglob("*.yaml"))[i]
    path.write_text(path.read_text().replace("image: ", "image: ", 1).replace(":1.0\n", f":1.{i + 1}\n"))
    subprocess.run(["git", "-C", str(src), "commit", "-qam", f"bump {i}"], check=True, env=ENV)
    subprocess.run(["git", "-C", str(src), "push", "-q", str(remote), "main"], check=True, env=ENV)


def run(quick: bool = False, builds: int | None = None) -> dict:
    from reconciler.loop.passing import PassOptions, Reconciler

    builds = builds or (500 if quick else 10_000)  # quick: the first pass writes every build's status
    with tempfile.TemporaryDirectory() as tmp:
        src = generate(Path(tmp) / "src", builds)
        remote = Path(tmp) / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(remote)], check=True)
        # Offline (no cluster), but status is written back, so later passes see it as they would.
        reconciler = Reconciler(PassOptions(str(remote), str(Path(tmp) / "work"), offline=True,
                                            write_status_offline=True))
        start = time.perf_counter()
        reconciler.run_once()  # writes every build's status
        first = time.perf_counter() - start
        for _ in range(5):  # read the status back until nothing is left to write: the steady state
            if reconciler.run_once().status_result == "unchanged":
                break
        idle = []  # benchmark 2: a pass (a poll, say) when nothing changed anywhere
        for _ in range(3 if quick else 5):
            start = time.perf_counter()
            reconciler.run_once()
            idle.append(time.perf_counter() - start)
        idle.sort()
        times = []
        for i in range(1 if quick else 3):
            _push_change(src, remote, i)
            start = time.perf_counter()
            report = reconciler.run_once()
            times.append(time.perf_counter() - start)
        times.sort()
        reconciler.close()
    return {"builds": builds, "first_pass_s": round(first, 3), "nothing_changed_pass_ms": round(idle[len(idle) // 2] * 1000, 1),
            "one_changed_pass_s": round(times[len(times) // 2], 3),
            "builds_with_status": len(report.build_phases), "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds), indent=2))
