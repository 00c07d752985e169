"""Benchmark: applying 500 PipelineRuns on the real control plane, next to ``kubectl apply --server-side``.

    python3 bench/bench_apply.py [--objects 500] [--runs 3] [--kubeconfig PATH]

Without ``--kubeconfig`` it starts its own control plane (``tests/controlplane.py``: kube-apiserver
1.20 + etcd + controller manager, CRDs installed) and stops it at the end, or, under ``python -m
bench``, uses the one the harness shares between benchmarks (``bench/controlplane.py``).

Each run uses fresh namespaces (one for the reconciler, one for kubectl), so both create the
same 500 PipelineRuns from nothing, then apply the very same set again (the unchanged pass):

- ``create``: a full reconciler pass (``sync``: connect, discover, one LIST per kind, server-side
  apply of what differs with 8 requests in flight, prune) on a new connection pool, against
  ``kubectl apply --server-side -f`` of the same objects as one multi-document file;
- ``unchanged``: the same pass again on the pooled connection (the loop's steady state: one LIST
  per kind, no write), against kubectl applying the same file again; ``unchanged_cold`` is that
  pass on a brand-new connection (discovery included);
- ``diff``: the reconciler's dry-run diff of the unchanged set against ``kubectl diff --server-side``.

Figures seen here (2 cores shared with other work, median of 5 runs, 500 PipelineRuns):
create 1.65 s vs kubectl 3.53 s (2.1x); unchanged 0.16 s vs 2.63 s (16x; 20 LISTs, 0 writes);
unchanged on a new connection 0.14 s (18x); dry-run diff 0.11 s vs ``kubectl diff`` 4.44 s (41x).
Creating is bound by the API server's CPU (server-side apply of a CRD with a large schema,
~10 ms each here), so more than 8 requests in flight does not help on this machine.

The reconciler's pass is scoped to its namespace (``namespaces=``) so that earlier runs' objects
do not count; kubectl's discovery cache is warmed before timing. Requests are counted by the
cluster layer's own counters.
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
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from reconciler.cluster import ClusterSettings, ConnectionPool, diff_objects, sync  # noqa: E402
from reconciler.models.provider import ProviderSpec  # noqa: E402

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def objects(ns: str, count: int) -> list[dict]:
    labels = {"app.kubernetes.io/managed-by": "image-factory", "imagefactory.dev/pool": "bench"}
    out: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {**labels, "imagefactory.dev/build": "bench"}}}]
    for i in range(count):
        build = f"team{i % 20}.app{i}"
        out.append({
            "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": f"app{i}-{i * 7919 % 100000:05d}", "namespace": ns,
                         "labels": {**labels, "imagefactory.dev/build": build},
                         "annotations": {"imagefactory.dev/revision": "3f2a9c1d0e"}},
            "spec": {"pipelineRef": {"name": "if-kaniko-1-0-0"},
                     "params": [{"name": "git-url", "value": f"https://git.example.com/team{i % 20}/app{i}.git"},
                                {"name": "git-revision", "value": "main"},
                                {"name": "image", "value": f"registry.example.com/team{i % 20}/app{i}:1.0.{i}"},
                                {"name": "dockerfile", "value": "Dockerfile"}],
                     "workspaces": [{"name": "source", "volumeClaimTemplate": {"spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}],
                     "taskRunTemplate": {"serviceAccountName": "image-factory-builder"},
                     "timeouts": {"pipeline": "1h0m0s"}},
        })
    return out


def kubectl(kubeconfig: str, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and args[0] != "diff"):
        raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
    return elapsed


def one_run(kubeconfig: str, count: int, workdir: Path) -> dict:
    spec = ProviderSpec.model_validate({"type": "kubernetes", "auth": {"method": "kubeconfig", "kubeconfig": kubeconfig},
                                        "nodePools": [{"name": "default"}]})
    settings = ClusterSettings()
    ours_ns, kubectl_ns = f"bench-if-{uuid.uuid4().hex[:6]}", f"bench-kc-{uuid.uuid4().hex[:6]}"
    desired = objects(ours_ns, count)
    result: dict = {}

    pool = ConnectionPool(settings)
    start = time.perf_counter()
    conn = pool.get("bench", spec)
    first = sync(conn, desired, namespaces=[ours_ns])
    result["ours_create_s"] = time.perf_counter() - start
    assert first.ok and first.writes == len(desired), (first.error, first.applied.counts() if first.applied else None)
    result["ours_create_requests"] = first.requests
    start = time.perf_counter()
    second = sync(conn, desired, namespaces=[ours_ns])
    result["ours_unchanged_s"] = time.perf_counter() - start
    assert second.ok and second.writes == 0
    result["ours_unchanged_requests"] = second.requests
    result["ours_unchanged_writes"] = second.writes
    pool.close()
    cold = ConnectionPool(settings)
    start = time.perf_counter()
    third = sync(cold.get("bench", spec), desired, namespaces=[ours_ns])
    result["ours_unchanged_cold_s"] = time.perf_counter() - start
    assert third.writes == 0
    start = time.perf_counter()
    diff = diff_objects(cold.get("bench", spec), desired, namespaces=[ours_ns])
    result["ours_diff_s"] = time.perf_counter() - start
    assert not diff.changed and diff.writes == 0
    cold.close()

    manifest = workdir / f"{kubectl_ns}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects(kubectl_ns, count), sort_keys=False))
    kubectl(kubeconfig, "get", "--raw", "/version")  # warm kubectl's discovery cache
    result["kubectl_create_s"] = kubectl(kubeconfig, "apply", "--server-side", "--field-manager=bench", "-f", str(manifest))
    result["kubectl_unchanged_s"] = kubectl(kubeconfig, "apply", "--server-side", "--field-manager=bench", "-f", str(manifest))
    result["kubectl_diff_s"] = kubectl(kubeconfig, "diff", "--server-side", "--field-manager=bench", "-f", str(manifest))
    return result


def run(count: int = 500, runs: int = 3, kubeconfig: str | None = None, quick: bool = False) -> dict:
    if quick:
        count, runs = min(count, 100), 1
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        if kubeconfig is None:
            from bench.controlplane import control_plane

            with control_plane(Path(tmp)) as cp:
                results = [one_run(str(cp.kubeconfig), count, Path(tmp)) for _ in range(runs)]
        else:
            results = [one_run(kubeconfig, count, Path(tmp)) for _ in range(runs)]
    median = {k: statistics.median(r[k] for r in results) for k in results[0]}
    out = {"objects": count, "runs": runs}
    for key, value in median.items():
        out[key] = round(value, 3) if key.endswith("_s") else int(value)
    out["speedup_create"] = round(median["kubectl_create_s"] / median["ours_create_s"], 1)
    out["speedup_unchanged"] = round(median["kubectl_unchanged_s"] / median["ours_unchanged_s"], 1)
    out["speedup_unchanged_cold"] = round(median["kubectl_unchanged_s"] / median["ours_unchanged_cold_s"], 1)
    out["speedup_diff"] = round(median["kubectl_diff_s"] / median["ours_diff_s"], 1)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting a control plane")
    args = parser.parse_args()
    print(json.dumps(run(args.objects, args.runs, args.kubeconfig), indent=2))
