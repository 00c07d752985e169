"""A build's phase from the run the cluster reports: a Tekton PipelineRun or a batch/v1 Job.

The phase is the project's small vocabulary (Pending, Queued, Running, Succeeded, Failed,
Cancelled); the cluster's own words are kept in a ``Succeeded`` condition whose ``reason``
and ``message`` are copied verbatim, so a user reading the file sees Tekton's
``PipelineRunTimeout`` or the Job's ``BackoffLimitExceeded``, not just "Failed".

Input is the object as the Kubernetes API returns it (plain dicts); pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

# Tekton (pipeline/v1 PipelineRunReason and friends) -> phase, by the Succeeded status.
# Succeeded=Unknown: still going (or not started yet).
_TEKTON_UNKNOWN = {
    "Started": "Running",
    "Running": "Running",
    "Pending": "Queued",  # spec.status: PipelineRunPending (held by a queue or a person)
    "PipelineRunPending": "Queued",
    "ResolvingPipelineRef": "Pending",
    "ResolvingTaskRef": "Pending",
    "Stopping": "Running",  # graceful stop: finally tasks still run
    "PipelineRunStopping": "Running",
    "CancelledRunningFinally": "Running",
    "StoppedRunningFinally": "Running",
    "StoppedRunFinally": "Running",
}
# Succeeded=False: finished without success. Cancellation is its own phase; everything
# else (timeouts, validation and resolution errors, task failures) is Failed.
_TEKTON_FALSE = {
    "Cancelled": "Cancelled",
    "PipelineRunCancelled": "Cancelled",
    "StoppedRunFinally": "Cancelled",
    "StoppedRunningFinally": "Cancelled",
    "CancelledRunningFinally": "Cancelled",
}

# Job condition types (batch/v1) in order of precedence.
_JOB_TERMINAL = (("Complete", "Succeeded"), ("SuccessCriteriaMet", "Succeeded"),
                 ("Failed", "Failed"), ("FailureTarget", "Failed"))


FINISHED = ("Succeeded", "Failed", "Cancelled")  # the phases a run ends in


@dataclass(frozen=True)
class RunPhase:
    phase: str
    condition: dict  # type Succeeded: status, reason, message, lastTransitionTime (original words)
    start_time: str | None = None
    completion_time: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    def status_fields(self) -> dict:
        """The ``status`` fields this observation decides."""
        out: dict[str, Any] = {"phase": self.phase, "conditions": [self.condition]}
        if self.start_time:
            out["startTime"] = self.start_time
        if self.completion_time:
            out["completionTime"] = self.completion_time
        return out


def phase_of(obj: Mapping | None) -> RunPhase:
    """Dispatch on ``kind``: PipelineRun (Tekton) or Job (batch/v1). None: not created yet."""
    if obj is None:
        return RunPhase("Pending", _condition("Unknown", "NotCreated", "the run has not been created yet"))
    kind = obj.get("kind")
    if kind == "Job":
        return job_phase(obj)
    return pipelinerun_phase(obj)


def pipelinerun_phase(obj: Mapping) -> RunPhase:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    start, finish = status.get("startTime"), status.get("completionTime")
    cond = _find(status.get("conditions"), "Succeeded")
    if cond is None:
        if spec.get("status") in ("PipelineRunPending", "Pending"):
            return RunPhase("Queued", _condition("Unknown", "PipelineRunPending", "the PipelineRun is pending"), start)
        if spec.get("status") in ("Cancelled", "CancelledRunFinally", "StoppedRunFinally"):
            return RunPhase("Running", _condition("Unknown", str(spec["status"]), "cancellation requested"), start)
        return RunPhase("Pending", _condition("Unknown", "Pending", "waiting for Tekton to start the PipelineRun"), start)
    state = cond.get("status")
    reason = str(cond.get("reason") or "")
    kept = _condition(state if state in ("True", "False", "Unknown") else "Unknown", reason, str(cond.get("message") or ""),
                      cond.get("lastTransitionTime"))
    if state == "True":
        return RunPhase("Succeeded", kept, start, finish)
    if state == "False":
        return RunPhase(_TEKTON_FALSE.get(reason, "Failed"), kept, start, finish)
    return RunPhase(_TEKTON_UNKNOWN.get(reason, "Running"), kept, start)


def job_phase(obj: Mapping) -> RunPhase:
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    start, finish = status.get("startTime"), status.get("completionTime")
    conditions = status.get("conditions") or []
    for ctype, phase in _JOB_TERMINAL:
        cond = _find(conditions, ctype)
        if cond is not None and cond.get("status") == "True":
            reason = str(cond.get("reason") or ctype)
            state = "True" if phase == "Succeeded" else "False"
            if phase == "Failed" and ctype == "FailureTarget":
                # Pods are still being terminated; the Job is as good as failed.
                finish = finish or cond.get("lastTransitionTime")
            return RunPhase(phase, _condition(state, reason, str(cond.get("message") or ""), cond.get("lastTransitionTime")),
                            start, finish)
    suspended = _find(conditions, "Suspended")
    if (suspended is not None and suspended.get("status") == "True") or spec.get("suspend") is True:
        reason = str((suspended or {}).get("reason") or "Suspended")
        return RunPhase("Queued", _condition("Unknown", reason, str((suspended or {}).get("message") or "the Job is suspended"),
                                             (suspended or {}).get("lastTransitionTime")), start)
    if status.get("active") or status.get("ready") or start:
        return RunPhase("Running", _condition("Unknown", "Running", f"{status.get('active', 0)} pod(s) active"), start)
    return RunPhase("Pending", _condition("Unknown", "Pending", "waiting for the Job's pod to start"))


def _find(conditions: Any, ctype: str) -> Mapping | None:
    for cond in conditions or []:
        if isinstance(cond, Mapping) and cond.get("type") == ctype:
            return cond
    return None


def _condition(status: str, reason: str, message: str, when: str | None = None) -> dict:
    out = {"type": "Succeeded", "status": status, "reason": reason, "message": message}
    if when:
        out["lastTransitionTime"] = when
    return out
