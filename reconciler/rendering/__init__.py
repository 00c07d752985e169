"""Rendering: builds and pools -> Kubernetes objects (Tekton, Kaniko Jobs, BuildKit).

Public API::

    render_build(build, pool, provider, factory, revision) -> RenderedBuild
    render_pool_infrastructure(pool, provider, factory, revision, teams=()) -> RenderedPool
    render_snapshot(snapshot, revision, placements=None, builds=None) -> RenderResult
    Renderer(templates=TemplateStore(root), certs=CertStore, now=clock)   # caches; has the same methods
    choose_placement(build, snapshot)     # placement_stub: a stand-in for selection
    InMemoryCertStore(), LookupCertStore(lookup)   # where certificate Secrets are found again

``build``, ``pool`` and ``provider`` are loader Entities (``reconciler.source.loading``);
``factory`` the FactoryConfig (model or Entity) or None. Every object carries the labels and
annotations of DESIGN.md plus ``imagefactory.dev/template`` (template name@version).

Modules: ``templates`` (pipeline templates, sandboxed Jinja, compiled skeletons), ``tekton``
(Pipeline + PipelineRun; why pipelineRef), ``jobs`` (Kaniko and BuildKit-client Jobs),
``buildkit`` (BuildKitPool, standalone buildkitd), ``certificates`` (mTLS material),
``tenancy`` (team namespace, ServiceAccount, RBAC), ``context`` (placement, resources),
``quoting`` (how user values travel safely), ``validating`` (CRD schema checks),
``placement_stub``.
"""

from .building import (RenderedBuild, RenderedPool, Renderer, RenderResult, default_renderer, merge, render_build,
                       render_pool_infrastructure, render_snapshot)
from .certificates import CertStore, InMemoryCertStore, LookupCertStore, mask_secret_data
from .common import RenderError
from .placement_stub import choose_placement
from .templates import TemplateError, TemplateStore

__all__ = [
    "CertStore",
    "InMemoryCertStore",
    "LookupCertStore",
    "RenderError",
    "RenderResult",
    "RenderedBuild",
    "RenderedPool",
    "Renderer",
    "TemplateError",
    "TemplateStore",
    "choose_placement",
    "default_renderer",
    "mask_secret_data",
    "merge",
    "render_build",
    "render_pool_infrastructure",
    "render_snapshot",
]
