"""Prometheus metrics of the loop, in a registry of their own (never the process-global one).

One :class:`Metrics` per loop; ``/metrics`` serves :meth:`Metrics.exposition`. The loop records
passes, triggers and webhooks itself; a pass records what only it can see either through
:meth:`Metrics.git_timer` / :meth:`observe_git` (it gets the Metrics in its PassContext) or
by putting the figures on the report it returns (see ``record_report``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

PREFIX = "image_factory"
HEALTH_STATES = ("Healthy", "Degraded", "Unhealthy", "Unknown")
PHASES = ("Pending", "Queued", "Running", "Succeeded", "Failed", "Cancelled", "Rejected")

# Seconds. Passes: an incremental pass is well under a second, a full one over 10k builds
# may take a minute. Latency: the target is a median under 1 s from push to PipelineRun.
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, float("inf"))
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 120, 300, float("inf"))
GIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, float("inf"))


class Metrics:
    """Every metric the reconciler exports. Thread-safe (prometheus-client's own locks)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter(f"{PREFIX}_passes", "Reconcile passes by outcome (ok, failed, abandoned, error).",
                              ["outcome"], registry=r)
        self.pass_duration = Histogram(f"{PREFIX}_pass_duration_seconds", "Duration of a reconcile pass.",
                                       ["outcome"], buckets=PASS_BUCKETS, registry=r)
        self.last_pass = Gauge(f"{PREFIX}_last_pass_timestamp_seconds",
                               "Unix time at which the last pass finished.", registry=r)
        self.last_success = Gauge(f"{PREFIX}_last_successful_pass_timestamp_seconds",
                                  "Unix time at which the last pass that ran to its end finished.", registry=r)
        self.objects_applied = Counter(f"{PREFIX}_objects_applied", "Objects applied (server-side apply).",
                                       registry=r)
        self.objects_pruned = Counter(f"{PREFIX}_objects_pruned", "Managed objects deleted as no longer desired.",
                                      registry=r)
        self.errors = Counter(f"{PREFIX}_errors", "Errors by kind (validation, authorization, apply, git, ...).",
                              ["kind"], registry=r)
        self.git_operations = Counter(f"{PREFIX}_git_operations", "Git fetches and pushes by outcome.",
                                      ["operation", "outcome"], registry=r)
        self.git_duration = Histogram(f"{PREFIX}_git_operation_duration_seconds", "Latency of git fetch and push.",
                                      ["operation"], buckets=GIT_BUCKETS, registry=r)
        self.triggers = Counter(f"{PREFIX}_triggers", "Triggers received by reason (webhook, poll, watch, file, ...).",
                                ["reason"], registry=r)
        self.triggers_coalesced = Counter(f"{PREFIX}_triggers_coalesced",
                                          "Triggers folded into a pass another trigger had already asked for.",
                                          registry=r)
        self.trigger_latency = Histogram(f"{PREFIX}_trigger_to_apply_seconds",
                                         "Time from a trigger's arrival to the end of the apply step of the "
                                         "pass that handled it (earliest trigger of each reason per pass).",
                                         ["reason"], buckets=LATENCY_BUCKETS, registry=r)
        self.webhooks = Counter(f"{PREFIX}_webhook_requests", "Webhook requests by provider and result.",
                                ["provider", "result"], registry=r)
        self.provider_health = Gauge(f"{PREFIX}_provider_health",
                                     "1 for the provider's current health state, 0 for the others.",
                                     ["provider", "state"], registry=r)
        self.builds = Gauge(f"{PREFIX}_builds", "Build requests by status phase.", ["phase"], registry=r)
        self.leader = Gauge(f"{PREFIX}_leader", "1 while this replica holds the leader lease (or runs alone).",
                            registry=r)
        self.pass_running = Gauge(f"{PREFIX}_pass_running", "1 while a pass runs.", registry=r)
        for outcome in ("ok", "failed", "abandoned", "error"):
            self.passes.labels(outcome)
        for phase in PHASES:
            self.builds.labels(phase).set(0)

    # -- recording ------------------------------------------------------------------------------

    def observe_git(self, operation: str, seconds: float, ok: bool = True) -> None:
        """Record one git ``fetch`` or ``push`` (or ``ls-remote``, ``clone``)."""
        self.git_operations.labels(operation, "ok" if ok else "error").inc()
        self.git_duration.labels(operation).observe(max(0.0, seconds))

    @contextlib.contextmanager
    def git_timer(self, operation: str) -> Iterator[None]:
        """``with metrics.git_timer("fetch"): repo.fetch()`` -- an exception counts as an error."""
        start = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            self.observe_git(operation, time.monotonic() - start, ok)

    def set_provider_health(self, states: Mapping[str, Any]) -> None:
        """``{provider: "Healthy" | ProviderHealth-like (has .state)}``; providers not named are dropped."""
        self.provider_health.clear()
        for provider, value in states.items():
            state = getattr(value, "state", value)
            for candidate in HEALTH_STATES:
                self.provider_health.labels(provider, candidate).set(1 if candidate == state else 0)

    def set_builds_by_phase(self, counts: Mapping[str, int]) -> None:
        for phase in sorted(set(PHASES) | set(counts)):
            self.builds.labels(phase).set(counts.get(phase, 0))

    def count_errors(self, errors: Iterable[Any]) -> None:
        for error in errors:
            self.errors.labels(error_kind(error)).inc()

    def exposition(self) -> bytes:
        """The text exposition format of this registry (what ``/metrics`` serves)."""
        return generate_latest(self.registry)


def error_kind(error: Any) -> str:
    """A string (already a kind), ``error.kind``, ``error["kind"]``, or the exception's class name in snake case."""
    if isinstance(error, str):
        return error[:64]  # already a kind
    kind = getattr(error, "kind", None)
    if kind is None and isinstance(error, Mapping):
        kind = error.get("kind")
    if kind is None:
        name = type(error).__name__ if isinstance(error, BaseException) else "unknown"
        kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return str(kind)[:64]


def count_of(value: Any) -> int:
    """A report figure given as an int, a sized collection, or a mapping of counts."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return sum(count_of(v) for v in value.values())
    try:
        return len(value)
    except TypeError:
        return 0
