"""Health of each provider's cluster, as seed 001 checks it, with a reason people can act on.

- **Unhealthy**: the API cannot be used: unreachable, timing out, 5xx, or the credentials are
  rejected (or the connection could not even be built).
- **Degraded**: the API works but builds may not: Tekton's CRDs (``tekton.dev/v1``
  PipelineRun) are not installed (kaniko-job pools can still run); the Provider says
  ``buildkitController: true`` but the BuildKit controller's CRDs are missing; nodes cannot be
  listed; or there is no Ready node.
- **Healthy**: none of that.

No Ready node is **Degraded by default** (``settings.no_ready_nodes``): build clusters often
scale node pools from zero, and it is a pending build pod that makes the autoscaler add a node,
so applying to such a cluster still works; selection prefers Healthy clusters over it. Where
no autoscaler runs, set ``no_ready_nodes="Unhealthy"``. (The test control plane has no node
at all, so it is Degraded for that reason alone.)

Node pools are discovered from node labels (``eks.amazonaws.com/nodegroup``,
``cloud.google.com/gke-nodepool``, ``kubernetes.azure.com/agentpool``, ...) and each pool the
Provider file declares is matched by its ``labels``; what does not match (a declared pool
with no node, an undeclared pool, an architecture the nodes do not have) is listed in
``notes``. These do not change the state: a pool may be scaled to zero.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Mapping

from .connecting import Connection, Credentials
from .errors import ClusterError, ClusterUnavailable, Forbidden, Unauthorized
from .observing import list_objects

HealthState = Literal["Healthy", "Degraded", "Unhealthy"]
TEKTON = ("tekton.dev/v1", "PipelineRun")
BUILDKIT = ("buildkit.smrt-devops.net/v1alpha1", "BuildKitPool")
POOL_LABELS = ("eks.amazonaws.com/nodegroup", "alpha.eksctl.io/nodegroup-name", "karpenter.sh/nodepool",
               "cloud.google.com/gke-nodepool", "kubernetes.azure.com/agentpool", "agentpool",
               "oci.oraclecloud.com/node-pool-id", "node-pool", "node.kubernetes.io/pool", "imagefactory.dev/node-pool")
ARCH_LABEL = "kubernetes.io/arch"


@dataclass(frozen=True)
class NodePoolHealth:
    name: str
    declared: bool  # named in the Provider file
    nodes: int
    ready: int
    architectures: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterHealth:
    provider: str
    state: HealthState
    reason: str
    version: str | None = None
    tekton_installed: bool | None = None
    buildkit_controller: bool | None = None
    nodes: int | None = None
    ready_nodes: int | None = None
    node_pools: tuple[NodePoolHealth, ...] = ()
    notes: tuple[str, ...] = ()
    checked_at: float = field(default_factory=time.time)

    def to_selection(self) -> Any:
        """The same facts as ``reconciler.selection.health.ProviderHealth`` (what selection takes)."""
        from ..selection.health import ProviderHealth
        return ProviderHealth(self.state, self.reason, self.tekton_installed, self.buildkit_controller)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["node_pools"] = [asdict(p) for p in self.node_pools]
        out["notes"] = list(self.notes)
        return out


def check_health(conn: Connection, spec: Any = None) -> ClusterHealth:
    """Check one cluster (``spec``: the Provider's spec, for node pools and buildkitController)."""
    settings = conn.settings
    try:
        version = conn.version()
    except Unauthorized:
        return ClusterHealth(conn.provider, "Unhealthy", "the API server rejected the credentials (401)")
    except ClusterUnavailable as exc:
        return ClusterHealth(conn.provider, "Unhealthy", _plain(exc))
    except ClusterError as exc:
        return ClusterHealth(conn.provider, "Unhealthy", _plain(exc))
    git_version = str((version or {}).get("gitVersion") or "unknown")
    degraded: list[str] = []
    notes: list[str] = []
    try:
        for api_version, _ in (TEKTON, BUILDKIT):
            conn.discovery.forget(api_version)  # health looks afresh: a CRD may have come or gone
        tekton = conn.resource(*TEKTON) is not None
        buildkit = conn.resource(*BUILDKIT) is not None
    except ClusterUnavailable as exc:
        return ClusterHealth(conn.provider, "Unhealthy", _plain(exc), git_version)
    except ClusterError as exc:
        degraded.append(f"cannot discover APIs: {_plain(exc)}")
        tekton = buildkit = None  # type: ignore[assignment]
    if tekton is False:
        degraded.append("Tekton CRDs are not installed (tekton.dev/v1 PipelineRun): tekton pools cannot run")
    claims_buildkit = bool(getattr(spec, "buildkitController", False))
    if buildkit is False and claims_buildkit:
        degraded.append("the Provider declares buildkitController but its CRDs (buildkit.smrt-devops.net) "
                        "are not installed")
    nodes: list[dict[str, Any]] | None
    try:
        nodes = list_objects(conn, "v1", "Node", selector=None) or []
    except Forbidden:
        nodes = None
        degraded.append("cannot list nodes (forbidden by RBAC): ready nodes unknown")
    except ClusterUnavailable as exc:
        return ClusterHealth(conn.provider, "Unhealthy", _plain(exc), git_version, tekton, buildkit)
    except ClusterError as exc:
        nodes = None
        degraded.append(f"cannot list nodes: {_plain(exc)}")
    total = ready = None
    pools: tuple[NodePoolHealth, ...] = ()
    state: HealthState = "Healthy"
    if nodes is not None:
        total = len(nodes)
        ready = sum(1 for n in nodes if _ready(n))
        pools, pool_notes = _node_pools(nodes, spec)
        notes.extend(pool_notes)
        if ready == 0:
            why = "no nodes" if total == 0 else f"no Ready node ({total} node{'s' * (total != 1)}, none Ready)"
            text = f"{why}: builds would wait until a node joins"
            if settings.no_ready_nodes == "Unhealthy":
                state = "Unhealthy"
                degraded.insert(0, text)
            else:
                degraded.append(text)
    if degraded and state == "Healthy":
        state = "Degraded"
    if degraded:
        reason = "; ".join(degraded)
    else:
        reason = f"API {git_version} reachable; Tekton installed; {ready} Ready node{'s' * (ready != 1)}"
    return ClusterHealth(conn.provider, state, reason, git_version, tekton, buildkit, total, ready, pools, tuple(notes))


def check_all(get_connection: Callable[[str, Any, Credentials | None], Connection],
              providers: Mapping[str, tuple[Any, Credentials | None]], *, workers: int = 8) -> dict[str, ClusterHealth]:
    """Health of many providers at once; one that cannot even connect is Unhealthy with why.

    ``get_connection`` is usually ``ConnectionPool.get``; ``providers`` maps name -> (spec, credentials).
    """
    def one(name: str) -> ClusterHealth:
        spec, credentials = providers[name]
        try:
            conn = get_connection(name, spec, credentials)
        except ClusterError as exc:
            return ClusterHealth(name, "Unhealthy", f"cannot connect: {_plain(exc)}")
        return check_health(conn, spec)

    names = sorted(providers)
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names)))) as pool:
        return dict(zip(names, pool.map(one, names)))


def _plain(exc: ClusterError) -> str:
    text = str(exc)
    prefix = f"{exc.provider}: " if exc.provider else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _ready(node: dict[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _node_pools(nodes: list[dict[str, Any]], spec: Any) -> tuple[tuple[NodePoolHealth, ...], list[str]]:
    notes: list[str] = []
    declared = list(getattr(spec, "nodePools", None) or ())
    out: list[NodePoolHealth] = []
    matched_nodes: set[str] = set()
    for pool in declared:
        labels = dict(getattr(pool, "labels", None) or {})
        members = [n for n in nodes if all(((n.get("metadata") or {}).get("labels") or {}).get(k) == v
                                           for k, v in labels.items())]
        matched_nodes.update((n.get("metadata") or {}).get("name", "") for n in members)
        archs = tuple(sorted({((n.get("metadata") or {}).get("labels") or {}).get(ARCH_LABEL, "") for n in members} - {""}))
        out.append(NodePoolHealth(pool.name, True, len(members), sum(1 for n in members if _ready(n)), archs))
        if not members and nodes:
            notes.append(f"node pool {pool.name}: no node has its labels {labels}")
        missing = sorted(set(getattr(pool, "architectures", ()) or ()) - set(archs)) if members else []
        if missing:
            notes.append(f"node pool {pool.name}: declares {', '.join(missing)} but its nodes are {', '.join(archs) or 'unlabelled'}")
    discovered: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        name = next((labels[k] for k in POOL_LABELS if labels.get(k)), None)
        if name is not None and (node.get("metadata") or {}).get("name") not in matched_nodes:
            discovered.setdefault(name, []).append(node)
    for name, members in sorted(discovered.items()):
        archs = tuple(sorted({((n.get("metadata") or {}).get("labels") or {}).get(ARCH_LABEL, "") for n in members} - {""}))
        out.append(NodePoolHealth(name, False, len(members), sum(1 for n in members if _ready(n)), archs))
        notes.append(f"node pool {name} ({len(members)} node{'s' * (len(members) != 1)}) is not declared in the Provider file")
    return tuple(out), notes
