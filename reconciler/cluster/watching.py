"""Watches: the managed PipelineRuns and Jobs of every provider, as events, so that build
status follows the cluster within a second instead of waiting for the next poll.

One thread per provider and kind, each doing what a client-go reflector does::

    LIST (managed label) -> its resourceVersion -> WATCH from there (with bookmarks) -> events
      the server ends the watch (timeoutSeconds) or the connection drops
                                         -> WATCH again from the last resourceVersion seen
      410 Gone (the version is older than the server keeps: the watch fell behind, or the
      API server restarted)               -> LIST again, compare with what was known, report
                                             every difference, WATCH from the new version
      the server cannot be reached       -> back off (exponential, jittered, capped), retry

``on_change(RunEvent)`` is called, from the watch's thread, only when a run's state (phase,
reason, message, start or finish time; ``objects.run_state``) changes, or a run appears or
disappears. Tekton writes a PipelineRun's status many times while it runs; a write that does
not change what the build's status would say is not an event.

A watch seeded with the states a pass just observed (``known=``) reports what changed between
that pass's LIST and its own; an unseeded one reports nothing for its first LIST.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..logging import fields, get_logger
from .connecting import Connection
from .errors import ClusterError, ClusterUnavailable, Expired
from .objects import ObjectKey, RunState, build_of, group_of, key_of, run_state
from .observing import list_pages
from .resources import ResourceType
from .settings import MANAGED_SELECTOR

log = get_logger("cluster.watch")

WATCHED_KINDS: tuple[tuple[str, str], ...] = (("tekton.dev/v1", "PipelineRun"), ("batch/v1", "Job"))

_GONE = object()  # "no such run" in comparisons (a run's state may itself be None for other kinds)


@dataclass(frozen=True)
class RunEvent:
    """A run of ours changed state on a provider; ``phase`` is None when the run is gone."""

    provider: str
    kind: str
    namespace: str
    name: str
    build: str | None
    phase: str | None
    state: RunState | None = None  # the whole new state (None: gone)

    def as_detail(self) -> dict[str, Any]:
        return {"cluster": self.provider, "kind": self.kind, "namespace": self.namespace, "name": self.name,
                "build": self.build, "phase": self.phase or "Deleted", "state": self.state}


@dataclass(frozen=True)
class WatchSettings:
    timeout_seconds: float = 300.0  # asked of the server; each watch gets +/- 10% so they do not align
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    absent_retry: float = 60.0  # a kind the cluster does not serve (CRD not installed): look again after


class KindWatch:
    """One kind on one provider (see the module doc). ``start()``/``stop()``; thread-safe."""

    def __init__(self, conn: Connection, api_version: str, kind: str, on_change: Callable[[RunEvent], None], *,
                 known: Mapping[ObjectKey, RunState] | None = None, resource_version: str | None = None,
                 selector: str = MANAGED_SELECTOR,
                 settings: WatchSettings = WatchSettings(), rng: random.Random | None = None) -> None:
        self.conn, self.api_version, self.kind = conn, api_version, kind
        self.provider = conn.provider
        self.on_change = on_change
        self.selector = selector
        self.settings = settings
        self._rng = rng or random.Random()
        self._known: dict[ObjectKey, RunState | None] = {k: v for k, v in (known or {}).items()
                                                         if (k.kind, k.group) == (kind, group_of(api_version))}
        self._primed = known is not None
        self._absent = False  # the cluster does not serve this kind
        # where to resume; None: LIST first. A version the server no longer keeps costs a 410 and a LIST.
        self.resource_version = resource_version
        self.counts: Counter[str] = Counter()  # lists, watches, expired, reconnects, events, changes
        self.streaming = threading.Event()  # set while a watch stream is open
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> KindWatch:
        if self._thread is None:
            self._thread = threading.Thread(target=self._guarded, daemon=True,
                                            name=f"watch-{self.provider}-{self.kind}")
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the thread's read at once
            except Exception:  # noqa: BLE001 - it may be closing by itself
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def current(self) -> bool:
        """Known runs are the cluster's: primed and streaming (or the kind is not served)."""
        return self.running and self._primed and (self.streaming.is_set() or self._absent)

    def states(self) -> dict[ObjectKey, RunState]:
        with self._lock:
            return {k: v for k, v in self._known.items() if v is not None}

    # -- the loop -----------------------------------------------------------------------------

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001 - a dead watch must be visible in the log, not silent
            log.exception("watch stopped by an error", extra=fields(provider=self.provider, kind=self.kind))
        finally:
            self.streaming.clear()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                rt = self.conn.resource(self.api_version, self.kind)
                if rt is None:  # not served here (yet): nothing to watch
                    self._absent = True
                    self._stop.wait(self.settings.absent_retry)
                    continue
                self._absent = False
                if self.resource_version is None:
                    self._relist(rt)
                self._watch(rt)
                failures = 0
            except Expired:
                self.counts["expired"] += 1
                log.info(f"watch of {self.kind} expired (410 Gone): listing again",
                         extra=fields(provider=self.provider))
                self.resource_version = None
            except ClusterError as exc:
                if self._stop.is_set():
                    return
                failures += 1
                self.counts["reconnects"] += 1
                delay = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (failures - 1))
                delay *= 0.5 + self._rng.random() / 2
                log_at = log.warning if failures in (3, 10) or failures % 50 == 0 else log.info
                log_at(f"watch of {self.kind} interrupted ({exc}); again in {delay:.1f}s",
                       extra=fields(provider=self.provider, attempt=failures))
                self._stop.wait(delay)

    def _relist(self, rt: ResourceType) -> None:
        items, version = list_pages(self.conn, rt.path(None), self.api_version, self.kind,
                                    {"labelSelector": self.selector}, f"list {rt.plural}")
        self.counts["lists"] += 1
        fresh = {key_of(obj): (run_state(obj), build_of(obj)) for obj in items}
        with self._lock:
            old, primed = self._known, self._primed
            self._known = {key: state for key, (state, _) in fresh.items()}
            self._primed = True
        if primed:
            for key in sorted(set(old) | set(fresh), key=str):
                before = old.get(key, _GONE)
                state, build = fresh.get(key, (_GONE, None))
                if before != state:
                    self._emit(key, None if state is _GONE else state, build)
        self.resource_version = version or None

    def _watch(self, rt: ResourceType) -> None:
        timeout = self.settings.timeout_seconds * (0.9 + self._rng.random() / 5)
        query = {"watch": "1", "labelSelector": self.selector, "allowWatchBookmarks": "true",
                 "resourceVersion": self.resource_version or "", "timeoutSeconds": str(max(1, int(timeout)))}
        self.counts["watches"] += 1
        try:
            for event in self.conn.stream(rt.path(None), query=query, read_timeout=timeout + 30,
                                          what=f"watch {rt.plural}", opened=self._opened):
                if self._stop.is_set():
                    return
                self._handle(event)
        finally:
            self._response = None
            self.streaming.clear()

    def _opened(self, response: Any) -> None:
        self._response = response
        self.streaming.set()
        if self._stop.is_set():
            response.shutdown()

    def _handle(self, event: Any) -> None:
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise ClusterUnavailable(f"watch {self.kind}: an event without an object", provider=self.provider,
                                     reason="BadStream")
        if kind == "ERROR":
            message = str(obj.get("message") or obj.get("reason") or "watch error")
            if obj.get("code") == 410:
                raise Expired(f"watch {self.kind}: {message}", provider=self.provider, status=410)
            raise ClusterUnavailable(f"watch {self.kind}: {message}", provider=self.provider, status=obj.get("code"))
        self.counts["events"] += 1
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return  # BOOKMARK: only the version moves
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        key = key_of(obj)
        state = None if kind == "DELETED" else run_state(obj)
        with self._lock:
            before = self._known.get(key, _GONE)
            if kind == "DELETED":
                self._known.pop(key, None)
            else:
                self._known[key] = state
        if before != (_GONE if kind == "DELETED" else state):
            self._emit(key, state, build_of(obj))

    def _emit(self, key: ObjectKey, state: RunState | None, build: str | None) -> None:
        self.counts["changes"] += 1
        event = RunEvent(self.provider, key.kind, key.namespace or "", key.name, build,
                         state.phase if state is not None else None, state)
        try:
            self.on_change(event)
        except Exception:  # noqa: BLE001 - the watch goes on whatever the listener does
            log.exception("a watch listener failed", extra=fields(provider=self.provider))


class Watches:
    """The watches of every provider. ``ensure`` (after each pass) starts what is missing,
    restarts a provider whose connection was rebuilt (its settings changed) and stops the
    watches of providers no longer wanted."""

    def __init__(self, on_change: Callable[[RunEvent], None], *, kinds: Iterable[tuple[str, str]] = WATCHED_KINDS,
                 settings: WatchSettings = WatchSettings()) -> None:
        self.on_change = on_change
        self.kinds = tuple(kinds)
        self.settings = settings
        self._watched: dict[str, tuple[Connection, list[KindWatch]]] = {}
        self._lock = threading.Lock()

    def ensure(self, conns: Mapping[str, Connection], *, keep: Iterable[str] = (),
               known: Mapping[str, Mapping[ObjectKey, RunState]] | None = None) -> None:
        """Watch the providers of ``conns``; leave those in ``keep`` as they are (a provider that
        could not be reached this pass keeps retrying); stop all others."""
        keep = set(keep)
        with self._lock:
            for name in sorted(set(self._watched) - set(conns) - keep):
                self._stop(name)
            for name, conn in sorted(conns.items()):
                current = self._watched.get(name)
                if current is not None and current[0] is conn and all(w.running for w in current[1]):
                    continue
                if current is not None:
                    self._stop(name)
                seed = (known or {}).get(name)
                watches = [KindWatch(conn, api, kind, self.on_change, known=seed, settings=self.settings).start()
                           for api, kind in self.kinds]
                self._watched[name] = (conn, watches)

    def providers(self) -> list[str]:
        with self._lock:
            return sorted(self._watched)

    def watches(self, provider: str) -> list[KindWatch]:
        with self._lock:
            return list(self._watched.get(provider, (None, []))[1])

    def primed(self, providers: Iterable[str]) -> bool:
        """Does every watch of these providers know its runs (seeded, or listed once) and
        stream now? Only then is ``runs()`` the clusters' current state."""
        with self._lock:
            for name in providers:
                watched = self._watched.get(name)
                if watched is None or not all(w.current for w in watched[1]):
                    return False
        return True

    def runs(self) -> dict[tuple[str, str, str, str], RunState]:
        """(provider, kind, namespace, name) -> state, of every run the watches know."""
        out = {}
        with self._lock:
            watched = {name: list(w) for name, (_, w) in self._watched.items()}
        for name, watches in watched.items():
            for watch in watches:
                for key, state in watch.states().items():
                    out[(name, key.kind, key.namespace, key.name)] = state
        return out

    def counts(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        with self._lock:
            for _, watches in self._watched.values():
                for watch in watches:
                    out.update(watch.counts)
        return dict(out)

    def stop(self) -> None:
        with self._lock:
            for name in list(self._watched):
                self._stop(name)

    def _stop(self, name: str) -> None:
        _, watches = self._watched.pop(name)
        for watch in watches:
            watch._stop.set()
        for watch in watches:
            watch.stop()

