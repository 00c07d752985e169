"""Desired vs observed: what a pass would create, change, leave alone or prune, and the diff.

The observed side is either live objects (the server-side dry-run result next to the live
object, from ``reconciler.cluster``) or the objects rendered from another revision
(``diff --against``, ``review``). Either way this module compares plain dicts; it never
talks to a cluster.

Comparison ignores what the server owns (uid, resourceVersion, managedFields, status...), so
"unchanged" means "applying would change nothing". Secret values are masked in every diff;
only whether they changed is shown.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable, Literal

import yaml

from .contract import (APPLIED_HASH_ANNOTATION, BUILD_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, POOL_LABEL,
                       REVISION_ANNOTATION)

MANAGED_BY = (MANAGED_BY_LABEL, MANAGED_BY_VALUE)

# cancel: a running PipelineRun of a removed build gets spec.status Cancelled, not deleted.
Action = Literal["create", "update", "unchanged", "prune", "cancel"]
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
# Set by kubectl, or by our apply to tell its own changes from others' (cluster.comparing).
_SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", APPLIED_HASH_ANNOTATION)
# Annotations that change on every revision without changing what runs: a difference in
# these alone is not a change worth applying (the revision is re-stamped with the next real one).
_VOLATILE_ANNOTATIONS = (REVISION_ANNOTATION,)
_SECRET_KINDS = ("Secret",)
_RUN_KINDS = ("PipelineRun", "Job")
MASK = "***"


@dataclass(frozen=True, order=True)
class ObjectKey:
    cluster: str
    api_version: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"

    @classmethod
    def of(cls, cluster: str, obj: dict) -> "ObjectKey":
        meta = obj.get("metadata") or {}
        return cls(cluster, obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", "") or "", meta.get("name", ""))


@dataclass(frozen=True)
class PlanEntry:
    action: Action
    key: ObjectKey
    build: str | None
    pool: str | None
    source: str | None  # the repository file the object comes from
    diff: str  # unified diff (masked); empty for unchanged
    desired: dict | None = field(default=None, repr=False, compare=False)
    observed: dict | None = field(default=None, repr=False, compare=False)

    def as_dict(self, with_diff: bool = True) -> dict:
        out = {"action": self.action, "cluster": self.key.cluster, "apiVersion": self.key.api_version,
               "kind": self.key.kind, "namespace": self.key.namespace, "name": self.key.name,
               "build": self.build, "pool": self.pool, "source": self.source}
        if with_diff:
            out["diff"] = self.diff
        return out


@dataclass(frozen=True)
class Plan:
    entries: tuple[PlanEntry, ...]
    # cluster -> reason, for clusters that could not be compared
    unreachable: dict[str, str] = field(default_factory=dict)
    # objects that could not be compared (e.g. the server refused the dry run): (key, reason)
    failed: tuple[tuple[ObjectKey, str], ...] = ()

    @property
    def changes(self) -> tuple[PlanEntry, ...]:
        return tuple(e for e in self.entries if e.action != "unchanged")

    def count(self, action: Action) -> int:
        return sum(1 for e in self.entries if e.action == action)

    def clusters(self, changed_only: bool = True) -> list[str]:
        entries = self.changes if changed_only else self.entries
        return sorted({e.key.cluster for e in entries})

    def summary(self) -> str:
        if not self.changes:
            text = "no changes"
        else:
            parts = [f"{self.count('create')} to create", f"{self.count('update')} to change",
                     f"{self.count('prune')} to prune"]
            if self.count("cancel"):
                parts.append(f"{self.count('cancel')} to cancel")
            n = len(self.clusters())
            text = ", ".join(parts) + f" on {n} cluster{'s' * (n != 1)}"
        if self.unreachable:
            n = len(self.unreachable)
            text += f"; {n} cluster{'s' * (n != 1)} not compared (unreachable)"
        if self.failed:
            n = len(self.failed)
            text += f"; {n} object{'s' * (n != 1)} could not be compared"
        return text

    def as_dict(self, with_diff: bool = True) -> dict:
        return {"summary": self.summary(),
                "counts": {a: self.count(a) for a in ("create", "update", "unchanged", "prune", "cancel")},
                "entries": [e.as_dict(with_diff) for e in self.changes],
                "unreachable": dict(sorted(self.unreachable.items())),
                "failed": [{"cluster": k.cluster, "object": str(k), "reason": r} for k, r in self.failed]}


def is_managed(obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1]


def normalize(obj: dict) -> dict:
    """The parts of an object that applying could change, without server-owned fields."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out.get("metadata") or {})
    for key in _SERVER_METADATA:
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SERVER_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    if not meta.get("labels"):
        meta.pop("labels", None)
    out["metadata"] = meta
    return out


def _comparable(obj: dict) -> dict:
    out = normalize(obj)
    annotations = {k: v for k, v in (out["metadata"].get("annotations") or {}).items() if k not in _VOLATILE_ANNOTATIONS}
    meta = dict(out["metadata"])
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**out, "metadata": meta}


def mask_secrets(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Replace Secret values with a mask that only says whether each one changed."""
    kind = (after or before or {}).get("kind")
    if kind not in _SECRET_KINDS:
        return before, after
    masked = []
    for this, other in ((before, after), (after, before)):
        if this is None:
            masked.append(None)
            continue
        copy = dict(this)
        for section in ("data", "stringData"):
            values = this.get(section)
            if not isinstance(values, dict):
                continue
            theirs = (other or {}).get(section) or {}
            copy[section] = {k: MASK if theirs.get(k) == v else f"{MASK} ({'before' if this is before else 'after'})"
                             for k, v in values.items()}
        masked.append(copy)
    return masked[0], masked[1]


def unified_diff(key: ObjectKey, before: dict | None, after: dict | None) -> str:
    return diff_text(f"{key.cluster}/{key.namespace or '_'}/{key.kind}/{key.name}", before, after)


def diff_text(label: str, before: dict | None, after: dict | None) -> str:
    """The one diff people read (plan, diff, review): normalized, Secret values masked.
    ``label`` names the object (cluster/namespace/kind/name); None means absent."""
    before, after = mask_secrets(before, after)
    a = _dump(normalize(before)) if before is not None else ""
    b = _dump(normalize(after)) if after is not None else ""
    lines = difflib.unified_diff(a.splitlines(keepends=True), b.splitlines(keepends=True),
                                 fromfile=f"live/{label}" if before is not None else "/dev/null",
                                 tofile=f"desired/{label}" if after is not None else "/dev/null", n=3)
    return "".join(lines)


def _dump(obj: dict) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


# libyaml's emitter: diffs of many objects are a hot path in review.
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def make_plan(
    desired: dict[str, Iterable[dict]],
    observed: dict[str, Iterable[dict]],
    sources: dict[str, str] | None = None,
    unreachable: dict[str, str] | None = None,
    prune: bool = True,
    compared: dict[str, dict[ObjectKey, dict]] | None = None,
) -> Plan:
    """Compare per cluster. ``desired`` and ``observed`` map cluster -> objects.

    ``compared`` optionally gives, per cluster, the server's dry-run result for a desired
    object; when present it is what "desired" means for comparison (defaults filled in by
    the server then do not show as changes). ``sources`` maps build or pool name -> file.
    Only managed objects are ever pruned, and nothing is pruned on a cluster that was not
    observed, or when ``prune`` is False (e.g. the repository failed to load).
    """
    sources = sources or {}
    unreachable = dict(unreachable or {})
    entries: list[PlanEntry] = []
    for cluster in sorted(set(desired) | set(observed)):
        if cluster in unreachable:
            continue
        live = {ObjectKey.of(cluster, o): o for o in observed.get(cluster, ())}
        dry = (compared or {}).get(cluster, {})
        wanted: dict[ObjectKey, dict] = {}
        for obj in desired.get(cluster, ()):
            wanted[ObjectKey.of(cluster, obj)] = obj
        for key, obj in wanted.items():
            current = live.get(key)
            target = dry.get(key, obj)
            build, pool = _owner(obj)
            source = sources.get(build or "") or sources.get(pool or "")
            if current is None:
                entries.append(PlanEntry("create", key, build, pool, source, unified_diff(key, None, target), target, None))
            elif _differs(current, target):
                entries.append(PlanEntry("update", key, build, pool, source, unified_diff(key, current, target), target, current))
            else:
                entries.append(PlanEntry("unchanged", key, build, pool, source, "", target, current))
        if not prune:
            continue
        still_built = {_owner(o)[0] for o in wanted.values()} - {None, ""}
        for key, obj in live.items():
            if key in wanted or not is_managed(obj):
                continue
            build, pool = _owner(obj)
            if key.kind in _RUN_KINDS and build in still_built:
                continue  # a superseded run of a build that still exists: kept for retention, not pruned
            entries.append(PlanEntry("prune", key, build, pool, sources.get(build or ""), unified_diff(key, obj, None), None, obj))
    entries.sort(key=lambda e: (e.key.cluster, e.build or "", e.key.kind, e.key.namespace, e.key.name))
    return Plan(tuple(entries), unreachable)


def _differs(live: dict, desired: dict) -> bool:
    """True when applying ``desired`` would change ``live``.

    Server-side apply only sets the fields we send, so a field the server or another
    manager added to live is not a difference; a field we send with another value is.
    """
    return not _contains(_comparable(live), _comparable(desired))


def _contains(live: object, want: object) -> bool:
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and _contains(live[k], v) for k, v in want.items() if v is not None) and all(
            k not in live for k, v in want.items() if v is None)
    if isinstance(want, list):
        if not isinstance(live, list) or len(live) != len(want):
            return False
        return all(_contains(a, b) for a, b in zip(live, want))
    return live == want


def _owner(obj: dict) -> tuple[str | None, str | None]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(BUILD_LABEL), labels.get(POOL_LABEL)
