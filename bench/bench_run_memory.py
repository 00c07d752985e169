"""Benchmark 8 (the long-running process): memory of `image-factory run` holding a 10,000-build repository.

    python3 bench/bench_run_memory.py [--builds 10000] [--passes 3]

Generates the seeded repository (bench/generate.py, as bench_pass: 10,000 builds, 50
providers, 200 pools), pushes it to a bare remote on disk and starts ``python -m reconciler
run --repo <remote> --offline --poll-interval off --listen 127.0.0.1:0`` as a process of its
own. ``--offline`` selects, renders and plans on every trigger but contacts no cluster (the
generated providers are fictional) and writes no status. After its first pass (the start
trigger), a user pushes a one-line change and the Git host's signed webhook follows, three
times; each pass is waited for (its log line). Then VmRSS (what it holds between passes) and
VmHWM (its peak) are read from /proc/PID/status. The aim is under 400 MB for 10,000 builds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import TEAMS, generate  # noqa: E402
from bench.runproc import RunProcess, git, git_env, push  # noqa: E402

ADMIN = git_env("Admin", "admin@example.com")  # the generated factory.yaml's one member


def _change(src: Path, i: int) -> str:
    """A one-line change of the i-th build's image tag, committed and pushed; the new tip."""
    path = src / "builds" / TEAMS[i % len(TEAMS)] / f"b{i:05d}.yaml"
    text = path.read_text()
    line = next(line for line in text.splitlines() if line.startswith("  image: "))
    path.write_text(text.replace(line, line.rsplit(":", 1)[0] + f":9.{i}", 1))
    git(src, "commit", "-qam", f"bump b{i:05d}", env=ADMIN)
    return push(src, ADMIN)


def run(quick: bool = False, builds: int | None = None, passes: int = 3) -> dict:
    builds = builds or (1_000 if quick else 10_000)
    timeout = 120 if quick else 900
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-memory-"))
    proc = None
    try:
        start = time.perf_counter()
        src = generate(tmp / "src", builds)
        generate_s = time.perf_counter() - start
        remote = tmp / "remote.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(src), str(remote)], check=True)
        git(src, "remote", "add", "origin", str(remote), env=ADMIN)

        proc = RunProcess(["--repo", str(remote), "--workdir", str(tmp / "work"), "--offline",
                           "--poll-interval", "off", "--listen", "127.0.0.1:0"])
        proc.wait_listening()
        outcomes: dict[str, int] = {}
        outcome, first_s = proc.wait_pass_end(1, timeout)
        outcomes[outcome] = 1
        after_first = proc.memory_mb()
        later, by_pass = [], [after_first.get("VmRSS")]
        for i in range(passes):
            number = proc.wait_idle() + 1
            sha = _change(src, i)
            status, answer = proc.webhook(sha)
            if status != 202 or answer.get("result") != "queued":
                raise RuntimeError(f"webhook {i}: {status} {answer}")
            outcome, seconds = proc.wait_pass_end(number, timeout)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if seconds is not None:
                later.append(seconds)
            by_pass.append(proc.memory_mb().get("VmRSS"))
        ran = proc.wait_idle()
        memory = proc.memory_mb()
        triggers = proc.triggers()
        code = proc.stop()
        if code != 0:
            raise RuntimeError(f"image-factory run exited {code} on SIGTERM, not 0:\n{proc.tail()}")
        if set(outcomes) != {"ok"}:
            raise RuntimeError(f"passes were not all ok ({outcomes}):\n{proc.tail()}")
    finally:
        if proc is not None:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "builds": builds,
        "passes": ran,
        "pass_triggers": " ".join(f"{k}={v}" for k, v in sorted(triggers.items())),
        "generate_s": round(generate_s, 1),
        "first_pass_s": first_s,
        "later_pass_median_s": round(statistics.median(later), 3) if later else None,
        # after each pass: a plateau is the working set, a steady climb would be a leak
        "run_vmrss_by_pass_mb": " ".join(f"{mb:g}" for mb in by_pass),
        "run_vmrss_mb": memory.get("VmRSS"),
        "run_vmhwm_mb": memory.get("VmHWM"),
        "aim_mb": 400,
        "run_exit_code": code,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds, passes=args.passes), indent=2))
