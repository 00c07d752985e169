"""Benchmark: status write-back of 100 builds in a 10,000-build repository (no push).

Measures what one pass pays to turn computed statuses into a commit: read the 100 files
from the base tree, splice each status block (``apply_status``), and build the commit
without a working tree (blobs, temporary index, ``commit-tree``). The push itself is a
network round trip and is not included.

    python3 bench/bench_writeback.py [--builds 10000] [--edits 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import TEAMS, generate  # noqa: E402
from reconciler.source.committing import create_commit, prepare_base, push_status  # noqa: E402
from reconciler.source.credentials import GitCredentials  # noqa: E402
from reconciler.source.remote import Mirror  # noqa: E402
from reconciler.status import apply_status  # noqa: E402

BOT = {"name": "image-factory", "email": "image-factory@bench.example"}


def status_for(n: int, source: str, k: int) -> dict:
    return {
        "phase": "Running",
        "observedRevision": source,
        "selection": {"provider": f"p{k % 50:03d}", "pool": f"pool{k % 200:03d}", "infrastructure": "kubernetes",
                      "reason": "matches method and team; lowest load", "confidence": 0.8,
                      "alternatives": [{"provider": "p001", "pool": "pool001", "reason": "pool is full (20/20 running)"}]},
        "run": {"cluster": f"p{k % 50:03d}", "namespace": "if-team", "name": f"b{k:05d}-{n}"},
        "startTime": "2026-11-23T10:00:00Z",
        "conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running", "message": f"pass {n}",
                        "lastTransitionTime": "2026-11-23T10:00:00Z"}],
    }


def _generate(root: Path, builds: int) -> Path:
    # `git commit` of 10,000 files starts a background `gc --auto`, which makes
    # generate()'s own `git gc` fail now and then ("gc is already running"): turn auto-gc
    # off for the generator's git commands (they inherit os.environ).
    saved = {k: os.environ.get(k) for k in ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")}
    if saved["GIT_CONFIG_COUNT"]:
        return generate(root, builds)
    os.environ.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"})
    try:
        return generate(root, builds)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(quick: bool = False, builds: int | None = None, edits: int = 100, runs: int | None = None) -> dict:
    builds = builds or (1_000 if quick else 10_000)
    runs = runs or (3 if quick else 5)
    paths = [f"builds/{TEAMS[k % len(TEAMS)]}/b{k:05d}.yaml" for k in range(0, builds, max(1, builds // edits))][:edits]
    with tempfile.TemporaryDirectory() as tmp:
        repo = _generate(Path(tmp) / "repo", builds)
        bare = Path(tmp) / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
        mirror = Mirror(f"file://{bare}", str(Path(tmp) / "mirror"), GitCredentials())
        mirror.fetch()
        source = mirror.tip("main")
        derive_s, commit_s, total_s = [], [], []
        for n in range(runs):
            start = time.perf_counter()
            base = prepare_base(mirror, "main", source)
            files = base.read_paths(paths)
            new = {p: apply_status(files[p], status_for(n, source, i)) for i, p in enumerate(paths)}
            middle = time.perf_counter()
            made = create_commit(mirror, base.parents, base.tree, new, BOT, f"status: {len(new)} builds updated", source)
            end = time.perf_counter()
            assert made is not None and len(made[1]) == len(paths)
            derive_s.append(middle - start)
            commit_s.append(end - middle)
            total_s.append(end - start)
        # The same through the public loop (push=False), once the mirror is warm.
        loop = []
        for n in range(runs):
            def derive(base, n=n):
                files = base.read_paths(paths)
                return {p: apply_status(files[p], status_for(100 + n, source, i)) for i, p in enumerate(paths)}
            start = time.perf_counter()
            result = push_status(mirror, "main", derive, BOT, source, push=False, fetch_first=False)
            loop.append(time.perf_counter() - start)
            assert result.status == "committed", result
        per_file = statistics.median(derive_s) / len(paths)
    return {
        "builds": builds,
        "edits": len(paths),
        "derive_ms": round(statistics.median(derive_s) * 1000, 1),
        "commit_ms": round(statistics.median(commit_s) * 1000, 1),
        "derive_commit_ms": round(statistics.median(total_s) * 1000, 1),
        "push_status_no_push_ms": round(statistics.median(loop) * 1000, 1),
        "apply_status_per_file_ms": round(per_file * 1000, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds, edits=args.edits, runs=args.runs), indent=2))
