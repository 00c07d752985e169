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

RunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Cancelled"]
RUN_KINDS = {("tekton.dev", "PipelineRun"), ("tekton.dev", "TaskRun"), ("batch", "Job")}
_CANCEL_REASONS = {"Cancelled", "PipelineRunCancelled", "TaskRunCancelled", "CancelledRunFinally",
                   "StoppedRunFinally"}


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
        return self.phase in ("Succeeded", "Failed", "Cancelled")

    def finished_timestamp(self) -> float | None:
        return parse_time(self.finished_at)


def is_run(obj: dict[str, Any]) -> bool:
    key = key_of(obj)
    return (key.group, key.kind) in RUN_KINDS


def run_state(obj: dict[str, Any]) -> RunState | None:
    """The state of a PipelineRun, TaskRun or Job from its status; None for other kinds."""
    key = key_of(obj)
    status = obj.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or () if isinstance(c, dict)}
    if key.group == "tekton.dev" and key.kind in ("PipelineRun", "TaskRun"):
        spec_status = (obj.get("spec") or {}).get("status")
        cancel = spec_status in ("Cancelled", "CancelledRunFinally", "StoppedRunFinally", "TaskRunCancelled")
        cond = conditions.get("Succeeded")
        start, end = status.get("startTime"), status.get("completionTime")
        if cond is None:
            phase: RunPhase = "Pending"
            return RunState(phase, "PipelineRunPending" if spec_status == "PipelineRunPending" else "",
                            "", start, None, cancel)
        reason, message = str(cond.get("reason") or ""), str(cond.get("message") or "")
        value = cond.get("status")
        if value == "True":
            return RunState("Succeeded", reason, message, start, end or cond.get("lastTransitionTime"), cancel)
        if value == "False":
            phase = "Cancelled" if reason in _CANCEL_REASONS else "Failed"
            return RunState(phase, reason, message, start, end or cond.get("lastTransitionTime"), cancel)
        phase = "Pending" if reason in ("PipelineRunPending", "Pending") else "Running"
        return RunState(phase, reason, message, start, None, cancel)
    if key.group == "batch" and key.kind == "Job":
        start, end = status.get("startTime"), status.get("completionTime")
        complete, failed = conditions.get("Complete"), conditions.get("Failed")
        if complete and complete.get("status") == "True":
            return RunState("Succeeded", str(complete.get("reason") or "Complete"), str(complete.get("message") or ""),
                            start, end or complete.get("lastTransitionTime"))
        if failed and failed.get("status") == "True":
            return RunState("Failed", str(failed.get("reason") or "Failed"), str(failed.get("message") or ""),
                            start, failed.get("lastTransitionTime"))
        if status.get("active"):
            return RunState("Running", "Active", "", start)
        return RunState("Pending", "", "", start)
    return None


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
