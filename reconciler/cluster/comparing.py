"""Does a desired object need applying? And the masked, normalised diff people read.

Server-side apply sends the whole desired object; whether that would change anything is
decided here, from the live object alone (no request), in two parts:

1. **Did the desired object change since we last applied it?** Each applied object carries
   ``imagefactory.dev/applied-hash``, a hash of what was applied (without volatile
   annotations such as the revision). A different hash means a value changed, or a field was
   added or *removed* (a removal is invisible to "is desired contained in live").
2. **Did someone else change what we own?** For every field we apply, the live value must be
   ours: still owned by our field manager in ``managedFields`` (then the server may have
   normalised it, e.g. ``1024Mi`` -> ``1Gi``, and that is not a change), or equal to what we
   want. Another manager's edit moves ownership away from us, so it shows up as drift.

A field we applied that is missing from live while the hash matches was dropped by the server
(1.20 prunes fields a CRD's schema does not know, silently; there is no
``fieldValidation=Strict`` before 1.25): that is reported as a problem of the object, and
re-applying would not help, so it is not re-sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Literal


from .objects import ObjectKey
from .settings import APPLIED_HASH_ANNOTATION, FIELD_MANAGER, VOLATILE_ANNOTATIONS

_IDENTITY = ("apiVersion", "kind")
_MISSING = object()


# -- hashing -------------------------------------------------------------------------------------

def applied_hash(desired: dict[str, Any]) -> str:
    """What identifies the content of a desired object (volatile annotations left out)."""
    body = _without_annotations(desired, VOLATILE_ANNOTATIONS + (APPLIED_HASH_ANNOTATION,))
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def with_applied_hash(desired: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``desired`` carrying its applied-hash annotation (what apply sends)."""
    out = dict(desired)
    meta = dict(out.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_HASH_ANNOTATION: applied_hash(desired)}
    out["metadata"] = meta
    return out


def _without_annotations(obj: dict[str, Any], drop: Iterable[str]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("annotations"):
        return obj
    annotations = {k: v for k, v in meta["annotations"].items() if k not in drop}
    meta = dict(meta)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations")
    return {**obj, "metadata": meta}


# -- comparing -----------------------------------------------------------------------------------

Change = Literal["missing", "differs"]


@dataclass(frozen=True)
class Verdict:
    action: Literal["create", "update", "unchanged"]
    why: str = ""
    # fields we apply that the server does not keep (CRD schema pruning); reported, not re-sent
    missing: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()  # fields someone else changed

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


def compare(desired: dict[str, Any], live: dict[str, Any] | None, manager: str = FIELD_MANAGER) -> Verdict:
    """Would applying ``desired`` change ``live``? (None: the object does not exist.)"""
    if live is None:
        return Verdict("create", "not on the cluster")
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if annotations.get(APPLIED_HASH_ANNOTATION) != applied_hash(desired):
        why = "the desired object changed" if APPLIED_HASH_ANNOTATION in annotations else \
            "not applied by the reconciler before (no applied-hash)"
        return Verdict("update", why)
    want = _without_annotations(desired, VOLATILE_ANNOTATIONS + (APPLIED_HASH_ANNOTATION,))
    changes = field_changes(want, live, owned_fields(live, manager))
    missing = tuple(p for p, c in changes if c == "missing")
    drift = tuple(p for p, c in changes if c == "differs")
    if drift:
        return Verdict("update", "changed on the cluster by someone else: " + ", ".join(drift[:5]), missing, drift)
    return Verdict("unchanged", "", missing, drift)


def owned_fields(live: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any] | None:
    """The union of ``manager``'s fieldsV1 sets on ``live``; None when it has no managedFields."""
    entries = (live.get("metadata") or {}).get("managedFields")
    if not entries:
        return None
    out: dict[str, Any] = {}
    for entry in entries:
        if entry.get("manager") == manager and isinstance(entry.get("fieldsV1"), dict):
            _merge(out, entry["fieldsV1"])
    return out


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for k, v in more.items():
        if isinstance(v, dict):
            _merge(into.setdefault(k, {}), v)
        else:
            into.setdefault(k, v)


def field_changes(want: dict[str, Any], live: Any, owned: dict[str, Any] | None, path: str = "") -> list[tuple[str, Change]]:
    """Fields of ``want`` that live lacks ("missing") or holds with a value that is neither
    ours nor equal ("differs"). ``owned`` None means ownership is unknown: values must equal."""
    out: list[tuple[str, Change]] = []
    _walk(want, live, owned, path, out, top=not path)
    return out


def _walk(want: dict[str, Any], live: Any, owned: Any, path: str, out: list[tuple[str, Change]], top: bool = False) -> None:
    for k, v in want.items():
        if v is None or (top and k in _IDENTITY) or (top and k == "status"):
            continue
        if path == "metadata" and k in ("name", "namespace"):
            continue
        p = f"{path}.{k}" if path else str(k)
        lv = live.get(k, _MISSING) if isinstance(live, dict) else _MISSING
        sub = owned.get(f"f:{k}") if isinstance(owned, dict) else None
        if lv is _MISSING:
            if not _is_zero(v):  # built-in types omit zero values ("omitempty"): not a loss
                out.append((p, "missing"))
        elif isinstance(v, dict) and v:
            if isinstance(lv, dict):
                _walk(v, lv, sub if owned is not None else None, p, out)
            else:
                out.append((p, "differs"))
        elif isinstance(v, list):
            _walk_list(v, lv, sub, owned is not None, p, out)
        elif owned is not None and sub is not None:
            continue  # ours: the server may have normalised the value
        elif not contains(lv, v):
            out.append((p, "differs"))


def _walk_list(want: list[Any], live: Any, owned: Any, known: bool, path: str, out: list[tuple[str, Change]]) -> None:
    if contains(live, want):
        return
    if not known or owned is None:
        out.append((path, "differs"))
        return
    keyed = [(json.loads(k[2:]), sub) for k, sub in owned.items() if k.startswith("k:")] if isinstance(owned, dict) else []
    if not keyed:
        return  # an atomic list we own: the server's normalisation
    if not isinstance(live, list):
        out.append((path, "differs"))
        return
    for i, item in enumerate(want):
        if not isinstance(item, dict):
            out.append((f"{path}[{i}]", "differs"))
            continue
        match = next((sub for key, sub in keyed if isinstance(key, dict)
                      and all(item.get(f, val) == val for f, val in key.items())), None)
        key = next((key for key, sub in keyed if sub is match), None)
        label = f"{path}[{item.get('name', i)}]"
        if match is None:
            out.append((label, "differs"))
            continue
        current = next((x for x in live if isinstance(x, dict) and all(x.get(f) == val for f, val in key.items())), None)
        if current is None:
            out.append((label, "missing"))
        else:
            _walk(item, current, match, label, out)


def _is_zero(value: Any) -> bool:
    return value in ({}, [], "", 0) or value is False


def contains(live: Any, want: Any) -> bool:
    """``want`` is contained in ``live`` (maps may have more keys; lists match element-wise)."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return False
        return all((k not in live) if v is None else (contains(live[k], v) if k in live else _is_zero(v))
                   for k, v in want.items())
    if isinstance(want, list):
        if not isinstance(live, list) or len(live) != len(want):
            return False
        return all(contains(a, b) for a, b in zip(live, want))
    if isinstance(want, bool) or isinstance(live, bool):
        return want is live
    return live == want


def pruned_fields(applied: dict[str, Any], returned: dict[str, Any]) -> tuple[str, ...]:
    """Fields we sent that the server's answer lacks: dropped by its schema."""
    want = _without_annotations(applied, ())
    return tuple(p for p, c in field_changes(want, returned, None) if c == "missing")


# -- diffs ----------------------------------------------------------------------------------------

def unified_diff(key: ObjectKey, before: dict[str, Any] | None, after: dict[str, Any] | None,
                 cluster: str = "") -> str:
    """A unified diff of two versions of an object (None: absent), normalised and masked: the
    same text ``diff``, ``review`` and plans show (``reconciler.planning.diff_text``)."""
    from ..planning import diff_text

    return diff_text(f"{cluster + '/' if cluster else ''}{key.namespace or '_'}/{key.kind}/{key.name}", before, after)
