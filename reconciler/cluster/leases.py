"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does it.

The record lives in the Lease's spec: ``holderIdentity``, ``leaseDurationSeconds``,
``acquireTime``, ``renewTime``, ``leaseTransitions``. Every write is a PUT carrying the
``resourceVersion`` that was read, so of two candidates racing for a free lease exactly one
wins (the other gets 409 Conflict and stays a standby).

Timing, with client-go's defaults (15 s / 10 s / 2 s):

- a candidate tries every ``retry_period`` to ``2.2 * retry_period`` (client-go's jitter);
- a held lease is taken over only when its record has not changed for ``lease_duration``
  *as measured on this replica's clock* since it last saw the record change (client-go's
  ``observedTime``: immune to clock skew between replicas). A standby that was already
  watching takes over within ``lease_duration + 2.2 * retry_period`` after the leader's last
  renew;
- the leader renews every ``retry_period``; when no renew has succeeded for
  ``renew_deadline`` it stops leading (``on_stopped_leading``). ``renew_deadline <
  lease_duration`` leaves the old leader time to stop before anyone else may start;
- :meth:`LeaseElector.stop` with ``release`` clears ``holderIdentity`` (and sets
  ``leaseDurationSeconds`` to 1), so a standby takes over at its next try instead of waiting.

Like client-go this gives no fencing: a leader that stalls longer than ``lease_duration -
renew_deadline`` between checks can overlap its successor; passes check leadership at their
safe points.

This is the one module of the loop that imports ``kubernetes``.
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..logging import fields, get_logger
from .settings import MANAGED_BY_LABEL, MANAGED_BY_VALUE

log = get_logger("leases")


@dataclass(frozen=True)
class LeaseTiming:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease duration must be greater than the renew deadline")
        if not self.renew_deadline > self.jitter_factor * self.retry_period:
            raise ValueError("renew deadline must be greater than retry period * 1.2")
        if self.lease_duration < 1:
            raise ValueError("lease duration must be at least 1 second")

    #: client-go's JitterFactor: a candidate waits retry_period * (1 + 1.2 * rand) between tries
    jitter_factor = 1.2

    @property
    def request_timeout(self) -> float:
        """Per API call: one slow request must not eat the whole renew deadline."""
        return max(0.5, min(self.renew_deadline / 2, 5.0))


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    lease_duration_seconds: int
    acquire_time: datetime.datetime | None
    renew_time: datetime.datetime | None
    transitions: int
    resource_version: str | None = None

    def key(self) -> tuple[Any, ...]:
        return (self.holder, self.lease_duration_seconds, self.acquire_time, self.renew_time, self.transitions)


def api_client(kubeconfig: str | Path | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: from ``kubeconfig`` (or ``$KUBECONFIG`` / ``~/.kube/config``),
    or the in-cluster service account when running in a pod and no kubeconfig is given."""
    import os

    from kubernetes import client, config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context,
                                         persist_config=False)


def _now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc)
    # MicroTime is parsed with a fixed ".000000" layout; Python's isoformat() drops the
    # fraction when it is zero, which the API server would reject.
    return now if now.microsecond else now.replace(microsecond=1)


class LeaseElector:
    """Campaign for ``namespace/name`` as ``identity``; implements ``reconciler.loop.election.Elector``.

    ``LeaseElector(api_client(kubeconfig), "image-factory", "image-factory", identity)``,
    then ``start(on_started_leading, on_stopped_leading)``. Callbacks run on the elector's
    thread and must return quickly. After losing the lease it campaigns again.
    """

    kind = "lease"

    def __init__(self, client: Any, namespace: str, name: str, identity: str, *,
                 timing: LeaseTiming | None = None,
                 on_new_leader: Callable[[str], None] | None = None) -> None:
        from kubernetes import client as k8s

        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self.on_new_leader = on_new_leader
        self._api = k8s.CoordinationV1Api(client)
        self._k8s = k8s
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0  # monotonic time the observed record last changed
        self._last_renew = 0.0
        self._known_leader: str | None = None
        self._on_started: Callable[[], None] = lambda: None
        self._on_stopped: Callable[[], None] = lambda: None
        self._rng = random.Random()
        self._io = threading.Lock()  # one API conversation at a time (renew vs release)

    # -- the Elector interface ----------------------------------------------------------------

    def start(self, on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None]) -> None:
        self._on_started, self._on_stopped = on_started_leading, on_stopped_leading
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def is_leader(self) -> bool:
        """True while this replica holds the lease and its last renew is within the renew deadline."""
        return self._leading.is_set() and time.monotonic() - self._last_renew < self.timing.renew_deadline

    def stop(self, release: bool = True) -> None:
        """Stop campaigning (and renewing); with ``release``, give the lease up if we hold it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timing.request_timeout * 2 + 1)
        was_leading = self._leading.is_set()
        if release and was_leading:
            self.release()
        if was_leading:
            self._lose("stopped")

    # -- the campaign -------------------------------------------------------------------------

    def _run(self) -> None:
        t = self.timing
        while not self._stop.is_set():
            # acquire: try every retry_period (jittered) until we hold the lease
            while not self._stop.is_set():
                if self.try_acquire_or_renew():
                    break
                self._stop.wait(t.retry_period * (1 + self._rng.random() * t.jitter_factor))
            if self._stop.is_set():
                return
            self._leading.set()
            log.info("acquired the lease", extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity))
            self._safe(self._on_started)
            # renew: every retry_period; give up when no renew succeeded within renew_deadline
            while not self._stop.wait(t.retry_period):
                deadline = self._last_renew + t.renew_deadline
                renewed = False
                while not self._stop.is_set() and time.monotonic() < deadline:
                    if self.try_acquire_or_renew():
                        renewed = True
                        break
                    if self._observed is not None and self._observed.holder not in ("", self.identity):
                        break  # someone else holds it now: no point retrying
                    self._stop.wait(min(t.retry_period / 2, max(0.0, deadline - time.monotonic())))
                if self._stop.is_set():
                    return
                if not renewed:
                    log.warning("failed to renew the lease within the renew deadline",
                                extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity))
                    self._lose("renew deadline passed")
                    break

    def _lose(self, why: str) -> None:
        if self._leading.is_set():
            self._leading.clear()
            log.info(f"no longer leading: {why}", extra=fields(identity=self.identity))
            self._safe(self._on_stopped)

    @staticmethod
    def _safe(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # noqa: BLE001 - the election must go on
            log.exception("leader-election callback failed")

    # -- one attempt (client-go's tryAcquireOrRenew) ----------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        with self._io:
            return self._try()

    def _try(self) -> bool:
        ApiException = self._k8s.ApiException
        t = self.timing
        timeout = t.request_timeout
        now = _now()
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                log.debug(f"reading the lease failed: HTTP {exc.status}")
                return False
            body = self._lease_body(LeaseRecord(self.identity, int(round(t.lease_duration)), now, now, 0))
            try:
                self._api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
            except ApiException as exc2:
                log.debug(f"creating the lease failed: HTTP {exc2.status}")
                return False
            except Exception as exc2:  # noqa: BLE001 - network trouble: try again later
                log.debug(f"creating the lease failed: {type(exc2).__name__}")
                return False
            self._observe(LeaseRecord(self.identity, int(round(t.lease_duration)), now, now, 0))
            self._last_renew = time.monotonic()
            return True
        except Exception as exc:  # noqa: BLE001 - network trouble (connection refused, timeout)
            log.debug(f"reading the lease failed: {type(exc).__name__}")
            return False

        record = _record(lease)
        self._observe(record)
        held_by_other = record.holder not in ("", self.identity)
        if held_by_other and self._observed_at + record.lease_duration_seconds > time.monotonic():
            return False  # still valid for someone else

        if record.holder == self.identity:
            new = LeaseRecord(self.identity, int(round(t.lease_duration)), record.acquire_time or now, now,
                              record.transitions, record.resource_version)
        else:
            new = LeaseRecord(self.identity, int(round(t.lease_duration)), now, now, record.transitions + 1,
                              record.resource_version)
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, self._lease_body(new),
                                               _request_timeout=timeout)
        except ApiException as exc:
            log.debug(f"updating the lease failed: HTTP {exc.status}" + (" (lost a race)" if exc.status == 409 else ""))
            return False
        except Exception as exc:  # noqa: BLE001
            log.debug(f"updating the lease failed: {type(exc).__name__}")
            return False
        self._observe(new)
        self._last_renew = time.monotonic()
        return True

    def release(self) -> bool:
        """Give the lease up if we hold it: empty holder, ``leaseDurationSeconds: 1``."""
        ApiException = self._k8s.ApiException
        with self._io:
            try:
                lease = self._api.read_namespaced_lease(self.name, self.namespace,
                                                        _request_timeout=self.timing.request_timeout)
                record = _record(lease)
                if record.holder != self.identity:
                    return False
                now = _now()
                released = LeaseRecord("", 1, now, now, record.transitions, record.resource_version)
                self._api.replace_namespaced_lease(self.name, self.namespace, self._lease_body(released),
                                                   _request_timeout=self.timing.request_timeout)
            except (ApiException, Exception) as exc:  # noqa: BLE001 - it will expire by itself
                log.warning(f"releasing the lease failed ({type(exc).__name__}); it expires in "
                            f"{self.timing.lease_duration:g}s")
                return False
        log.info("released the lease", extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity))
        return True

    def current_holder(self) -> str | None:
        """The holder as last observed (None before the first read)."""
        return self._observed.holder if self._observed else None

    def _observe(self, record: LeaseRecord) -> None:
        if self._observed is None or record.key() != self._observed.key():
            self._observed = record
            self._observed_at = time.monotonic()
        else:
            self._observed = record  # same record, newer resourceVersion
        if record.holder != self._known_leader:
            self._known_leader = record.holder
            if record.holder and record.holder != self.identity:
                log.info(f"the leader is {record.holder}", extra=fields(identity=self.identity))
            if self.on_new_leader is not None and record.holder:
                self._safe(lambda: self.on_new_leader(record.holder))  # type: ignore[misc]

    def _lease_body(self, record: LeaseRecord) -> Any:
        k8s = self._k8s
        return k8s.V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease",
            metadata=k8s.V1ObjectMeta(name=self.name, namespace=self.namespace,
                                      resource_version=record.resource_version,
                                      labels={MANAGED_BY_LABEL: MANAGED_BY_VALUE}),
            spec=k8s.V1LeaseSpec(holder_identity=record.holder, lease_duration_seconds=record.lease_duration_seconds,
                                 acquire_time=record.acquire_time, renew_time=record.renew_time,
                                 lease_transitions=record.transitions),
        )


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder=(spec.holder_identity or "") if spec else "",
        lease_duration_seconds=int((spec.lease_duration_seconds if spec else None) or 0),
        acquire_time=spec.acquire_time if spec else None,
        renew_time=spec.renew_time if spec else None,
        transitions=int((spec.lease_transitions if spec else None) or 0),
        resource_version=lease.metadata.resource_version if lease.metadata else None,
    )
