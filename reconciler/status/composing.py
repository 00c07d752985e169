"""Each build's ``status:`` block, from what a pass decided (selection, rendering) and found
(its run's state, apply results, unreachable providers, unauthorized changes).

Pure data in, data out: the pass hands in its facts, gets back the status blocks that
changed and one ``Outcome`` per build for its report. ``StatusBook`` remembers, between
passes, the builds whose status needed no change (the same file and the same facts need no
computation: at 10,000 builds that is most of a pass) and, where status is not written to
Git (offline, a working tree), each build's last status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

from .changes import merge_conditions, status_changed
from .phases import FINISHED

# Alternatives written into a build's status (the closest first); `explain` lists all.
STATUS_ALTERNATIVES = 10

_STATUS_ORDER = ("phase", "observedRevision", "selection", "run", "startTime", "completionTime", "conditions")
_SUCCEEDED_STATUS = {"Succeeded": "True", "Failed": "False", "Cancelled": "False"}


@dataclass(frozen=True)
class Outcome:
    """What a build's status says, as a pass reports it."""

    phase: str
    placement: str | None = None  # "provider/pool" when admitted and rendered
    bucket: str | None = None  # "queued" or "rejected" (not admitted), else None
    errors: tuple[str, ...] = ()  # apply errors of this build


@dataclass(frozen=True)
class Facts:
    """What a pass decided and found, the same for every build."""

    desired: Any  # reconciler.desired.Desired
    runs: Mapping[tuple, Any]  # (provider, kind, namespace, name) -> RunState
    applied_ok: Mapping[str, tuple[bool, str]]  # build -> (applied, message)
    unreachable: Mapping[str, str]  # provider -> reason
    unauthorized: Mapping[str, str]  # path -> message
    revisions: Mapping[str, str]  # build -> the revision its spec comes from
    standing: Mapping[str, str]  # builds with a run of their current spec (desired.standing_of)
    offline: bool = False


class StatusBook:
    """Statuses between passes; see the module doc."""

    def __init__(self, writes: bool = True) -> None:
        self.writes = writes  # False: status is not written to Git, keep it in ``unwritten``
        self.unwritten: dict[str, dict] = {}
        # build -> (status model it was computed against, its facts, its outcome): builds whose
        # status needed no change
        self._settled: dict[str, tuple[Any, tuple, Outcome]] = {}

    def compose(self, snapshot: Any, facts: Facts) -> tuple[dict[tuple[str, int], dict], dict[str, Outcome]]:
        """({(path, document index): new status} of the builds whose status changed,
        {build: Outcome} of every build)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        changed: dict[tuple[str, int], dict] = {}
        outcomes: dict[str, Outcome] = {}
        settled, self._settled = self._settled, {}
        for name, entity in sorted(snapshot.builds.items()):
            recorded = entity.model.status
            inputs = _inputs(name, entity, facts)
            seen = settled.get(name)
            if seen is not None and recorded is not None and seen[0] is recorded and seen[1] == inputs:
                self._settled[name] = seen
                outcomes[name] = seen[2]
                continue
            old = recorded.model_dump(exclude_none=True) if recorded is not None else self.unwritten.get(name, {})
            new, outcome = _status(name, entity, old, facts, now)
            outcomes[name] = outcome
            if not self.writes:
                self.unwritten[name] = new
            if new != old and status_changed(old or None, new):
                changed[(entity.path, entity.doc)] = new
            elif recorded is not None and self.writes:
                self._settled[name] = (recorded, inputs, outcome)
        return changed, outcomes


def spec_revisions(snapshot: Any, changed_paths: frozenset[str] | None, source_rev: str,
                   unwritten: Mapping[str, dict] | None = None) -> dict[str, str]:
    """Build -> the revision its spec comes from: ``source_rev`` when its file changed (or on
    a first pass), else what its status recorded (in Git, or in memory when status is not
    written). Stamped on its objects and in its status, it keeps an unchanged build's
    rendering identical from pass to pass."""
    out = {}
    for name, entity in snapshot.builds.items():
        status = entity.model.status
        recorded = status.observedRevision if status is not None else \
            (unwritten or {}).get(name, {}).get("observedRevision")
        changed = changed_paths is None or entity.path in changed_paths or not recorded
        out[name] = source_rev if changed else recorded
    return out


def _status(name: str, entity: Any, old: dict, facts: Facts, now: str) -> tuple[dict, Outcome]:
    desired = facts.desired
    decision = desired.decisions.get(name)
    rendered = desired.rendered.builds.get(name)
    selection = selection_block(decision, old.get("selection"), name in facts.standing) \
        if decision is not None else None
    new: dict[str, Any] = {}
    conditions = []
    placement = bucket = None
    errors: list[str] = []
    if entity.path in facts.unauthorized:
        conditions.append({"type": "Authorized", "status": "False", "reason": "Unauthorized",
                           "message": facts.unauthorized[entity.path]})
    if decision is None or not decision.admitted or rendered is None:
        render_errors = desired.rendered.errors
        state = decision.state if decision is not None else "Rejected"
        reason = decision.reason if decision is not None else render_errors.get(f"build/{name}", "not rendered")
        if decision is not None and decision.admitted:  # admitted but rendering failed
            state, reason = "Rejected", render_errors.get(f"build/{name}", reason)
        new["phase"] = state
        bucket = "queued" if state == "Queued" else "rejected"
        conditions.append({"type": "Scheduled", "status": "False", "reason": state, "message": reason})
    else:
        run = facts.runs.get(_run_key(rendered))
        old_run = (old.get("run") or {}).get("name")
        if run is not None:
            new["phase"] = run.phase
            conditions.append({"type": "Succeeded", "status": _SUCCEEDED_STATUS.get(run.phase, "Unknown"),
                               "reason": run.reason or run.phase, "message": run.message})
            if run.started_at:
                new["startTime"] = run.started_at
            if run.finished_at:
                new["completionTime"] = run.finished_at
        elif old_run == rendered.run_name and old.get("phase") in FINISHED:
            new.update({k: old[k] for k in ("phase", "startTime", "completionTime") if k in old})
            conditions.extend(c for c in old.get("conditions", []) if c.get("type") == "Succeeded")
        else:
            new["phase"] = "Pending"
        conditions.insert(0, {"type": "Scheduled", "status": "True", "reason": "Admitted",
                              "message": selection.get("reason") or decision.reason})
        if rendered.cluster in facts.unreachable:
            conditions.append({"type": "Applied", "status": "False", "reason": "ClusterUnavailable",
                               "message": f"provider {rendered.cluster}: {facts.unreachable[rendered.cluster]}"})
        elif not facts.offline:
            ok, message = facts.applied_ok.get(name, (True, ""))
            conditions.append({"type": "Applied", "status": "True" if ok else "False",
                               "reason": "Applied" if ok else "ApplyFailed", "message": message})
            if not ok:
                errors.append(f"build {name}: {message}")
        placement = f"{rendered.cluster}/{rendered.pool}"
        new["run"] = {"cluster": rendered.cluster, "namespace": rendered.namespace, "name": rendered.run_name,
                      "kind": rendered.run_kind}
    if selection is not None:
        new["selection"] = selection
    new["observedRevision"] = facts.revisions[name]
    new["conditions"] = merge_conditions(old.get("conditions"), conditions, now)
    new = {k: new[k] for k in _STATUS_ORDER if new.get(k) is not None}
    return new, Outcome(new.get("phase", "Pending"), placement, bucket, tuple(errors))


def selection_block(decision: Any, old: dict | None, placed: bool = False) -> dict:
    """The status.selection block; the recorded one when the decision has not changed, so an
    unchanged build costs no "why not this pool" sentences (the expensive part of a pass).

    ``placed``: the build has a run (running or finished) and keeps its pool; the recorded
    block (why it was placed there) stays as long as the pool does, whatever the wording of
    today's decision: other builds coming and going must not rewrite this build's file."""
    if old and placed and decision.admitted and (old.get("provider"), old.get("pool")) == (decision.provider,
                                                                                          decision.pool):
        return old
    if old and all(old.get(k) == getattr(decision, k) for k in ("infrastructure", "provider", "pool", "reason")) \
            and abs((old.get("confidence") or 0) - decision.confidence) < 1e-9:
        return old
    return decision.to_status(STATUS_ALTERNATIVES)


def _run_key(rendered: Any) -> tuple:
    return rendered.cluster, rendered.run_kind, rendered.namespace, rendered.run_name


def _inputs(name: str, entity: Any, facts: Facts) -> tuple:
    """Everything a build's new status is computed from, besides the status recorded in its file."""
    decision = facts.desired.decisions.get(name)
    rendered = facts.desired.rendered.builds.get(name)
    run_key = _run_key(rendered) if rendered is not None else None
    return ((decision.state, decision.provider, decision.pool, decision.reason, decision.confidence)
            if decision is not None else None,
            (run_key, rendered.pool) if rendered is not None else None,
            facts.runs.get(run_key) if run_key else None, facts.applied_ok.get(name),
            facts.unreachable.get(rendered.cluster) if rendered is not None else None,
            facts.unauthorized.get(entity.path), facts.revisions[name], name in facts.standing, facts.offline,
            facts.desired.rendered.errors.get(f"build/{name}"))
