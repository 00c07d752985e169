"""Provider health as selection sees it (seed 001's health check, supplied by the caller).

The cluster layer checks each provider (API reachable, Tekton installed, ready nodes) and
hands the result in; tests and ``image-factory explain --health FILE`` pass it directly.
A provider nobody has checked yet is ``Unknown``: usable, but decisions on it carry less
confidence and say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

HealthState = Literal["Healthy", "Degraded", "Unhealthy", "Unknown"]
HEALTH_STATES: tuple[str, ...] = ("Healthy", "Degraded", "Unhealthy", "Unknown")


@dataclass(frozen=True)
class ProviderHealth:
    state: HealthState = "Unknown"
    reason: str = ""
    # None: not observed. Tekton is then assumed present, and the BuildKit controller is
    # taken from the provider's own ``spec.buildkitController``.
    tekton_installed: bool | None = None
    buildkit_controller: bool | None = None

    def __post_init__(self) -> None:
        if self.state not in HEALTH_STATES:
            raise ValueError(f"health state '{self.state}' is not one of {', '.join(HEALTH_STATES)}")


UNKNOWN = ProviderHealth("Unknown", "not checked yet")


def health_from_mapping(data: Any) -> tuple[dict[str, ProviderHealth], list[str]]:
    """Parse ``{provider: {state, reason, tekton, buildkitController}}`` (a health file).

    Returns the health per provider and a list of problems (bad entries are skipped).
    """
    out: dict[str, ProviderHealth] = {}
    problems: list[str] = []
    if data is None:
        return out, problems
    if not isinstance(data, Mapping):
        return out, ["the health file must map provider names to {state, reason, tekton, buildkitController}"]
    allowed = {"state", "reason", "tekton", "buildkitController"}
    for name, entry in data.items():
        if isinstance(entry, str):
            entry = {"state": entry}
        if not isinstance(entry, Mapping):
            problems.append(f"{name}: expected a mapping with state, reason, tekton, buildkitController")
            continue
        extra = sorted(set(entry) - allowed)
        if extra:
            problems.append(f"{name}: unknown field(s) {', '.join(map(str, extra))} (allowed: {', '.join(sorted(allowed))})")
            continue
        state = entry.get("state", "Unknown")
        if state not in HEALTH_STATES:
            problems.append(f"{name}: state '{state}' is not one of {', '.join(HEALTH_STATES)}")
            continue
        flags = {}
        for key, field in (("tekton", "tekton_installed"), ("buildkitController", "buildkit_controller")):
            value = entry.get(key)
            if value is not None and not isinstance(value, bool):
                problems.append(f"{name}: {key} must be true or false")
                break
            flags[field] = value
        else:
            out[str(name)] = ProviderHealth(state, str(entry.get("reason", "") or ""), **flags)
    return out, problems
