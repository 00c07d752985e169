"""Leader election with a real coordination.k8s.io/v1 Lease on the real control plane.

Short timings (lease 3 s, renew deadline 2 s, retry 0.5 s) keep the takeovers quick; the
rules are client-go's, so the production defaults (15/10/2 s) behave the same, slower.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest

from reconciler.cluster.leases import LeaseElector, LeaseTiming, api_client

from .test_loop_run import RunProcess

TIMING = LeaseTiming(lease_duration=3, renew_deadline=2, retry_period=0.5)
# A standby that watched the leader renew takes over at most lease_duration after the last
# renew plus one jittered retry (up to 2.2 * retry_period) plus API latency.
TAKEOVER_BOUND = TIMING.lease_duration + 2.2 * TIMING.retry_period + 1.0


@pytest.fixture(scope="module")
def namespace(control_plane):
    name = f"leases-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def electors(control_plane):
    made: list[LeaseElector] = []

    def make(namespace: str, lease: str, identity: str, timing: LeaseTiming = TIMING, **kw) -> LeaseElector:
        elector = LeaseElector(api_client(control_plane.kubeconfig), namespace, lease, identity, timing=timing, **kw)
        made.append(elector)
        return elector

    yield make
    for elector in made:
        elector.stop(release=False)


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def callbacks(self, name: str):
        return (lambda: self._add(f"{name}+"), lambda: self._add(f"{name}-"))

    def _add(self, what: str) -> None:
        with self.lock:
            self.items.append((what, time.monotonic()))

    def names(self) -> list[str]:
        return [n for n, _ in self.items]


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def lease_spec(control_plane, namespace: str, name: str) -> dict:
    status, body = control_plane.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    assert status == 200, body
    return body["spec"]


def test_only_one_of_two_electors_leads_and_the_standby_takes_over_when_it_dies(control_plane, namespace, electors):
    events = Events()
    a = electors(namespace, "two", "replica-a")
    b = electors(namespace, "two", "replica-b")
    a.start(*events.callbacks("a"))
    assert wait_for(a.is_leader, 10)
    b.start(*events.callbacks("b"))
    time.sleep(TIMING.lease_duration + 1)  # longer than a lease: the leader keeps renewing
    assert a.is_leader() and not b.is_leader()
    assert events.names() == ["a+"]
    spec = lease_spec(control_plane, namespace, "two")
    assert spec["holderIdentity"] == "replica-a" and spec["leaseDurationSeconds"] == 3
    assert spec["leaseTransitions"] == 0

    # The leader dies: it stops renewing and never releases (like a SIGKILL).
    a._stop.set()
    a._thread.join(5)
    died = time.monotonic()
    assert wait_for(b.is_leader, TAKEOVER_BOUND + 2)
    takeover = time.monotonic() - died
    assert takeover <= TAKEOVER_BOUND, f"took {takeover:.2f}s"
    assert takeover >= TIMING.lease_duration - 1.0, "took over before the lease could have expired"
    spec = lease_spec(control_plane, namespace, "two")
    assert spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1


def test_release_hands_over_at_once(control_plane, namespace, electors):
    events = Events()
    a = electors(namespace, "release", "replica-a")
    b = electors(namespace, "release", "replica-b")
    a.start(*events.callbacks("a"))
    assert wait_for(a.is_leader, 10)
    b.start(*events.callbacks("b"))
    time.sleep(1)
    released = time.monotonic()
    a.stop(release=True)
    assert "a-" in events.names()
    spec = lease_spec(control_plane, namespace, "release")
    assert spec["holderIdentity"] in ("", "replica-b")
    assert wait_for(b.is_leader, 2.2 * TIMING.retry_period + 1.5)
    assert time.monotonic() - released < TIMING.lease_duration  # no waiting for expiry


def test_racing_candidates_for_a_free_lease_exactly_one_wins(control_plane, namespace, electors):
    for round_ in range(5):
        lease = f"race-{round_}"
        candidates = [electors(namespace, lease, f"c{i}") for i in range(4)]
        results: dict[str, bool] = {}
        barrier = threading.Barrier(len(candidates))

        def attempt(elector):
            barrier.wait()
            results[elector.identity] = elector.try_acquire_or_renew()

        threads = [threading.Thread(target=attempt, args=(c,)) for c in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        winners = [name for name, won in results.items() if won]
        assert len(winners) == 1, results
        assert lease_spec(control_plane, namespace, lease)["holderIdentity"] == winners[0]


def test_the_leader_stops_leading_when_it_cannot_renew_and_leads_again_after(control_plane, namespace, electors):
    events = Events()
    a = electors(namespace, "outage", "replica-a")
    a.start(*events.callbacks("a"))
    assert wait_for(a.is_leader, 10)
    control_plane.stop_apiserver()
    try:
        down = time.monotonic()
        assert wait_for(lambda: "a-" in events.names(), TIMING.renew_deadline + 3)
        assert time.monotonic() - down <= TIMING.renew_deadline + TIMING.retry_period + 2
        assert not a.is_leader()
    finally:
        control_plane.start_apiserver()
    # Nobody else took it; it is still this replica's record, so it re-acquires it.
    assert wait_for(a.is_leader, 20)
    assert events.names()[-1] == "a+"


def test_timing_is_validated_like_client_go():
    with pytest.raises(ValueError):
        LeaseTiming(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError):
        LeaseTiming(lease_duration=15, renew_deadline=2, retry_period=2)
    assert LeaseTiming() == LeaseTiming(15, 10, 2)


# -- two `image-factory run` processes ----------------------------------------------------------

def run_args(control_plane, namespace: str, lease: str, identity: str) -> tuple[str, ...]:
    return ("--listen", "127.0.0.1:0", "--poll-interval", "off", "--leader-elect",
            "--kubeconfig", str(control_plane.kubeconfig), "--lease-namespace", namespace, "--lease-name", lease,
            "--identity", identity, "--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "0.5s")


def test_two_run_processes_one_reconciles_and_the_other_takes_over_after_sigkill(control_plane, namespace, tmp_path):
    procs = []
    try:
        a = RunProcess(tmp_path, *run_args(control_plane, namespace, "runs", "proc-a"))
        procs.append(a)
        a.wait_events(lambda ev: "end 1" in ev, timeout=20)
        b = RunProcess(tmp_path, *run_args(control_plane, namespace, "runs", "proc-b"))
        procs.append(b)
        b.wait_log(r"the leader is proc-a", timeout=20)
        time.sleep(TIMING.lease_duration + 1)
        assert b.events_() == [], "the standby must not reconcile"
        assert a.events_()[0].startswith("start 1 leader")

        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        killed = time.monotonic()
        b.wait_events(lambda ev: "end 1" in ev, timeout=TAKEOVER_BOUND + 5)
        took = time.monotonic() - killed
        assert took <= TAKEOVER_BOUND + 1, f"standby took {took:.2f}s"
        assert b.events_()[0].startswith("start 1 leader")
        assert lease_spec(control_plane, namespace, "runs")["holderIdentity"] == "proc-b"
        assert b.stop() == 0
        # SIGTERM released the lease on the way out
        assert lease_spec(control_plane, namespace, "runs")["holderIdentity"] == ""
        assert "released the lease" in b.log
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()


def test_sigterm_of_the_leader_mid_pass_releases_and_the_standby_starts_at_once(control_plane, namespace, tmp_path):
    procs = []
    try:
        slow = {"FAKE_PASS_SECONDS": "60"}
        a = RunProcess(tmp_path, *run_args(control_plane, namespace, "handover", "proc-a"), env=slow)
        procs.append(a)
        a.wait_events(lambda ev: any(e.startswith("start 1") for e in ev), timeout=20)
        b = RunProcess(tmp_path, *run_args(control_plane, namespace, "handover", "proc-b"))
        procs.append(b)
        b.wait_log(r"the leader is proc-a", timeout=20)
        stopped = time.monotonic()
        assert a.stop(signal.SIGTERM) == 0
        assert "pass 1 abandoned at a safe point" in a.log and "released the lease" in a.log
        b.wait_events(lambda ev: "end 1" in ev, timeout=5)
        assert time.monotonic() - stopped < TIMING.lease_duration + 1  # released: no waiting for expiry
        assert b.stop() == 0
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
