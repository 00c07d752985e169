"""What every renderer shares: the label contract, names, durations, hashing, the error type."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterable

from ..contract import (BUILD_LABEL, COMPONENT_LABEL, POOL_LABEL, REVISION_ANNOTATION,
                        SOURCE_ANNOTATION, TEAM_LABEL, TEMPLATE_ANNOTATION, TEMPLATE_DIGEST_ANNOTATION)
from ..contract import MANAGED_BY_LABEL as MANAGED_BY_KEY
from ..contract import MANAGED_BY_VALUE as MANAGED_BY
from ..errors import TerminalError

# Objects shared by several builds (team namespace, RBAC, Pipelines, pool infrastructure) carry
# the build label with this value: they belong to no single build. Label values may be empty.
SHARED = ""

# The version of the built-in (Python) renderers, recorded like a template version.
RENDERER_VERSION = "1.0.0"

# Apply order: what others depend on first (namespaces, then identities and RBAC, then config,
# then workloads, then the runs). Unknown kinds go just before the runs.
KIND_ORDER = {
    "Namespace": 0, "ServiceAccount": 1, "Role": 2, "RoleBinding": 3, "Secret": 4, "ConfigMap": 5,
    "Service": 6, "Deployment": 7, "HorizontalPodAutoscaler": 8, "BuildKitPool": 9, "Pipeline": 10,
    "PipelineRun": 20, "Job": 20,
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class RenderError(TerminalError):
    """A build or pool cannot be rendered (missing template version, a value no transport can
    carry safely, ...). One build's error never stops the others: callers report it per build."""


def model_of(value: Any) -> Any:
    """The pydantic model of a loader Entity, or ``value`` itself (a model, or None)."""
    return value.model if type(value).__name__ == "Entity" else value


def labels(*, build: str = SHARED, pool: str = SHARED, team: str | None = None,
           component: str) -> dict[str, str]:
    out = {MANAGED_BY_KEY: MANAGED_BY, BUILD_LABEL: build, POOL_LABEL: pool, COMPONENT_LABEL: component}
    if team:
        out[TEAM_LABEL] = team
    return out


def annotations(revision: str, template: str, source: str | None = None,
                digest: str | None = None) -> dict[str, str]:
    out = {REVISION_ANNOTATION: revision, TEMPLATE_ANNOTATION: template}
    if digest:
        out[TEMPLATE_DIGEST_ANNOTATION] = digest
    if source:
        out[SOURCE_ANNOTATION] = source
    return out


def metadata(name: str, namespace: str | None, lbls: dict[str, str], annos: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = lbls
    meta["annotations"] = annos
    return meta


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8", "surrogatepass")).hexdigest()[:length]


def hashed_name(base: str, spec_hash: str, limit: int = 63) -> str:
    """``<base>-<hash>``, a valid DNS label of at most ``limit`` characters.

    The base is cut (never the hash) when too long; a cut that ends in '-' is trimmed so the
    name stays a DNS label. Two long bases with the same prefix still differ by the hash, which
    covers the full (uncut) build name.
    """
    room = limit - len(spec_hash) - 1
    cut = base[:room].rstrip("-")
    name = f"{cut}-{spec_hash}" if cut else spec_hash
    if not _DNS_LABEL.match(name):  # the models only let DNS labels through; never expected
        raise RenderError(f"cannot derive a Kubernetes name from '{base[:40]}'")
    return name


def dns_name(value: str, limit: int = 63) -> str:
    """Cut ``value`` to ``limit`` characters, adding a short hash when it was cut."""
    if len(value) <= limit:
        return value
    return hashed_name(value, hashlib.sha256(value.encode()).hexdigest()[:8], limit)


def duration_seconds(text: str) -> int:
    """A Go duration (``90s``, ``1h30m``) in whole seconds (at least 1)."""
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if not total:
        raise RenderError(f"'{text[:40]}' is not a duration")
    return max(1, int(total))


def go_duration(text: str) -> str:
    """The canonical Go form Tekton writes back (``1h`` -> ``1h0m0s``), so a read-back compares equal."""
    seconds = duration_seconds(text)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def order_objects(objects: Iterable[dict]) -> list[dict]:
    """Stable sort into apply order (see KIND_ORDER); namespaced objects after cluster ones."""
    def key(item: tuple[int, dict]) -> tuple:
        i, obj = item
        return (KIND_ORDER.get(obj.get("kind", ""), 15), i)
    return [obj for _, obj in sorted(enumerate(objects), key=key)]


def identity(obj: dict) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace", "") or "", meta.get("name", ""))


def plain_copy(value: Any) -> Any:
    """A deep copy of plain JSON-like data (faster than ``copy.deepcopy`` for dicts and lists)."""
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    return value
