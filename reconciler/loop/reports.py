"""What one pass did, for the CLI's output, the loop's log and metrics, and the next pass."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..logging import fields

APPLIED = ("created", "updated")
# Lines of one kind (changes, phase changes) a pass logs at info; the rest go to debug.
LOG_LINES = 20


@dataclass(frozen=True)
class Problem:
    """One error of a pass, with what it concerns (for logs with build and provider fields)."""

    kind: str  # for metrics: provider_unhealthy, cluster, apply, prune, write_back
    text: str
    build: str | None = None
    provider: str | None = None


@dataclass(frozen=True)
class Change:
    """An object a pass created, updated or pruned on a provider."""

    action: str  # created, updated (applied); deleted, cancelled (pruned)
    provider: str
    what: str  # "Kind namespace/name"
    build: str | None = None
    reason: str = ""  # why it was pruned

    def __str__(self) -> str:
        if self.action in APPLIED:
            return f"{self.provider}: {self.what}"
        return f"{self.provider}: {self.what}: {self.action} ({self.reason})"


@dataclass
class PassReport:
    revision: str | None = None
    source_revision: str | None = None
    offline: bool = False
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    unauthorized: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
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
    git: list[tuple[str, float, bool]] = field(default_factory=list)  # (operation, seconds, ok), for metrics

    def error(self, kind: str, text: str, *, build: str | None = None, provider: str | None = None) -> None:
        self.problems.append(Problem(kind, text, build, provider))

    @property
    def errors(self) -> list[str]:
        return [p.text for p in self.problems]

    @property
    def error_kinds(self) -> list[str]:
        """One per error, for metrics."""
        return [p.kind for p in self.problems]

    @property
    def applied(self) -> list[str]:
        return [str(c) for c in self.changes if c.action in APPLIED]

    @property
    def pruned(self) -> list[str]:
        return [str(c) for c in self.changes if c.action not in APPLIED]

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
                self.error("apply", text, build=name, provider=(outcome.placement or "").partition("/")[0] or None)

    def log(self, log: logging.Logger, before: Mapping[str, str] | None = None) -> None:
        """Log what this pass did, a line per event with its build, provider and pool as
        fields: each error; each unauthorized change; each object changed on a cluster; each
        build whose phase changed since ``before`` (the phases of the pass before). Changes
        and phase changes past the first ``LOG_LINES`` of a kind go to debug."""
        revision = self.source_revision
        for problem in self.problems:
            log.error(problem.text, extra=fields(build=problem.build, provider=problem.provider, kind=problem.kind,
                                                 revision=revision))
        for text in self.unauthorized:
            log.warning(f"not applied: {text}", extra=fields(kind="unauthorized", revision=revision))
        _log_some(log, "objects changed", ((f"{c.action} {c.what}" + (f" ({c.reason})" if c.reason else ""),
                                            fields(provider=c.provider, build=c.build or None, revision=revision))
                                           for c in sorted(self.changes, key=_runs_first)))
        before = before or {}
        moved = []
        for name, phase in self.build_phases.items():
            if before.get(name) != phase:
                provider, _, pool = (self.placements.get(name) or "").partition("/")
                where = f" on {provider}/{pool}" if provider else ""
                text = f"build {name}: {before[name]} -> {phase}{where}" if name in before else \
                    f"build {name}: {phase}{where}"
                moved.append((text, fields(build=name, provider=provider or None, pool=pool or None,
                                           revision=revision)))
        _log_some(log, "builds changed phase", moved)


def _runs_first(change: Change) -> bool:
    return not change.what.startswith(("PipelineRun ", "Job "))


def _log_some(log: logging.Logger, what: str, lines: Iterable[tuple[str, dict]]) -> None:
    """The first ``LOG_LINES`` lines at info, the rest at debug, and how many those were."""
    more = 0
    for i, (text, extra) in enumerate(lines):
        if i < LOG_LINES:
            log.info(text, extra=extra)
        else:
            more += 1
            log.debug(text, extra=extra)
    if more:
        log.info(f"... and {more} more {what} (--log-level debug lists every one)")


def stepper(steps: dict[str, float]) -> Callable[[str], None]:
    """``step(name)`` records the seconds since the previous step (or since it was made)."""
    last = [time.monotonic()]

    def step(name: str) -> None:
        now = time.monotonic()
        steps[name] = round(now - last[0], 4)
        last[0] = now

    return step
