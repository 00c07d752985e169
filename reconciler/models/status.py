"""The ``status`` blocks the reconciler writes back to Git (users never write them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Strict
from .sharing import Shared

Phase = Literal["Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "Rejected"]
PHASES: tuple[str, ...] = ("Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "Rejected")
Health = Literal["Healthy", "Degraded", "Unhealthy", "Unknown"]


class Condition(Shared):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    lastTransitionTime: str = ""


class Alternative(Shared):
    provider: str
    pool: str | None = None
    reason: str
    score: float | None = None


class Selection(Shared):
    infrastructure: Literal["kubernetes", "build_nodes"] | None = None
    provider: str | None = None
    pool: str | None = None
    reason: str
    confidence: float = Field(ge=0.0, le=1.0)
    alternatives: list[Alternative] = Field(default_factory=list)


class RunRef(Strict):
    cluster: str
    namespace: str
    name: str
    kind: str = "PipelineRun"


class BuildStatus(Strict):
    phase: Phase = "Pending"
    observedRevision: str | None = None
    selection: Selection | None = None
    run: RunRef | None = None
    startTime: str | None = None
    completionTime: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class ProviderStatus(Strict):
    health: Health = "Unknown"
    reason: str = ""
    observedRevision: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


class PoolStatus(Strict):
    running: int = 0
    queued: int = 0
    observedRevision: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
