"""Per-pool facts, computed once per pass, and bit-set indexes over them.

Selection runs for every build of the repository on every pass, so the work that does not
depend on the build is done here, once: each usable pool gets an index ``i`` (pools sorted
by provider, then name, whatever order the caller passed them in) and every rule has a bit
mask of the pools that pass it (bit ``i`` set). Filtering a build is then a handful of
integer ANDs.

A pool that points at a provider or node pool that does not exist is left out and listed
in ``Catalog.skipped`` (validation reports it; one bad file never stops the others).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .health import UNKNOWN, ProviderHealth
from .requirements import quantity

TIER_USABLE, TIER_DEGRADED, TIER_UNHEALTHY = 0, 1, 2


@dataclass(frozen=True)
class PoolFacts:
    index: int
    name: str
    provider: str
    provider_type: str
    node_pool: str
    infrastructure: str  # "kubernetes" | "build_nodes" (node pool marked buildNodes: true)
    backend: str
    buildkit_mode: str | None
    methods: frozenset[str]
    teams: frozenset[str]  # pool's spec.teams ("*" = every team the provider admits)
    tenants: frozenset[str]  # provider's spec.tenants
    architectures: tuple[str, ...]
    gpu: int
    gpu_type: str | None
    cpu: float | None
    cpu_text: str | None
    memory: float | None
    memory_text: str | None
    capabilities: frozenset[str]
    hardware: frozenset[str]
    max_builds: int
    priority: int
    running: int
    health: ProviderHealth
    backend_problem: str | None  # why this backend cannot run on the provider right now

    @property
    def bit(self) -> int:
        return 1 << self.index

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.name}"

    @property
    def tier(self) -> int:
        state = self.health.state
        if state == "Unhealthy":
            return TIER_UNHEALTHY
        return TIER_DEGRADED if state == "Degraded" else TIER_USABLE

    @property
    def full(self) -> bool:
        return self.running >= self.max_builds

    def serves(self, team: str | None) -> bool:
        return "*" in self.teams or (team is not None and team in self.teams)

    def admits(self, team: str | None) -> bool:
        return "*" in self.tenants or (team is not None and team in self.tenants)


class _AtLeast:
    """Masks of pools whose value is >= a request; pools with no declared value always pass."""

    def __init__(self, values: list[tuple[float | None, int]]) -> None:
        self.unknown = 0
        known: dict[float, int] = {}
        for value, bit in values:
            if value is None:
                self.unknown |= bit
            else:
                known[value] = known.get(value, 0) | bit
        self.values = sorted(known)
        self.masks = [0] * (len(self.values) + 1)
        for i in range(len(self.values) - 1, -1, -1):
            self.masks[i] = self.masks[i + 1] | known[self.values[i]]

    def mask(self, need: float) -> int:
        return self.masks[bisect_left(self.values, need)] | self.unknown


@dataclass(frozen=True)
class Load:
    """Builds running per pool at the moment of a decision: the catalog's own count plus
    the builds admitted earlier in the same pass, and the mask of pools that are full."""

    admitted: Mapping[str, int]
    full: int

    def running(self, pool: PoolFacts) -> int:
        return pool.running + self.admitted.get(pool.name, 0) if self.admitted else pool.running

    def admit(self, pool: PoolFacts) -> "Load":
        """A new Load with one more build on ``pool`` (this one is left as it is)."""
        admitted = dict(self.admitted)
        admitted[pool.name] = admitted.get(pool.name, 0) + 1
        full = self.full | (pool.bit if pool.running + admitted[pool.name] >= pool.max_builds else 0)
        return Load(admitted, full)


def _model(obj: Any) -> Any:
    return getattr(obj, "model", obj)


def _values(objs: Mapping[str, Any] | Iterable[Any] | None) -> list[Any]:
    if objs is None:
        return []
    return [_model(o) for o in (objs.values() if isinstance(objs, Mapping) else objs)]


def _backend_problem(backend: str, mode: str | None, provider: Any, health: ProviderHealth) -> str | None:
    name = provider.metadata.name
    if backend == "tekton" and health.tekton_installed is False:
        return f"Tekton is not installed on {name}, and this pool's backend is tekton"
    if backend == "buildkit" and mode == "controller":
        controller = health.buildkit_controller
        if controller is None:
            controller = provider.spec.buildkitController
        if not controller:
            return f"this pool uses the BuildKit controller, which is not installed on {name}"
    return None


@dataclass
class Catalog:
    pools: tuple[PoolFacts, ...]
    skipped: tuple[str, ...] = ()
    providers: Mapping[str, ProviderHealth] = field(default_factory=dict)
    default_infrastructure: str = "auto"
    tenants: Mapping[str, frozenset[str]] = field(default_factory=dict)  # provider -> spec.tenants

    def __post_init__(self) -> None:
        pools = self.pools
        self.by_name = {p.name: p for p in pools}
        self.all = (1 << len(pools)) - 1
        self._methods: dict[str, int] = {}
        self._archs: dict[str, int] = {}
        self._gpu_types: dict[str, int] = {}
        self._hardware: dict[str, int] = {}
        self._by_provider: dict[str, int] = {}
        self.air_gapped = self.legacy = self.build_nodes = 0
        self.unhealthy = self.degraded = self.unknown = self.backend_bad = 0
        for p in pools:
            bit = p.bit
            for m in p.methods:
                self._methods[m] = self._methods.get(m, 0) | bit
            for a in p.architectures:
                self._archs[a] = self._archs.get(a, 0) | bit
            if p.gpu and p.gpu_type:
                self._gpu_types[p.gpu_type] = self._gpu_types.get(p.gpu_type, 0) | bit
            for h in p.hardware:
                self._hardware[h] = self._hardware.get(h, 0) | bit
            self._by_provider[p.provider] = self._by_provider.get(p.provider, 0) | bit
            if "air-gapped" in p.capabilities:
                self.air_gapped |= bit
            if "legacy" in p.capabilities:
                self.legacy |= bit
            if p.infrastructure == "build_nodes":
                self.build_nodes |= bit
            state = p.health.state
            if state == "Unhealthy":
                self.unhealthy |= bit
            elif state == "Degraded":
                self.degraded |= bit
            elif state == "Unknown":
                self.unknown |= bit
            if p.backend_problem:
                self.backend_bad |= bit
        self.kubernetes = self.all & ~self.build_nodes
        full = 0
        for p in pools:
            if p.full:
                full |= p.bit
        self.load = Load({}, full)  # before anything is admitted in this pass
        self._gpu = _AtLeast([(float(p.gpu), p.bit) for p in pools])
        self._cpu = _AtLeast([(p.cpu, p.bit) for p in pools])
        self._memory = _AtLeast([(p.memory, p.bit) for p in pools])
        self._teams: dict[str | None, tuple[int, int]] = {}
        self._provider_teams: dict[str | None, tuple[str, ...]] = {}
        # Plans of the decisions made on this catalog, shared by builds that need the same
        # thing (see selection.deciding); a catalog lives for one pass.
        self.plans: dict = {}

    # -- masks a build asks for -------------------------------------------------------
    def tenancy(self, team: str | None) -> tuple[int, int]:
        """(pools whose provider admits ``team``, pools that serve ``team``)."""
        cached = self._teams.get(team)
        if cached is None:
            admits = serves = 0
            for p in self.pools:
                if p.admits(team):
                    admits |= p.bit
                if p.serves(team):
                    serves |= p.bit
            cached = self._teams[team] = (admits, serves)
        return cached

    def method(self, method: str) -> int:
        return self._methods.get(method, 0)

    def architectures(self, archs: Iterable[str]) -> int:
        mask = self.all
        for a in archs:
            mask &= self._archs.get(a, 0)
        return mask

    def gpu(self, count: int, gpu_type: str | None) -> int:
        mask = self._gpu.mask(float(count)) & ~self._gpu.unknown
        if gpu_type:
            mask &= self._gpu_types.get(gpu_type, 0)
        return mask

    def cpu(self, cores: float) -> int:
        return self._cpu.mask(cores)

    def memory(self, size: float) -> int:
        return self._memory.mask(size)

    def hardware(self, name: str) -> int:
        return self._hardware.get(name, 0) | self._gpu_types.get(name, 0)

    def with_admitted(self, admitted: Mapping[str, int] | None) -> Load:
        """The Load after ``admitted`` (pool name -> builds admitted earlier in this pass)."""
        if not admitted:
            return self.load
        full = self.load.full
        for name, count in admitted.items():
            pool = self.by_name.get(name)
            if pool is not None and pool.running + count >= pool.max_builds:
                full |= pool.bit
        return Load(dict(admitted), full)

    def providers_for(self, team: str | None) -> tuple[str, ...]:
        """Providers that admit ``team`` (whether or not they have pools)."""
        cached = self._provider_teams.get(team)
        if cached is None:
            cached = self._provider_teams[team] = tuple(
                name for name, tenants in self.tenants.items() if "*" in tenants or (team is not None and team in tenants))
        return cached

    def on_provider(self, provider: str) -> int:
        return self._by_provider.get(provider, 0)

    def members(self, mask: int) -> list[PoolFacts]:
        """The pools of ``mask``, in catalog order."""
        pools = self.pools
        out = []
        while mask:
            low = mask & -mask
            out.append(pools[low.bit_length() - 1])
            mask ^= low
        return out

    def health_of(self, provider: str) -> ProviderHealth:
        return self.providers.get(provider, UNKNOWN)

    # -- construction -----------------------------------------------------------------
    @classmethod
    def build(
        cls,
        providers: Mapping[str, Any] | Iterable[Any],
        pools: Mapping[str, Any] | Iterable[Any],
        health: Mapping[str, ProviderHealth] | None = None,
        load: Mapping[str, int] | None = None,
        factory: Any = None,
    ) -> "Catalog":
        """Index ``pools`` (Entities or Pool models) on ``providers`` for one pass.

        ``health``: provider name -> ProviderHealth (missing providers are Unknown).
        ``load``: pool name -> running builds (missing pools: their ``status.running``, else 0).
        ``factory``: the FactoryConfig (Entity or model), for ``spec.defaults.infrastructure``.
        """
        health = dict(health or {})
        load = load or {}
        by_provider = {p.metadata.name: p for p in _values(providers)}
        pool_models = sorted(_values(pools), key=lambda p: (p.spec.provider, p.metadata.name))
        facts: list[PoolFacts] = []
        skipped: list[str] = []
        for pool in pool_models:
            spec = pool.spec
            provider = by_provider.get(spec.provider)
            if provider is None:
                skipped.append(f"{pool.metadata.name}: provider '{spec.provider}' does not exist")
                continue
            node_pool = next((n for n in provider.spec.nodePools if n.name == spec.nodePool), None)
            if node_pool is None:
                skipped.append(f"{pool.metadata.name}: provider {spec.provider} has no node pool '{spec.nodePool}'")
                continue
            state = health.get(spec.provider, UNKNOWN)
            capabilities = set(node_pool.capabilities)
            if "air-gapped" in provider.spec.capabilities:
                capabilities.add("air-gapped")  # the network is a property of the whole cluster
            if len(node_pool.architectures) > 1:
                capabilities.add("multi-arch")
            if node_pool.capacity.gpu:
                capabilities.add("gpu")
            running = load.get(pool.metadata.name)
            if running is None:
                running = pool.status.running if pool.status is not None else 0
            mode = spec.buildkit.mode if spec.buildkit is not None else ("auto" if spec.backend == "buildkit" else None)
            facts.append(PoolFacts(
                index=len(facts),
                name=pool.metadata.name,
                provider=spec.provider,
                provider_type=provider.spec.type,
                node_pool=node_pool.name,
                infrastructure="build_nodes" if node_pool.buildNodes else "kubernetes",
                backend=spec.backend,
                buildkit_mode=mode,
                methods=frozenset(spec.methods),
                teams=frozenset(spec.teams),
                tenants=frozenset(provider.spec.tenants),
                architectures=tuple(node_pool.architectures),
                gpu=node_pool.capacity.gpu,
                gpu_type=node_pool.gpuType,
                cpu=quantity(node_pool.capacity.cpu),
                cpu_text=node_pool.capacity.cpu,
                memory=quantity(node_pool.capacity.memory),
                memory_text=node_pool.capacity.memory,
                capabilities=frozenset(capabilities),
                hardware=frozenset(node_pool.hardware),
                max_builds=spec.maxConcurrentBuilds,
                priority=spec.priority,
                running=int(running),
                health=state,
                backend_problem=_backend_problem(spec.backend, mode, provider, state),
            ))
        default = "auto"
        if factory is not None:
            default = _model(factory).spec.defaults.infrastructure
        known = {name: health.get(name, UNKNOWN) for name in sorted(by_provider)}
        tenants = {name: frozenset(by_provider[name].spec.tenants) for name in sorted(by_provider)}
        return cls(tuple(facts), tuple(skipped), known, default, tenants)
