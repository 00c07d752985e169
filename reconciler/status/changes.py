"""Did a status really change? And conditions whose transition times only move on change.

A write-back commit costs a push and wakes every watcher of the repository, so a status
that differs only by timestamps that nobody should have moved is "unchanged".
Conditions follow Kubernetes' rule (``meta.SetStatusCondition``): ``lastTransitionTime``
changes only when the condition's ``status`` changes.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .writeback import normalize_status


def status_changed(old_status: Mapping | Any | None, new_status: Mapping | Any) -> bool:
    """True when ``new_status`` says something ``old_status`` did not.

    Ignored: None-valued fields (absent and null are the same), and a condition's
    ``lastTransitionTime`` when the condition (type, status) is the same on both sides;
    pure timestamp churn never makes a commit.
    """
    if old_status is None:
        return True
    old = normalize_status(old_status)
    new = normalize_status(new_status)
    old_by_type = {c.get("type"): c for c in old.get("conditions", []) if isinstance(c, dict)}
    return _comparable(old, old_by_type) != _comparable(new, old_by_type)


def _comparable(status: dict, old_by_type: dict) -> dict:
    out = dict(status)
    conditions = []
    for cond in status.get("conditions", []) or []:
        if isinstance(cond, dict):
            previous = old_by_type.get(cond.get("type"))
            if previous is not None and previous.get("status") == cond.get("status"):
                cond = {k: v for k, v in cond.items() if k != "lastTransitionTime"}
        conditions.append(cond)
    if "conditions" in status:
        out["conditions"] = conditions
    return out


def merge_conditions(old: Iterable[Mapping] | None, new: Iterable[Mapping], now: str) -> list[dict]:
    """The conditions to write: ``new``, in its order, with ``lastTransitionTime`` kept from
    ``old`` when a condition's status did not change, and set to ``now`` when it did (or
    when the condition is new and carries no time of its own)."""
    previous = {c.get("type"): c for c in (old or []) if isinstance(c, Mapping)}
    out = []
    for cond in new:
        cond = dict(cond)
        before = previous.get(cond.get("type"))
        if before is not None and before.get("status") == cond.get("status") and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        elif not cond.get("lastTransitionTime"):
            cond["lastTransitionTime"] = now
        out.append(cond)
    return out
