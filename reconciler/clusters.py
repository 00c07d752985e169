"""The repository's providers as live clusters: connections, health, and a live plan.

The glue between the loaded repository and ``reconciler.cluster`` (which knows nothing of
Entities): credentials are opened from sealed values with the process's keyring, one
provider's failure (unreachable, wrong key, 403) stays that provider's, and nothing here
writes to a cluster except ``reconcile``'s apply step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import FactoryError
from .planning import ObjectKey, Plan, PlanEntry


@dataclass(frozen=True)
class ProviderLink:
    name: str
    spec: Any
    credentials: Any  # Callable[[field], bytes | None]


def keyring_from_env() -> Any:
    from .sealing import Keyring

    return Keyring.from_env()


def links(snapshot: Any, keyring: Any = None, only: Iterable[str] | None = None) -> list[ProviderLink]:
    from .cluster import no_credentials, sealed_credentials

    wanted = set(only) if only is not None else None
    out = []
    for name, entity in sorted(snapshot.providers.items()):
        if wanted is not None and name not in wanted:
            continue
        spec = entity.spec
        creds = sealed_credentials(keyring, name, spec) if (spec.credentials and keyring is not None) else no_credentials
        out.append(ProviderLink(name, spec, creds))
    return out


def check_health(pool: Any, provider_links: list[ProviderLink]) -> tuple[dict, dict]:
    """provider -> selection ProviderHealth, and provider -> ClusterHealth (or an error string)."""
    from .cluster import check_health as check
    from .selection import ProviderHealth

    def one(link: ProviderLink):
        try:
            conn = pool.get(link.name, link.spec, link.credentials)
            result = check(conn, link.spec)
            return link.name, result.to_selection(), result
        except FactoryError as exc:
            return link.name, ProviderHealth("Unhealthy", _one_line(exc)), str(exc)

    if not provider_links:
        return {}, {}
    with ThreadPoolExecutor(max_workers=min(8, len(provider_links)), thread_name_prefix="health") as ex:
        results = list(ex.map(one, provider_links))
    return {n: h for n, h, _ in results}, {n: r for n, _, r in results}


def live_plan(pool: Any, provider_links: list[ProviderLink], clusters: dict[str, tuple[dict, ...]],
              source_ok: bool = True, unreachable: dict[str, str] | None = None) -> Plan:
    """Server-side dry run of every provider's desired objects against what is live."""
    from .cluster import diff_objects

    unreachable = dict(unreachable or {})
    entries: list[PlanEntry] = []
    failed: list[tuple[ObjectKey, str]] = []

    def one(link: ProviderLink):
        try:
            conn = pool.get(link.name, link.spec, link.credentials)
            return link.name, diff_objects(conn, clusters.get(link.name, ()), source_ok=source_ok), None
        except FactoryError as exc:
            return link.name, None, _one_line(exc)

    targets = [link for link in provider_links if link.name not in unreachable]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets))), thread_name_prefix="diff") as ex:
        results = list(ex.map(one, targets))
    for name, report, error in results:
        if error is not None:
            unreachable[name] = error
            continue
        for d in report.diffs:
            key = ObjectKey(name, d.key.group, d.key.kind, d.key.namespace, d.key.name)
            if d.action == "failed":
                failed.append((key, d.message))
            else:
                entries.append(PlanEntry(d.action, key, d.build, d.pool, None, d.diff))
    entries.sort(key=lambda e: (e.key.cluster, e.build or "", e.key.kind, e.key.namespace, e.key.name))
    return Plan(tuple(entries), unreachable, tuple(failed))


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
