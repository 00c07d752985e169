"""Benchmark: select infrastructure for 10,000 builds over 50 providers and 200 pools.

Generates a synthetic repository in memory with a seeded RNG (the same every run), builds
the Catalog once, then selects every build. Prints the figures; the target is < 0.5 s for
catalog + selection. Writing the ~2 million "why not this pool" sentences is lazy (done when
status or explain reads ``decision.alternatives``); the last figure shows that cost too.

    python3 bench/bench_selection.py [--builds N] [--providers N] [--pools N] [--seed N] [--runs N]
    python -m bench --only selection
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from reconciler.models import BuildRequest, Pool, Provider  # noqa: E402
from reconciler.selection import Actor, Catalog, ProviderHealth, select_all  # noqa: E402

TEAMS = [f"team-{i}" for i in range(12)]
TYPES = ["eks", "gke", "aks", "oke", "vks", "openshift", "rancher", "kubernetes"]
METHODS = ["docker", "kaniko", "buildx", "packer", "nix", "paketo"]
AUTH = {"eks": {"method": "aws-iam", "clusterName": "c"}, "gke": {"method": "in-cluster"},
        "aks": {"method": "in-cluster"}, "oke": {"method": "in-cluster"}, "vks": {"method": "in-cluster"},
        "openshift": {"method": "in-cluster"}, "rancher": {"method": "in-cluster"}, "kubernetes": {"method": "in-cluster"}}
PERMISSIONS = frozenset({"infrastructure:select", "infrastructure:view", "build:create:with-infra"})
ADMIN = PERMISSIONS | {"infrastructure:manage"}


def node_pool(rng: random.Random, i: int) -> dict:
    kind = rng.random()
    np = {"name": f"np-{i}", "architectures": ["amd64"],
          "capacity": {"cpu": str(rng.choice([8, 16, 32, 64])), "memory": rng.choice(["32Gi", "64Gi", "128Gi", "512Gi"]),
                       "nodes": rng.randint(1, 6)}}
    if kind < 0.2:
        np["architectures"] = ["arm64"]
    elif kind < 0.3:
        np["architectures"] = ["amd64", "arm64"]
    elif kind < 0.42:
        np["capacity"]["gpu"] = rng.choice([1, 2, 4, 8])
        np["gpuType"] = rng.choice(["nvidia-a100", "nvidia-v100", "nvidia-t4"])
        np["capabilities"] = ["gpu"]
    elif kind < 0.52:
        np["buildNodes"] = True
        np["capabilities"] = rng.choice([["air-gapped"], ["legacy"], ["custom-hardware"]])
        if np["capabilities"] == ["custom-hardware"]:
            np["hardware"] = [rng.choice(["xilinx-fpga", "tpu-edge"])]
    return np


def generate(seed: int, n_providers: int, n_pools: int, n_builds: int):
    rng = random.Random(seed)
    providers, pools, health, load = [], [], {}, {}
    for i in range(n_providers):
        t = TYPES[i % len(TYPES)]
        tenants = ["*"] if rng.random() < 0.4 else sorted(rng.sample(TEAMS, rng.randint(1, 6)))
        nps = [node_pool(rng, j) for j in range(rng.randint(2, 5))]
        providers.append(Provider.model_validate({
            "metadata": {"name": f"p{i:02d}-{t}"},
            "spec": {"type": t, "endpoint": "https://k8s.example.com", "auth": AUTH[t], "tenants": tenants,
                     "nodePools": nps, "buildkitController": rng.random() < 0.3},
        }, strict=False))
        r = rng.random()
        state = "Healthy" if r < 0.75 else "Degraded" if r < 0.85 else "Unhealthy" if r < 0.9 else "Unknown"
        health[f"p{i:02d}-{t}"] = ProviderHealth(state, "synthetic", tekton_installed=rng.random() < 0.9)
    for k in range(n_pools):
        prov = providers[k % n_providers]
        np = rng.choice(prov.spec.nodePools)
        backend = rng.choices(["tekton", "kaniko-job", "buildkit"], [0.7, 0.15, 0.15])[0]
        methods = {"tekton": METHODS, "kaniko-job": ["docker", "kaniko"], "buildkit": ["docker", "buildx"]}[backend]
        name = f"pool-{k:03d}"
        pools.append(Pool.model_validate({
            "metadata": {"name": name},
            "spec": {"provider": prov.metadata.name, "nodePool": np.name, "backend": backend,
                     "methods": sorted(rng.sample(methods, rng.randint(1, len(methods)))),
                     "teams": ["*"] if rng.random() < 0.5 else sorted(rng.sample(TEAMS, rng.randint(1, 4))),
                     "maxConcurrentBuilds": rng.randint(1, 10), "priority": rng.choice([0, 0, 0, 5, 10])},
        }, strict=False))
        load[name] = rng.randint(0, pools[-1].spec.maxConcurrentBuilds)
    builds = []
    for b in range(n_builds):
        method = rng.choice(METHODS)
        src = {"git": "https://git.example.com/app.git"}
        if method == "packer":
            src["template"] = "image.pkr.hcl"
        if method == "nix":
            src["flake"] = ".#image"
        req: dict = {}
        r = rng.random()
        if r < 0.08:
            req["gpu"] = {"count": rng.choice([1, 2]), **({"type": "nvidia-a100"} if rng.random() < 0.5 else {})}
        elif r < 0.16:
            req["memory"] = rng.choice(["48Gi", "100Gi", "400Gi"])
        elif r < 0.2:
            req["airGapped"] = True
        elif r < 0.23:
            req["legacySystem"] = True
        elif r < 0.25:
            req["customHardware"] = "xilinx-fpga"
        if rng.random() < 0.3:
            req["cpu"] = rng.choice(["2", "4", "500m", "16"])
        spec = {"method": method, "source": src, "image": "registry.example.com/app:1",
                "platforms": rng.choice([["linux/amd64"]] * 6 + [["linux/arm64"], ["linux/amd64", "linux/arm64"]]),
                "requirements": req}
        r = rng.random()
        if r < 0.04:
            pool = rng.choice(pools)
            spec["placement"] = {"provider": pool.spec.provider, "pool": pool.metadata.name}
        elif r < 0.06:
            spec["infrastructure"] = "build_nodes"
            spec["force"] = rng.random() < 0.5
        model = BuildRequest.model_validate({"metadata": {"name": f"build-{b:05d}"}, "spec": spec}, strict=False)
        builds.append(_Build(model, rng.choice(TEAMS)))
    return providers, pools, health, load, builds


class _Build:
    """The two things select reads from a loader Entity."""

    __slots__ = ("model", "team", "name")

    def __init__(self, model, team):
        self.model, self.team, self.name = model, team, model.metadata.name


def measure(builds_n: int = 10_000, providers_n: int = 50, pools_n: int = 200, seed: int = 7, runs: int = 5) -> dict:
    """Figures (medians of ``runs``) for the harness and the command line."""
    providers, pools, health, load, builds = generate(seed, providers_n, pools_n, builds_n)
    actors = {t: Actor(f"dev@{t}", ADMIN if t == "team-0" else PERMISSIONS) for t in TEAMS}
    catalog_times, select_times = [], []
    decisions: dict = {}
    catalog = None
    for _ in range(runs):
        decisions = {}
        gc.collect()  # start each run clean: the last run's garbage is not this run's cost
        t0 = time.perf_counter()
        catalog = Catalog.build(providers, pools, health, load)
        t1 = time.perf_counter()
        decisions = select_all(builds, catalog, actor=lambda b: actors[b.team])
        t2 = time.perf_counter()
        catalog_times.append(t1 - t0)
        select_times.append(t2 - t1)
    t3 = time.perf_counter()
    n_alts = sum(len(d.alternatives) for d in decisions.values())
    alts_s = time.perf_counter() - t3
    states: dict[str, int] = {}
    for d in decisions.values():
        states[d.state] = states.get(d.state, 0) + 1
    catalog_s, select_s = statistics.median(catalog_times), statistics.median(select_times)
    return {
        "builds": len(builds), "providers": len(providers), "pools": len(catalog.pools),
        "catalog_ms": round(catalog_s * 1000, 1),
        "selection_ms": round(select_s * 1000, 1),
        "total_ms": round((catalog_s + select_s) * 1000, 1),
        "us_per_build": round(select_s / len(builds) * 1e6, 1),
        "admitted": states.get("Admitted", 0), "queued": states.get("Queued", 0), "rejected": states.get("Rejected", 0),
        "alternatives": n_alts,
        "alternatives_written_ms": round(alts_s * 1000),
    }


def run(quick: bool = False) -> dict:
    """Entry point of ``python -m bench``."""
    return measure(builds_n=2_000, runs=3) if quick else measure(runs=7)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=10_000)
    parser.add_argument("--providers", type=int, default=50)
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5, help="runs; medians are reported")
    args = parser.parse_args()
    f = measure(args.builds, args.providers, args.pools, args.seed, args.runs)
    total = f["total_ms"]
    print(f"{f['builds']:,} builds, {f['providers']} providers, {f['pools']} pools "
          f"(seed {args.seed}, median of {args.runs} runs)")
    print(f"  catalog:   {f['catalog_ms']:7.1f} ms")
    print(f"  selection: {f['selection_ms']:7.1f} ms  ({f['us_per_build']:.1f} us per build)")
    print(f"  total:     {total:7.1f} ms  (target < 500 ms: {'ok' if total < 500 else 'TOO SLOW'})")
    print(f"  outcomes:  Admitted {f['admitted']:,}, Queued {f['queued']:,}, Rejected {f['rejected']:,}")
    print(f"  writing all {f['alternatives']:,} alternatives afterwards (lazy, on first read): "
          f"{f['alternatives_written_ms']:,} ms")
    return 0 if total < 500 else 1


if __name__ == "__main__":
    sys.exit(main())
