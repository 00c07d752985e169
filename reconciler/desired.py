"""From a loaded snapshot to the objects each cluster should hold: select, then render.

One function so that ``render``, ``diff``, ``review`` and ``reconcile`` place every build the
same way. Selection here trusts the repository: who was allowed to write a build's
``placement`` or ``force`` is decided from Git history by ``reconciler.policy`` before this
runs (``review`` reports violations; ``reconcile`` does not apply violating changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .models import PERMISSIONS

# The permissions selection sees: everything, because Git history was authorized upstream.
TRUSTED = frozenset(PERMISSIONS)


@dataclass(frozen=True)
class Desired:
    """Decisions and renders, and where each pool and build was defined.

    It does not hold the snapshot it came from: the loop keeps the last Desired between
    passes, and the snapshot (every model of the repository) would then stay alive while the
    next pass loads a new one."""

    paths: dict[str, str]  # pool and build name -> the file it is defined in
    decisions: dict  # build name -> selection Decision
    rendered: Any  # rendering.RenderResult (admitted builds only)

    @property
    def clusters(self) -> dict[str, tuple[dict, ...]]:
        return self.rendered.clusters

    def sources(self) -> dict[str, str]:
        """Build and pool name -> the file it is defined in (for plans and reports)."""
        return dict(self.paths)


def compute_desired(snapshot: Any, *, health: Mapping | None = None, load: Mapping[str, int] | None = None,
                    builds: Iterable[str] | None = None, renderer: Any = None,
                    revision: str | None = None, standing: Mapping[str, str] | None = None,
                    keep: Mapping[str, str] | None = None) -> Desired:
    """Select and render. ``standing``: builds whose run is ``"running"`` or ``"finished"``;
    ``keep``: the pool each such run is on (see ``selection.select_all``)."""
    from .rendering import render_snapshot
    from .selection import Actor, Catalog, select_all

    if standing is None and keep is None:  # as the reconciler would see them: from the statuses
        standing, keep = standing_of(snapshot)

    catalog = Catalog.build(snapshot.providers, snapshot.pools, health=health, load=load, factory=snapshot.factory)
    wanted = snapshot.builds if builds is None else {n: snapshot.builds[n] for n in builds if n in snapshot.builds}
    actor = Actor("repository (authorized by Git history)", TRUSTED, "review")
    decisions = select_all(wanted, catalog, actor=actor, standing=standing, keep=keep)
    placements = {name: (d.provider, d.pool) for name, d in decisions.items() if d.admitted}
    rendered = render_snapshot(snapshot, revision, placements=placements, builds=sorted(placements),
                               renderer=renderer)
    if isinstance(renderer, CachingRenderer):
        renderer.finish()
    paths = {name: e.path for name, e in snapshot.pools.items()}
    paths.update({name: e.path for name, e in snapshot.builds.items()})
    return Desired(paths, decisions, rendered)


def standing_of(snapshot: Any, revisions: Mapping[str, str] | None = None,
                unwritten: Mapping[str, dict] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(standing, keep): builds whose status records a run of their current spec, as
    ``"finished"`` or ``"running"``, and the pool that run is on (a build whose file changed
    since is a new request, whatever its old run did: with ``revisions``, the revision each
    build's spec comes from, a status recording another one does not count). ``unwritten``:
    the statuses kept in memory where status is not written."""
    from .status.phases import FINISHED

    unwritten = unwritten or {}
    standing, keep = {}, {}
    for name, entity in snapshot.builds.items():
        status = entity.model.status
        if status is not None:
            phase, run, observed = status.phase, status.run, status.observedRevision
            pool = status.selection.pool if status.selection is not None else None
        else:  # status not written (offline, working tree): the last one kept in memory
            old = unwritten.get(name) or {}
            phase, run, observed = old.get("phase"), old.get("run"), old.get("observedRevision")
            pool = (old.get("selection") or {}).get("pool")
        if run is None or (revisions is not None and observed != revisions.get(name)):
            continue
        if phase in FINISHED:
            standing[name] = "finished"
        elif phase in ("Pending", "Running"):
            standing[name] = "running"
        else:
            continue
        if pool:
            keep[name] = pool
    return standing, keep


class CachingRenderer:
    """Remembers each build's rendering between passes, keyed on everything it depends on:
    the build's, pool's and provider's blobs, factory.yaml, and the revision stamped on it.

    ``revisions`` gives each build the revision its spec came from (its observedRevision), so
    an unchanged build renders to the identical objects and costs a dictionary lookup.
    Only the renders the last pass used are kept: when the pass has rendered (``finish``),
    the others (changed builds, builds no longer admitted) are dropped.

    factory.yaml is keyed by the identity of its model, so the models of the keys are held
    (a freed model's id could be given to the next one).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.revisions: dict[str, str] = {}
        self._cache: dict[tuple, Any] = {}
        self._used: dict[tuple, Any] = {}
        self._factories: dict[int, Any] = {}  # id -> the factory model of keys in _cache and _used
        self.hits = 0

    def begin(self, revisions: dict[str, str], inner: Any | None = None) -> "CachingRenderer":
        self._cache, self._used = self._used or self._cache, {}
        self.revisions = revisions
        self.hits = 0
        if inner is not None:
            before = getattr(self.inner, "templates", None)
            reuse = getattr(getattr(inner, "templates", None), "reuse", None)
            if before is not None and reuse is not None:
                reuse(before)  # a new renderer per pass need not compile the templates again
            self.inner = inner
        return self

    def finish(self) -> None:
        """The pass has rendered: forget what it did not use."""
        self._cache = {}
        live = {key[7] for key in self._used}
        self._factories = {i: f for i, f in self._factories.items() if i in live}

    def held(self) -> int:
        """How many renders are kept."""
        return len(self._cache.keys() | self._used.keys())

    def render_build(self, build: Any, pool: Any, provider: Any, factory: Any, revision: str) -> Any:
        revision = self.revisions.get(build.name, revision)
        key = (build.name, build.blob, build.doc, pool.name, pool.blob, provider.name, provider.blob, id(factory),
               revision)
        hit = self._cache.get(key)
        if hit is None:
            hit = self.inner.render_build(build, pool, provider, factory, revision)
            self._factories.setdefault(id(factory), factory)
        else:
            self.hits += 1
        self._used[key] = hit
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
