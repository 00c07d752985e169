"""The loop: trigger queue, coalescing, sources, leadership, failures, probes (real threads, no mocks)."""

from __future__ import annotations

import random
import threading
import time
import types
from pathlib import Path

import pytest

from reconciler.errors import SourceUnavailable
from reconciler.loop.context import PassAbandoned, PassContext
from reconciler.loop.election import LocalElector
from reconciler.loop.metrics import Metrics
from reconciler.loop.running import Loop
from reconciler.loop.triggers import ClusterWatchSource, FileWatcher, Poller, Trigger, TriggerQueue


def wait_for(predicate, timeout: float = 10.0, step: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Recorder:
    """A pass that records its batches and its running intervals, and can be slow."""

    def __init__(self, duration: float = 0.0, safe_points: bool = True) -> None:
        self.duration = duration
        self.safe_points = safe_points
        self.batches: list[list[Trigger]] = []
        self.intervals: list[tuple[float, float]] = []
        self.running = 0
        self.max_running = 0
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, triggers, ctx):
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        start = time.monotonic()
        self.started.set()
        try:
            self.batches.append(list(triggers))
            end = start + self.duration
            while time.monotonic() < end:
                if self.safe_points:
                    ctx.checkpoint()
                time.sleep(0.005)
            ctx.mark_applied()
            return types.SimpleNamespace(exit_code=0, applied=2, pruned=1, errors=[], revision="f" * 40)
        finally:
            self.intervals.append((start, time.monotonic()))
            with self._lock:
                self.running -= 1

    def reasons(self) -> list[list[str]]:
        return [[t.reason for t in b] for b in self.batches]


@pytest.fixture
def loops():
    started: list[Loop] = []
    yield started
    for loop in started:
        loop.request_stop("test over")
        loop.shutdown()


def start_loop(loops, run_pass, **kw) -> Loop:
    kw.setdefault("shutdown_timeout", 5)
    loop = Loop(run_pass, **kw).start()
    loops.append(loop)
    return loop


# -- the queue ----------------------------------------------------------------------------------

def test_take_returns_every_pending_trigger_as_one_batch_oldest_first():
    q = TriggerQueue()
    for reason in ("webhook", "poll", "watch"):
        q.notify(reason, {"n": reason})
    batch = q.take(timeout=0)
    assert [t.reason for t in batch] == ["webhook", "poll", "watch"]
    assert batch[0].at <= batch[1].at <= batch[2].at
    assert batch[0].detail == {"n": "webhook"}
    assert q.take(timeout=0.01) == []


def test_take_blocks_until_a_trigger_arrives_from_another_thread():
    q = TriggerQueue()
    threading.Timer(0.1, q.notify, ("webhook",)).start()
    start = time.monotonic()
    batch = q.take(timeout=5)
    assert [t.reason for t in batch] == ["webhook"]
    assert 0.05 < time.monotonic() - start < 2


def test_delayed_trigger_falls_due_later_and_counts_from_then():
    q = TriggerQueue()
    q.notify("retry", delay=0.2)
    assert q.take(timeout=0.05) == []
    start = time.monotonic()
    batch = q.take(timeout=2)
    assert [t.reason for t in batch] == ["retry"]
    assert time.monotonic() - start < 0.5
    assert batch[0].age() < 0.1


def test_closed_queue_drops_triggers_and_wakes_the_consumer():
    q = TriggerQueue()
    got = []
    t = threading.Thread(target=lambda: got.append(q.take()))
    t.start()
    time.sleep(0.05)
    q.close()
    t.join(2)
    assert got == [None]
    assert q.notify("webhook") is False
    assert q.take(timeout=0) is None


def test_requeued_batch_goes_before_newer_triggers():
    q = TriggerQueue()
    q.notify("webhook")
    batch = q.take(timeout=0)
    q.notify("poll")
    q.requeue(batch)
    assert [t.reason for t in q.take(timeout=0)] == ["webhook", "poll"]


# -- coalescing through the real loop -----------------------------------------------------------

def test_burst_of_20_triggers_during_a_slow_pass_gives_at_most_two_passes(loops):
    recorder = Recorder(duration=0.6)
    loop = start_loop(loops, recorder)
    assert recorder.started.wait(5)  # the "start" pass is running
    for i in range(20):
        loop.queue.notify("webhook", {"i": i})
        time.sleep(0.01)
    assert wait_for(lambda: len(recorder.intervals) >= 2 and loop._current is None, 10)
    time.sleep(0.8)  # nothing else comes
    reasons = recorder.reasons()
    assert reasons[0] == ["start"]
    assert reasons[1] == ["webhook"] * 20, "the whole burst must be one pass"
    assert len(reasons) == 2
    assert recorder.max_running == 1


def test_a_pass_is_superseded_once_a_trigger_waits_or_the_loop_stops(loops):
    """``context.superseded()``: what the pass tells work worth retrying (a rejected status push)."""
    seen = []
    release = threading.Event()

    def run_pass(triggers, ctx):
        seen.append(ctx.superseded())
        release.wait(5)
        seen.append(ctx.superseded())
        return types.SimpleNamespace(exit_code=0)

    loop = start_loop(loops, run_pass)
    assert wait_for(lambda: len(seen) == 1)
    loop.queue.notify("webhook")
    release.set()
    assert wait_for(lambda: len(seen) >= 3)
    assert seen[:2] == [False, True]  # nothing waited when it began; then a webhook came
    stopping = PassContext(1, (), loop.metrics, None, {}, lambda: True)
    assert not stopping.superseded()
    stopping.request_stop("SIGTERM")
    assert stopping.superseded()


def test_passes_never_overlap_under_concurrent_triggers_from_many_threads(loops):
    recorder = Recorder(duration=0.02)
    loop = start_loop(loops, recorder)
    sources = ["webhook", "poll", "watch", "file"]

    def hammer(reason):
        rng = random.Random(reason)
        for _ in range(50):
            loop.queue.notify(reason)
            time.sleep(rng.uniform(0, 0.01))

    threads = [threading.Thread(target=hammer, args=(r,)) for r in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wait_for(lambda: loop.queue.pending() == 0 and loop._current is None, 10)
    time.sleep(0.1)
    assert recorder.max_running == 1
    spans = sorted(recorder.intervals)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert e1 <= s2, "two passes overlapped"
    handled = sum(len(b) for b in recorder.batches)
    assert handled == 1 + 200  # every trigger was handled exactly once
    assert len(recorder.batches) < 201  # and they coalesced


def test_trigger_to_apply_latency_and_pass_metrics_are_recorded(loops):
    recorder = Recorder(duration=0.05)
    loop = start_loop(loops, recorder)
    assert wait_for(lambda: len(recorder.intervals) == 1)
    loop.queue.notify("webhook")
    assert wait_for(lambda: len(recorder.intervals) == 2 and loop.last_outcome == "ok")
    text = loop.metrics.exposition().decode()
    assert 'image_factory_trigger_to_apply_seconds_count{reason="webhook"} 1.0' in text
    assert 'image_factory_passes_total{outcome="ok"} 2.0' in text
    assert "image_factory_objects_applied_total 4.0" in text
    assert "image_factory_objects_pruned_total 2.0" in text
    assert 'image_factory_triggers_total{reason="webhook"} 1.0' in text


# -- failures -------------------------------------------------------------------------------------

def test_a_pass_that_raises_does_not_stop_the_loop_and_is_retried_with_backoff(loops):
    calls = []

    def flaky(triggers, ctx):
        calls.append((time.monotonic(), [t.reason for t in triggers]))
        if len(calls) <= 2:
            raise SourceUnavailable("remote unreachable")
        return types.SimpleNamespace(exit_code=0)

    loop = start_loop(loops, flaky, retry_backoff=(0.1, 1.0))
    assert wait_for(lambda: len(calls) >= 3, 5)
    assert calls[1][1] == ["retry"] and calls[2][1] == ["retry"]
    assert calls[2][0] - calls[1][0] >= 0.18  # 0.1, then 0.2: backoff doubles
    assert wait_for(lambda: loop.last_outcome == "ok")
    text = loop.metrics.exposition().decode()
    assert 'image_factory_errors_total{kind="source_unavailable"} 2.0' in text
    assert 'image_factory_passes_total{outcome="error"} 2.0' in text
    assert loop.git_reachable is True


def test_readiness_fails_while_git_is_unreachable(loops):
    def unreachable(triggers, ctx):
        raise SourceUnavailable("remote unreachable")

    loop = start_loop(loops, unreachable, retry_backoff=(5, 5))
    assert wait_for(lambda: loop.last_outcome == "error")
    ready, details = loop.ready()
    assert not ready and details["git_reachable"] is False
    assert "Git remote" in details["reason"]


def test_readiness_fails_when_no_pass_completed_recently(loops):
    recorder = Recorder()
    loop = start_loop(loops, recorder, ready_max_age=0.3)
    assert wait_for(lambda: loop.last_outcome == "ok")
    assert loop.ready()[0]
    time.sleep(0.4)
    ready, details = loop.ready()
    assert not ready and "no pass completed" in details["reason"]


def test_alive_turns_false_for_a_stuck_pass(loops):
    recorder = Recorder(duration=1.0, safe_points=False)
    loop = start_loop(loops, recorder, stuck_after=0.2)
    assert recorder.started.wait(5)
    assert wait_for(lambda: not loop.alive(), 2)
    assert wait_for(loop.alive, 3)  # it finished after all


# -- leadership and shutdown ------------------------------------------------------------------------

class ManualElector:
    """An elector the test flips by hand (the Lease one is tested against the real control plane)."""

    kind = "manual"
    identity = "manual"

    def __init__(self):
        self.leading = False
        self.released = None

    def start(self, on_started, on_stopped):
        self.on_started, self.on_stopped = on_started, on_stopped

    def is_leader(self):
        return self.leading

    def gain(self):
        self.leading = True
        self.on_started()

    def lose(self):
        self.leading = False
        self.on_stopped()

    def stop(self, release=True):
        self.released = release


def test_nothing_runs_before_leadership_and_losing_it_abandons_the_pass(loops):
    elector = ManualElector()
    recorder = Recorder(duration=5)
    loop = start_loop(loops, recorder, elector=elector)
    loop.queue.notify("webhook")
    time.sleep(0.3)
    assert recorder.batches == []  # standby: triggers wait
    assert loop.ready()[0] and loop.ready()[1]["role"] == "standby"
    elector.gain()
    assert recorder.started.wait(2)
    assert recorder.reasons()[0] == ["webhook", "leader"]
    elector.lose()
    assert wait_for(lambda: loop.last_outcome == "abandoned", 2)
    loop.queue.notify("poll")
    time.sleep(0.3)
    assert len(recorder.batches) == 1  # not leading: the poll waits
    assert loop.metrics.leader._value.get() == 0


def test_sigterm_delivered_to_another_thread_still_stops_the_loop():
    """The kernel may hand a process's SIGTERM to any thread; the handler must still run."""
    import signal

    loop = Loop(lambda triggers: types.SimpleNamespace(exit_code=0), shutdown_timeout=2)
    other = threading.Thread(target=lambda: time.sleep(0.3) or signal.pthread_kill(threading.get_ident(),
                                                                                   signal.SIGTERM))
    fallback = threading.Timer(10, loop.request_stop, ("the signal was never handled",))
    fallback.start()
    other.start()
    started = time.monotonic()
    try:
        assert loop.run() == 0  # (in the main thread: it installs the handlers)
    finally:
        fallback.cancel()
    assert loop.stop_reason == "received SIGTERM"
    assert time.monotonic() - started < 2


def test_shutdown_waits_for_the_pass_then_releases_the_lease(loops):
    elector = ManualElector()
    recorder = Recorder(duration=0.5, safe_points=False)  # a pass with no safe point finishes
    loop = start_loop(loops, recorder, elector=elector)
    elector.gain()
    assert recorder.started.wait(2)
    start = time.monotonic()
    loop.request_stop("test")
    assert loop.shutdown() == 0
    assert len(recorder.intervals) == 1 and recorder.intervals[0][1] <= time.monotonic()
    assert time.monotonic() - start >= 0.3
    assert elector.released is True
    assert loop.queue.notify("webhook") is False


def test_shutdown_keeps_the_lease_when_the_pass_outlives_the_timeout(loops):
    elector = ManualElector()
    recorder = Recorder(duration=3, safe_points=False)
    loop = start_loop(loops, recorder, elector=elector, shutdown_timeout=0.3)
    elector.gain()
    assert recorder.started.wait(2)
    loop.request_stop("test")
    assert loop.shutdown() == 0
    assert elector.released is False  # let it expire rather than overlap with a successor


def test_pass_taking_only_triggers_is_called_without_context(loops):
    seen = []
    loop = start_loop(loops, lambda triggers: seen.append([t.reason for t in triggers]))
    assert wait_for(lambda: seen == [["start"]])
    assert loop.last_outcome == "ok"


def test_abandoned_pass_is_not_counted_as_a_success(loops):
    def abandoning(triggers, ctx):
        raise PassAbandoned("test")

    loop = start_loop(loops, abandoning)
    assert wait_for(lambda: loop.last_outcome == "abandoned")
    assert loop.last_pass_end is None


# -- sources ----------------------------------------------------------------------------------------

def test_poller_waits_are_jittered_within_bounds():
    poller = Poller(TriggerQueue(), 10, jitter=0.2, rng=random.Random(1))
    waits = [poller.next_wait() for _ in range(200)]
    assert all(8 <= w <= 12 for w in waits)
    assert max(waits) - min(waits) > 2  # actually spread
    with pytest.raises(ValueError):
        Poller(TriggerQueue(), 0)


def test_poller_triggers_periodically_and_only_on_change_with_a_probe():
    q = TriggerQueue()
    poller = Poller(q, 0.05, jitter=0.0).start()
    try:
        assert wait_for(lambda: q.pending() >= 3, 3)
    finally:
        poller.stop()
    tokens = iter(["a", "a", "a", "b", "b"] + ["b"] * 1000)
    q2 = TriggerQueue()
    probed = Poller(q2, 0.02, jitter=0.0, probe=lambda: next(tokens)).start()
    try:
        time.sleep(0.5)
    finally:
        probed.stop()
    assert [t.detail["token"] for t in q2.take(timeout=0)] == ["a", "b"]


def test_file_watcher_triggers_on_edits_but_not_in_git_dir(tmp_path: Path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "builds").mkdir()
    q = TriggerQueue()
    watcher = FileWatcher(q, tmp_path, debounce_ms=50).start()
    try:
        assert watcher.ready.wait(5)
        time.sleep(0.3)  # let the OS watch settle
        (tmp_path / ".git" / "index").write_text("x")
        time.sleep(0.5)
        assert q.pending() == 0
        (tmp_path / "builds" / "web.yaml").write_text("kind: BuildRequest\n")
        assert wait_for(lambda: q.pending() >= 1, 5)
        batch = q.take(timeout=0)
        assert batch[0].reason == "file"
        assert "builds/web.yaml" in batch[0].detail["paths"]
    finally:
        watcher.stop()


def test_cluster_watch_source_notifies_from_any_thread():
    q = TriggerQueue()
    source = ClusterWatchSource(q)
    threads = [threading.Thread(target=source.notify, args=("watch", {"kind": "PipelineRun", "i": i}))
               for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch = q.take(timeout=0)
    assert len(batch) == 10 and {t.reason for t in batch} == {"watch"}


def test_local_elector_leads_at_once():
    events = []
    elector = LocalElector("me")
    elector.start(lambda: events.append("+"), lambda: events.append("-"))
    assert elector.is_leader() and events == ["+"]
    elector.stop()
    assert not elector.is_leader() and events == ["+", "-"]


def test_metrics_use_their_own_registry():
    from prometheus_client import REGISTRY

    m1, m2 = Metrics(), Metrics()  # two in one process: no duplicate-registration error
    m1.observe_git("fetch", 0.2, True)
    with pytest.raises(RuntimeError), m1.git_timer("push"):
        raise RuntimeError("push rejected")
    text = m1.exposition().decode()
    assert 'image_factory_git_operations_total{operation="fetch",outcome="ok"} 1.0' in text
    assert 'image_factory_git_operations_total{operation="push",outcome="error"} 1.0' in text
    assert "image_factory_git_operations_total" not in m2.exposition().decode().split("# TYPE")[0]
    assert REGISTRY.get_sample_value("image_factory_passes_total", {"outcome": "ok"}) is None
