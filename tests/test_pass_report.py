"""What a pass logs: a line per error, unauthorized change, changed object and phase change,
with build, provider and pool as fields (JSON logs), and no more than a screenful at info."""

from __future__ import annotations

import io
import json

import pytest

from reconciler import logging as flog
from reconciler.loop.reports import LOG_LINES, Change, PassReport
from reconciler.status.composing import Outcome


@pytest.fixture
def records():
    stream = io.StringIO()
    log = flog.setup(fmt="json", level="debug", stream=stream)
    yield log, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    flog.setup(fmt="text", level="info", stream=io.StringIO())


def test_errors_and_phase_changes_carry_build_provider_and_pool(records):
    log, read = records
    report = PassReport(source_revision="a" * 40)
    report.error("provider_unhealthy", "provider eks-prod: Unhealthy: connection refused", provider="eks-prod")
    report.add_outcomes({
        "frontend": Outcome("Running", "gke-eu/gpu-pool"),
        "checkout": Outcome("Pending", "gke-eu/general", errors=("build checkout: apply failed",)),
        "trainer": Outcome("Queued", bucket="queued"),
    })
    report.unauthorized = ["pools/gpu.yaml: commit 0123456789ab by mallory@example.com lacks infrastructure:manage"]
    report.log(log, before={"frontend": "Pending", "checkout": "Pending"})
    lines = read()

    errors = [r for r in lines if r["level"] == "error"]
    assert [(r["msg"], r.get("provider"), r.get("build"), r["kind"]) for r in errors] == [
        ("provider eks-prod: Unhealthy: connection refused", "eks-prod", None, "provider_unhealthy"),
        ("build checkout: apply failed", "gke-eu", "checkout", "apply")]
    assert all(r["revision"] == "a" * 40 for r in errors)
    [warning] = [r for r in lines if r["level"] == "warning"]
    assert warning["msg"].startswith("not applied: pools/gpu.yaml: commit 0123456789ab") and \
        warning["kind"] == "unauthorized"
    moved = {r["build"]: r for r in lines if r["level"] == "info"}
    # checkout stayed Pending: no line. A build new to the log gets its phase alone.
    assert set(moved) == {"frontend", "trainer"}
    assert moved["frontend"]["msg"] == "build frontend: Pending -> Running on gke-eu/gpu-pool"
    assert (moved["frontend"]["provider"], moved["frontend"]["pool"]) == ("gke-eu", "gpu-pool")
    assert moved["trainer"]["msg"] == "build trainer: Queued" and "provider" not in moved["trainer"]


def test_changed_objects_runs_first_and_the_rest_at_debug(records):
    log, read = records
    report = PassReport()
    report.changes = [Change("created", "local", f"ServiceAccount team-web/sa-{i}") for i in range(LOG_LINES)]
    report.changes += [Change("created", "local", "PipelineRun team-frontend-1", "frontend"),
                       Change("cancelled", "local", "PipelineRun team-web/old-1", "old", "no longer desired")]
    report.log(log, before={})
    lines = read()
    info = [r["msg"] for r in lines if r["level"] == "info"]
    assert info[:2] == ["created PipelineRun team-frontend-1", "cancelled PipelineRun team-web/old-1 (no longer desired)"]
    assert len(info) == LOG_LINES + 1 and info[-1] == "... and 2 more objects changed (--log-level debug lists every one)"
    assert [r["msg"] for r in lines if r["level"] == "debug"] == ["created ServiceAccount team-web/sa-18",
                                                                  "created ServiceAccount team-web/sa-19"]
    assert report.applied == [str(c) for c in report.changes[:-1]]
    assert report.pruned == ["local: PipelineRun team-web/old-1: cancelled (no longer desired)"]


def test_a_quiet_pass_logs_nothing(records):
    log, read = records
    report = PassReport()
    report.add_outcomes({"frontend": Outcome("Succeeded", "local/default")})
    report.log(log, before={"frontend": "Succeeded"})
    assert read() == []
