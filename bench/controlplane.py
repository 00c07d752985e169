"""The API server of the benchmarks that need one (apply, latency): shared, or their own.

``python -m bench`` starts one control plane (``tests/controlplane.py``, which drives
``scripts/control-plane``: kube-apiserver 1.20 + etcd + controller manager, Tekton CRDs
installed) when more than one selected benchmark needs it, and names its directory in
``BENCH_CONTROL_PLANE_DIR`` for the benchmark processes. That saves a start (about 10 s
here) per benchmark. Run alone, a benchmark starts its own and stops it at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ENV = "BENCH_CONTROL_PLANE_DIR"
#: benchmarks that call control_plane(); run in this order when they share one, since the
#: reconciler in `latency` prunes across the whole cluster, while `apply` is scoped to its
#: own namespaces (so apply's 500 labelled PipelineRuns must not be there yet)
USERS = ("latency", "apply")


def start(workdir: Path):
    """Start a control plane in ``workdir`` (the harness's shared one)."""
    from tests.controlplane import ControlPlane

    return ControlPlane().start(workdir)


@contextmanager
def control_plane(tmp: Path) -> Iterator:
    """The shared control plane when the harness started one, else one of our own in ``tmp``."""
    from tests.controlplane import ControlPlane

    shared = os.environ.get(ENV)
    if shared:
        cp = ControlPlane()
        cp.workdir = Path(shared)
        cp._load_state()  # attach to the running one: its state.env (server, token, kubeconfig)
        yield cp  # the harness stops it
        return
    cp = ControlPlane().start(tmp / "control-plane")
    try:
        yield cp
    finally:
        cp.stop()
