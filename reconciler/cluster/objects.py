"""Plain-dict Kubernetes objects: identity, labels, and the state of a run (PipelineRun, Job).

Objects are the dicts rendering produces and the API returns; nothing here talks to a cluster.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

from .settings import BUILD_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, POOL_LABEL


@dataclass(frozen=True, order=True)
class ObjectKey:
    """An object's identity on one cluster. The group, not the version: the same object read
    through another version of its API is still the same object."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def key_of(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return ObjectKey(group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")),
                     str(meta.get("namespace") or ""), str(meta.get("name", "")))


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_managed(obj: dict[str, Any]) -> bool:
    return labels_of(obj).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def build_of(obj: dict[str, Any]) -> str | None:
    return labels_of(obj).get(BUILD_LABEL)


def pool_of(obj: dict[str, Any]) -> str | None:
    return labels_of(obj).get(POOL_LABEL)


def controller_owner(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


# -- runs ---------------------------------------------------------------------------------------

RunPhase = Literal["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled"]
RUN_KINDS = {("tekton.dev", "PipelineRun"), ("tekton.dev", "TaskRun"), ("batch", "Job")}


@dataclass(frozen=True)
class RunState:
    phase: RunPhase
    reason: str = ""
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        from ..status.phases import FINISHED

        return self.phase in FINISHED

    def finished_timestamp(self) -> float | None:
        return parse_time(self.finished_at)


class ResultCounts:
    """For reports holding ``results`` (each with ``action`` and ``ok``): counts and overall ok."""

    results: list

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.action] = out.get(r.action, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def is_run(obj: dict[str, Any]) -> bool:
    key = key_of(obj)
    return (key.group, key.kind) in RUN_KINDS


def run_state(obj: dict[str, Any]) -> RunState | None:
    """The state of a PipelineRun, TaskRun or Job from its status; None for other kinds.

    The reading of Tekton's and batch/v1's conditions is ``reconciler.status.phases`` (one
    table of reasons for the whole project); this adds what the cluster layer needs."""
    from ..status.phases import phase_of

    key = key_of(obj)
    tekton = key.group == "tekton.dev" and key.kind in ("PipelineRun", "TaskRun")
    if not (tekton or (key.group == "batch" and key.kind == "Job")):
        return None
    observed = phase_of({**obj, "kind": "Job" if not tekton else "PipelineRun"})
    cond = observed.condition or {}
    spec_status = (obj.get("spec") or {}).get("status") if tekton else None
    cancel = spec_status in ("Cancelled", "CancelledRunFinally", "StoppedRunFinally", "TaskRunCancelled")
    finished = observed.completion_time or (cond.get("lastTransitionTime") if observed.finished else None)
    return RunState(observed.phase, str(cond.get("reason") or ""), str(cond.get("message") or ""),
                    observed.start_time, finished, cancel)


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    try:
        stamp = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()
