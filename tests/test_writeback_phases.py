"""Phases from Tekton PipelineRun and batch/v1 Job conditions, with the original reason kept."""

from __future__ import annotations

import pytest

from reconciler.models.status import PHASES, BuildStatus
from reconciler.status import phase_of

T0, T1 = "2026-11-23T10:00:00Z", "2026-11-23T10:04:31Z"


def pipelinerun(status=None, reason=None, spec_status=None, message="m"):
    obj = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun", "metadata": {"name": "r"}, "spec": {}, "status": {}}
    if spec_status:
        obj["spec"]["status"] = spec_status
    if status is not None:
        obj["status"] = {"startTime": T0, "conditions": [{"type": "Succeeded", "status": status, "reason": reason,
                                                          "message": message, "lastTransitionTime": T1}]}
        if status != "Unknown":
            obj["status"]["completionTime"] = T1
    return obj


def job(*conditions, active=0, start=True, suspend=False):
    status = {"conditions": [{"type": t, "status": s, "reason": r, "message": "m", "lastTransitionTime": T1}
                             for t, s, r in conditions]}
    if start:
        status["startTime"] = T0
    if active:
        status["active"] = active
    return {"apiVersion": "batch/v1", "kind": "Job", "spec": {"suspend": suspend}, "status": status}


TEKTON = [
    # (Succeeded status, reason, phase)
    ("Unknown", "Started", "Running"),
    ("Unknown", "Running", "Running"),
    ("Unknown", "Pending", "Queued"),
    ("Unknown", "PipelineRunPending", "Queued"),
    ("Unknown", "ResolvingPipelineRef", "Pending"),
    ("Unknown", "CancelledRunningFinally", "Running"),
    ("Unknown", "StoppedRunningFinally", "Running"),
    ("Unknown", "StoppedRunFinally", "Running"),
    ("Unknown", "SomethingNew", "Running"),
    ("True", "Succeeded", "Succeeded"),
    ("True", "Completed", "Succeeded"),
    ("False", "Failed", "Failed"),
    ("False", "PipelineRunTimeout", "Failed"),
    ("False", "Cancelled", "Cancelled"),
    ("False", "StoppedRunFinally", "Cancelled"),
    ("False", "CancelledRunningFinally", "Cancelled"),
    ("False", "CouldntGetPipeline", "Failed"),
    ("False", "InvalidWorkspaceBindings", "Failed"),
    ("False", "PipelineValidationFailed", "Failed"),
    ("False", "CouldntGetTask", "Failed"),
    ("False", "SomethingNew", "Failed"),
]


@pytest.mark.parametrize("state,reason,phase", TEKTON)
def test_tekton_reasons(state, reason, phase):
    got = phase_of(pipelinerun(state, reason, message=f"tekton says {reason}"))
    assert got.phase == phase
    assert got.condition == {"type": "Succeeded", "status": state, "reason": reason, "message": f"tekton says {reason}",
                             "lastTransitionTime": T1}
    assert got.start_time == T0
    assert got.completion_time == (T1 if state != "Unknown" else None)
    assert got.finished == (phase in ("Succeeded", "Failed", "Cancelled"))
    # what it produces is a valid BuildStatus
    BuildStatus.model_validate(got.status_fields())
    assert got.phase in PHASES


def test_tekton_before_any_condition():
    assert phase_of(pipelinerun()).phase == "Pending"
    assert phase_of(pipelinerun(spec_status="PipelineRunPending")).phase == "Queued"
    assert phase_of(pipelinerun(spec_status="Cancelled")).phase == "Running"
    assert phase_of(None).phase == "Pending" and phase_of(None).condition["reason"] == "NotCreated"


JOBS = [
    # (conditions, active, start, suspend, phase, kept reason, condition status)
    ([("Complete", "True", None)], 0, True, False, "Succeeded", "Complete", "True"),
    ([("SuccessCriteriaMet", "True", "CompletionsReached"), ("Complete", "True", "CompletionsReached")], 0, True, False,
     "Succeeded", "CompletionsReached", "True"),
    ([("Failed", "True", "BackoffLimitExceeded")], 0, True, False, "Failed", "BackoffLimitExceeded", "False"),
    ([("Failed", "True", "DeadlineExceeded")], 0, True, False, "Failed", "DeadlineExceeded", "False"),
    ([("FailureTarget", "True", "PodFailurePolicy")], 1, True, False, "Failed", "PodFailurePolicy", "False"),
    ([("Suspended", "True", "JobSuspended")], 0, False, True, "Queued", "JobSuspended", "Unknown"),
    ([], 1, True, False, "Running", "Running", "Unknown"),
    ([], 0, False, False, "Pending", "Pending", "Unknown"),
    ([("Complete", "False", None)], 1, True, False, "Running", "Running", "Unknown"),
]


@pytest.mark.parametrize("conditions,active,start,suspend,phase,reason,state", JOBS)
def test_job_conditions(conditions, active, start, suspend, phase, reason, state):
    got = phase_of(job(*conditions, active=active, start=start, suspend=suspend))
    assert (got.phase, got.condition["reason"], got.condition["status"]) == (phase, reason, state)
    BuildStatus.model_validate(got.status_fields())
