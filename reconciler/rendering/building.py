"""The renderer's entry points: one build, one pool's infrastructure, a whole snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .buildkit import buildkit_namespace, buildkit_pool, endpoint, form_of, standalone
from .certificates import CertStore, InMemoryCertStore
from .common import RenderError, identity, model_of, order_objects
from .context import BuildFacts, Scheduling, build_facts, scheduling
from .jobs import buildkit_job, kaniko_job
from .tekton import pipeline_object, pipeline_run
from .templates import TemplateStore
from .tenancy import render_team, service_account, team_namespace


@dataclass(frozen=True)
class RenderedBuild:
    """What one build needs on its cluster, in apply order (namespace and RBAC first, the run last).

    Shared objects (team namespace, RBAC, Pipelines) appear in every build that needs them,
    identical; :func:`render_snapshot` keeps one of each. Treat the dicts as read-only: shared
    objects may be the same dict in several results.
    """

    build: str
    team: str
    cluster: str  # the provider's name
    pool: str
    namespace: str
    backend: str  # tekton | kaniko-job | buildkit
    template: str  # "<method>@<version>" (tekton) or the built-in renderer's name@version
    run_kind: str  # PipelineRun | Job
    run_name: str
    objects: tuple[dict, ...]

    @property
    def run(self) -> dict:
        return self.objects[-1]


@dataclass(frozen=True)
class RenderedPool:
    """A pool's own infrastructure (BuildKit pools only; empty for the others)."""

    pool: str
    cluster: str
    form: str | None  # controller | standalone | None
    namespace: str | None
    objects: tuple[dict, ...]


@dataclass(frozen=True)
class RenderResult:
    """A snapshot rendered: objects per cluster (deduplicated, in apply order) and what failed."""

    clusters: dict[str, tuple[dict, ...]]
    builds: dict[str, RenderedBuild]
    pools: dict[str, RenderedPool]
    errors: dict[str, str] = field(default_factory=dict)  # "build/<name>" or "pool/<name>" -> reason


class Renderer:
    """Holds what is worth keeping between builds and passes: compiled templates, per-pool
    scheduling, per-team objects, Pipelines. One per process is enough."""

    def __init__(self, templates: TemplateStore | None = None, certs: CertStore | None = None,
                 now: Callable[[], Any] | None = None) -> None:
        self.templates = templates or TemplateStore()
        self.certs = certs if certs is not None else InMemoryCertStore()
        self.now = now
        self._sched: dict[tuple, Scheduling] = {}
        self._teams: dict[tuple, tuple[dict, ...]] = {}
        self._pipelines: dict[tuple, dict] = {}

    # -- one build --------------------------------------------------------------------------

    def render_build(self, build: Any, pool: Any, provider: Any, factory: Any, revision: str) -> RenderedBuild:
        factory = model_of(factory)
        backend = pool.spec.backend
        if pool.spec.provider != provider.name:
            raise RenderError(f"pool {pool.name} belongs to provider {pool.spec.provider}, not {provider.name}")
        if build.spec.method not in pool.spec.methods:
            raise RenderError(f"pool {pool.name} does not accept method {build.spec.method}")
        facts = build_facts(build, pool, provider, factory, self._scheduling(pool, provider))
        objects = list(self._team_objects(facts, factory, revision))
        if backend == "tekton":
            tv = self.templates.get(facts.method, facts.template_version)
            key = (tv.method, tv.version, facts.namespace, revision)
            pipeline = self._pipelines.get(key)
            if pipeline is None:
                pipeline = self._pipelines[key] = pipeline_object(self.templates, tv, facts.namespace, revision)
            objects.append(pipeline)
            run = pipeline_run(self.templates, tv, facts, revision)
            template = tv.ref
        else:
            if facts.template_version is not None:
                self.templates.get(facts.method, facts.template_version)  # a pin must exist
            if facts.method not in ("docker", "kaniko", "buildx"):
                raise RenderError(f"backend {backend} builds Dockerfiles, not method {facts.method}")
            if backend == "kaniko-job":
                if len(facts.platforms) > 1:
                    raise RenderError("backend kaniko-job builds one platform per run; use a buildkit or tekton pool with buildx")
                run = kaniko_job(facts, revision, _retention(factory))
            elif backend == "buildkit":
                ep = endpoint(pool, provider, factory)
                controller = (pool.name, ep.namespace) if ep.form == "controller" else None
                run = buildkit_job(facts, revision, _retention(factory), address=ep.address, tls_name=ep.tls_name,
                                   client_secret=ep.client_secret, controller_pool=controller)
            else:  # the model admits no other value
                raise RenderError(f"unknown backend {backend}")
            template = run["metadata"]["annotations"]["imagefactory.dev/template"]
        objects.append(run)
        return RenderedBuild(build=facts.name, team=facts.team, cluster=provider.name, pool=pool.name,
                             namespace=facts.namespace, backend=backend, template=template, run_kind=run["kind"],
                             run_name=run["metadata"]["name"], objects=tuple(objects))

    def _scheduling(self, pool: Any, provider: Any) -> Scheduling:
        key = (pool.name, getattr(pool, "blob", None), provider.name, getattr(provider, "blob", None))
        if not key[1] or not key[3]:
            return scheduling(pool, provider)
        sched = self._sched.get(key)
        if sched is None:
            sched = self._sched[key] = scheduling(pool, provider)
        return sched

    def _team_objects(self, facts: BuildFacts, factory: Any, revision: str) -> tuple[dict, ...]:
        key = (facts.team, facts.namespace, facts.service_account, facts.provider_type, revision)
        objects = self._teams.get(key)
        if objects is None:
            objects = self._teams[key] = tuple(render_team(facts.team, facts.namespace, facts.service_account,
                                                           facts.provider_type, revision))
        return objects

    # -- one pool ---------------------------------------------------------------------------

    def render_pool_infrastructure(self, pool: Any, provider: Any, factory: Any, revision: str, *,
                                   teams: Iterable[str] = ()) -> RenderedPool:
        """A BuildKit pool's infrastructure; ``teams``: the teams whose builds use the pool (their
        namespaces get the client certificate of a standalone pool)."""
        factory = model_of(factory)
        if pool.spec.backend != "buildkit":
            return RenderedPool(pool.name, provider.name, None, None, ())
        sched = self._scheduling(pool, provider)
        sa = service_account(factory)
        wanted = sorted(set(teams) | {t for t in pool.spec.teams if t != "*"})
        team_namespaces = {t: team_namespace(t, factory) for t in wanted}
        form = form_of(pool, provider)
        if form == "controller":
            known = dict(team_namespaces)
            if "*" in pool.spec.teams and factory is not None:  # every team may use it
                known.update({t.name: team_namespace(t.name, factory) for t in factory.spec.teams})
            objects = buildkit_pool(pool, provider, factory, revision, sched, sa, wanted, known)
        else:
            objects = standalone(pool, provider, factory, revision, sched, self.certs, team_namespaces, self.now)
        team_objects: list[dict] = []
        if form == "standalone":
            for team, namespace in sorted(team_namespaces.items()):
                team_objects.extend(render_team(team, namespace, sa, provider.spec.type, revision))
        return RenderedPool(pool.name, provider.name, form, buildkit_namespace(factory),
                            tuple(order_objects(team_objects + objects)))


def _retention(factory: Any) -> str | None:
    return factory.spec.defaults.finishedRunRetention if factory is not None else None


# -- the functional API (a process-wide Renderer) ----------------------------------------------

_default: Renderer | None = None


def default_renderer() -> Renderer:
    global _default
    if _default is None:
        _default = Renderer()
    return _default


def render_build(build: Any, pool: Any, provider: Any, factory: Any, revision: str, *,
                 renderer: Renderer | None = None) -> RenderedBuild:
    """Render one build for the pool and provider a decision chose. ``build``, ``pool`` and
    ``provider`` are loader Entities; ``factory`` is the FactoryConfig (model or Entity) or None."""
    return (renderer or default_renderer()).render_build(build, pool, provider, factory, revision)


def render_pool_infrastructure(pool: Any, provider: Any, factory: Any, revision: str, *,
                               teams: Iterable[str] = (), renderer: Renderer | None = None) -> RenderedPool:
    return (renderer or default_renderer()).render_pool_infrastructure(pool, provider, factory, revision, teams=teams)


Placement = Callable[[Any], "tuple[Any, Any] | None"]


def render_snapshot(snapshot: Any, revision: str | None = None, *,
                    placements: Mapping[str, tuple[str, str]] | None = None,
                    builds: Iterable[str] | None = None,
                    renderer: Renderer | None = None) -> RenderResult:
    """Render every build (or those named in ``builds``) and every BuildKit pool of a snapshot.

    ``placements`` maps build name -> (provider, pool), e.g. from selection's decisions; a
    build without one is placed by :func:`placement_stub.choose_placement`. Each build's or
    pool's failure is recorded in ``errors`` and the others go on.
    """
    from .placement_stub import choose_placement

    renderer = renderer or default_renderer()
    revision = revision or snapshot.revision or "working-tree"
    factory = snapshot.factory.model if snapshot.factory is not None else None
    errors: dict[str, str] = {}
    rendered: dict[str, RenderedBuild] = {}
    users: dict[str, set[str]] = {}
    names = sorted(snapshot.builds) if builds is None else list(builds)
    for name in names:
        build = snapshot.builds.get(name)
        if build is None:
            errors[f"build/{name}"] = "no such build (or its file is invalid)"
            continue
        try:
            if placements is not None and name in placements:
                provider_name, pool_name = placements[name]
                provider, pool = snapshot.providers[provider_name], snapshot.pools[pool_name]
            else:
                chosen = choose_placement(build, snapshot)
                if chosen is None:
                    raise RenderError("no pool accepts this build's method and team")
                pool, provider = chosen
            rendered[name] = renderer.render_build(build, pool, provider, factory, revision)
            users.setdefault(pool.name, set()).add(build.team)
        except (RenderError, KeyError) as exc:
            errors[f"build/{name}"] = str(exc) if isinstance(exc, RenderError) else f"unknown provider or pool {exc}"
    pools: dict[str, RenderedPool] = {}
    for pool_name in sorted(snapshot.pools):
        pool = snapshot.pools[pool_name]
        if pool.spec.backend != "buildkit":
            continue
        provider = snapshot.providers.get(pool.spec.provider)
        if provider is None:
            continue
        try:
            pools[pool_name] = renderer.render_pool_infrastructure(pool, provider, factory, revision,
                                                                   teams=users.get(pool_name, ()))
        except RenderError as exc:
            errors[f"pool/{pool_name}"] = str(exc)
    clusters, conflicts = merge([*(r for r in pools.values()), *(rendered[n] for n in sorted(rendered))])
    errors.update(conflicts)
    return RenderResult(clusters, rendered, pools, errors)


def merge(results: Iterable[RenderedBuild | RenderedPool]) -> tuple[dict[str, tuple[dict, ...]], dict[str, str]]:
    """Objects per cluster, each identity once, in apply order; differing duplicates are errors."""
    per_cluster: dict[str, dict[tuple, dict]] = {}
    conflicts: dict[str, str] = {}
    for result in results:
        seen = per_cluster.setdefault(result.cluster, {})
        for obj in result.objects:
            key = identity(obj)
            existing = seen.get(key)
            if existing is None:
                seen[key] = obj
            elif existing is not obj and existing != obj:
                what = f"build/{result.build}" if isinstance(result, RenderedBuild) else f"pool/{result.pool}"
                conflicts[what] = f"{key[1]} {key[2]}/{key[3]} is rendered differently by another build or pool"
    return {c: tuple(order_objects(objs.values())) for c, objs in sorted(per_cluster.items())}, conflicts
