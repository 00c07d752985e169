"""Benchmark: render 10,000 builds in-process (target: under 2 s).

Builds are generated with a seeded RNG over the six methods and the three backends (Tekton
PipelineRuns, Kaniko Jobs, BuildKit Jobs), 20 teams, some GPU, multi-arch and build-args
variety, on the providers and pools of tests/golden/rendering/repo. Each figure is the median
of several runs of a *fresh* Renderer, so template compilation (once per method and version)
and per-team objects are counted; the PipelineRun of each build is a compiled skeleton filled
with its values, never a YAML parse (see reconciler/rendering/templates.py).

    python3 bench/bench_rendering.py [--builds N] [--runs N]
    python -m bench --only rendering
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from reconciler.models import BuildRequest  # noqa: E402
from reconciler.rendering import Renderer  # noqa: E402
from reconciler.source.loading import Loader  # noqa: E402

REPO = Path(__file__).resolve().parent.parent / "tests" / "golden" / "rendering" / "repo"
TEAMS = [f"team-{i:02d}" for i in range(20)]
# method -> pools that accept it (of the golden repository), by backend variety
PLACES = {
    "docker": ["cloud-tekton", "cloud-buildkit", "lab-kaniko", "edge-buildkit"],
    "kaniko": ["cloud-tekton", "lab-kaniko"],
    "buildx": ["cloud-multiarch", "edge-buildkit"],
    "packer": ["cloud-tekton"],
    "nix": ["cloud-tekton"],
    "paketo": ["cloud-tekton"],
}


def make_builds(n: int, seed: int = 7) -> list[tuple]:
    """(build Entity, pool name) pairs."""
    rng = random.Random(seed)
    snap = Loader().load_directory(str(REPO))
    template = snap.builds["storefront"]
    out = []
    for i in range(n):
        method = rng.choice(list(PLACES))
        pool = rng.choice(PLACES[method])
        source = {"git": f"https://git.example.com/svc/app-{i}.git", "revision": f"v{rng.randint(1, 9)}.{rng.randint(0, 99)}"}
        if method == "packer":
            source["template"] = "packer/image.pkr.hcl"
        elif method == "nix":
            source["flake"] = ".#image"
        spec = {"method": method, "source": source, "image": f"registry.example.com/t/app-{i}:{rng.randint(1, 99)}.0"}
        roll = rng.random()
        if roll < 0.1 and method == "buildx":
            spec["platforms"] = ["linux/amd64", "linux/arm64"]
        elif roll < 0.2:
            spec["requirements"] = {"cpu": str(rng.choice([2, 4, 8])), "memory": rng.choice(["4Gi", "16Gi"])}
        if rng.random() < 0.3:
            spec["buildArgs"] = {"VERSION": f"1.{i}", "NOTE": "hello $(world) 'quoted' \"double\""}
        model = BuildRequest.model_validate({"apiVersion": "imagefactory.dev/v1alpha1", "kind": "BuildRequest",
                                             "metadata": {"name": f"app-{i}"}, "spec": spec}, strict=False)
        team = rng.choice(TEAMS)
        entity = replace(template, name=f"app-{i}", model=model, team=team, path=f"builds/{team}/app-{i}.yaml",
                         blob=f"{i:040x}")
        out.append((entity, pool))
    return snap, out


def render_all(snap, builds, revision: str) -> int:
    renderer = Renderer()
    factory = snap.factory.model
    count = 0
    for build, pool_name in builds:
        pool = snap.pools[pool_name]
        rendered = renderer.render_build(build, pool, snap.providers[pool.spec.provider], factory, revision)
        count += len(rendered.objects)
    return count


def run(quick: bool = False, builds: int | None = None, runs: int | None = None) -> dict:
    n = builds or (2_000 if quick else 10_000)
    runs = runs or (3 if quick else 5)
    snap, generated = make_builds(n)
    times, cpu = [], []
    objects = 0
    for _ in range(runs):
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        objects = render_all(snap, generated, "0123456789abcdef0123456789abcdef01234567")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(times)
    return {
        "builds": n,
        "objects": objects,
        "render_s": round(median, 3),
        # CPU time of this process: what the figure is when other work shares the machine.
        "render_cpu_s": round(statistics.median(cpu), 3),
        "per_build_us": round(median / n * 1e6, 1),
        "builds_per_s": int(n / median),
        "target_s": 2.0 * n / 10_000,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(builds=args.builds, runs=args.runs), indent=2))
