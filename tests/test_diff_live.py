"""`image-factory diff` against a real API server: dry run, exit codes, unreachable providers."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from reconciler.cluster import ConnectionPool, sync
from reconciler.clusters import links
from reconciler.desired import compute_desired
from reconciler.source.loading import Loader

from .helpers import EXAMPLES, cli

pytestmark = pytest.mark.controlplane


def local_repo(tmp: Path, kubeconfig: Path, prefix: str, builds=("web/frontend", "web/checkout-api", "data/etl-runner")) -> Path:
    """A small repository whose one provider is the test control plane."""
    repo = tmp / "repo"
    (repo / "providers").mkdir(parents=True)
    (repo / "pools").mkdir()
    factory = (EXAMPLES / "factory.yaml").read_text().replace("namespacePrefix: if-", f"namespacePrefix: {prefix}")
    (repo / "factory.yaml").write_text(factory)
    (repo / "providers/local.yaml").write_text(f"""\
apiVersion: imagefactory.dev/v1alpha1
kind: Provider
metadata:
  name: local
spec:
  type: kubernetes
  auth:
    method: kubeconfig
    kubeconfig: {kubeconfig}
    context: admin
  nodePools:
    - name: general
      capacity: {{cpu: "64", memory: 256Gi}}
""")
    (repo / "pools/local-general.yaml").write_text("""\
apiVersion: imagefactory.dev/v1alpha1
kind: Pool
metadata:
  name: local-general
spec:
  provider: local
  nodePool: general
  methods: [docker, kaniko, buildx, packer, nix, paketo]
  maxConcurrentBuilds: 10
""")
    for build in builds:
        target = repo / "builds" / f"{build}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "builds" / f"{build}.yaml", target)
    return repo


def _mine(plan_json: dict, prefix: str) -> list[tuple[str, str, str]]:
    return sorted((e["action"], e["kind"], e["name"]) for e in plan_json["entries"]
                  if (e["namespace"] or e["name"]).startswith(prefix))


def test_live_diff_dry_runs_then_shows_nothing_after_apply(control_plane, tmp_path: Path):
    prefix = f"d{uuid.uuid4().hex[:6]}-"
    repo = local_repo(tmp_path, control_plane.kubeconfig, prefix)
    proc = cli("diff", "--repo", str(repo), "-o", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = json.loads(proc.stdout)
    created = _mine(first, prefix)
    assert ("create", "Namespace", f"{prefix}web") in created
    assert sum(1 for a, k, _ in created if k == "PipelineRun") == 3
    assert all(a == "create" for a, _, _ in created)

    snap = Loader().load_directory(str(repo))
    desired = compute_desired(snap)
    pool = ConnectionPool()
    try:
        [link] = links(snap)
        conn = pool.get(link.name, link.spec, link.credentials)
        report = sync(conn, desired.clusters["local"], namespaces=[f"{prefix}web", f"{prefix}data"])
        assert report.ok, report
        again = json.loads(cli("diff", "--repo", str(repo), "-o", "json").stdout)
        assert _mine(again, prefix) == []
        # A build removed from the repository: its run is cancelled (it has not finished).
        (repo / "builds/web/checkout-api.yaml").unlink()
        after = json.loads(cli("diff", "--repo", str(repo), "-o", "json").stdout)
        assert [(a, k) for a, k, n in _mine(after, prefix) if n.startswith("checkout-api")] == [("cancel", "PipelineRun")]
    finally:
        for ns in (f"{prefix}web", f"{prefix}data"):
            control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        pool.close()


def test_unreachable_provider_is_reported_and_the_rest_still_compared(control_plane, tmp_path: Path):
    prefix = f"u{uuid.uuid4().hex[:6]}-"
    repo = local_repo(tmp_path, control_plane.kubeconfig, prefix, builds=("web/frontend",))
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(Path(control_plane.kubeconfig).read_text().replace(control_plane.server, "https://127.0.0.1:1"))
    (repo / "providers/down.yaml").write_text((repo / "providers/local.yaml").read_text()
                                              .replace("name: local", "name: down").replace(str(control_plane.kubeconfig), str(bad)))
    proc = cli("diff", "--repo", str(repo))
    assert proc.returncode == 2
    assert "cluster down: not compared:" in proc.stdout
    assert f"create  Namespace {prefix}web" in proc.stdout
