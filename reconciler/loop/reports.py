"""What one pass did, for the CLI's output, the loop's log and metrics, and the next pass."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass
class PassReport:
    revision: str | None = None
    source_revision: str | None = None
    offline: bool = False
    applied: list[str] = field(default_factory=list)
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    unauthorized: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    providers: dict[str, str] = field(default_factory=dict)
    build_phases: dict[str, str] = field(default_factory=dict)  # build -> phase
    placements: dict[str, str] = field(default_factory=dict)  # build -> provider/pool (admitted)
    status_commit: str | None = None
    status_result: str = "unchanged"
    status_files: list[str] = field(default_factory=list)
    # "full"; "runs": a pass for run state changes only (see Reconciler.run_once); "none": the
    # changes were the last pass's own (see Reconciler.seen_already)
    scope: str = "full"
    duration_s: float = 0.0
    applied_at: float | None = None  # time.monotonic() when apply ended (the loop's trigger-to-apply latency)
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step, in order

    error_kinds: list[str] = field(default_factory=list)  # one per error, for metrics
    git: list[tuple[str, float, bool]] = field(default_factory=list)  # (operation, seconds, ok), for metrics

    def error(self, kind: str, text: str) -> None:
        self.errors.append(text)
        self.error_kinds.append(kind)

    @property
    def provider_health(self) -> dict[str, str]:
        return self.providers

    @property
    def exit_code(self) -> int:
        return 1 if (self.errors or self.unauthorized) else 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def git_reachable(self) -> bool:
        return True

    @property
    def phases(self) -> dict[str, int]:
        """Builds per phase (what the loop's metrics read)."""
        counts: dict[str, int] = {}
        for phase in self.build_phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def as_dict(self) -> dict:
        return {"revision": self.revision, "sourceRevision": self.source_revision, "offline": self.offline,
                "applied": self.applied, "unchanged": self.unchanged, "pruned": self.pruned,
                "rejected": self.rejected, "queued": self.queued, "unauthorized": self.unauthorized,
                "errors": self.errors, "providers": self.providers, "phases": self.build_phases,
                "placements": self.placements,
                "status": {"result": self.status_result, "commit": self.status_commit, "files": self.status_files},
                "scope": self.scope, "durationSeconds": round(self.duration_s, 3), "stepSeconds": self.steps}

    def add_outcomes(self, outcomes: Mapping[str, Any]) -> None:
        """Each build's status outcome (``reconciler.status.composing.Outcome``), in build order."""
        for name, outcome in outcomes.items():
            self.build_phases[name] = outcome.phase
            if outcome.placement is not None:
                self.placements[name] = outcome.placement
            if outcome.bucket == "queued":
                self.queued.append(name)
            elif outcome.bucket == "rejected":
                self.rejected.append(name)
            for text in outcome.errors:
                self.error("apply", text)


def stepper(steps: dict[str, float]) -> Callable[[str], None]:
    """``step(name)`` records the seconds since the previous step (or since it was made)."""
    last = [time.monotonic()]

    def step(name: str) -> None:
        now = time.monotonic()
        steps[name] = round(now - last[0], 4)
        last[0] = now

    return step
