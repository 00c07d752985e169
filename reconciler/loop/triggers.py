"""What makes a pass run: a queue of triggers and the sources that feed it.

A :class:`TriggerQueue` has one consumer, the loop, which takes *all* pending triggers at
once and runs one pass for them. So passes never overlap, and any number of triggers that
arrive while a pass runs coalesce into exactly one next pass. Each :class:`Trigger` keeps
its reason and arrival time, so the loop can measure trigger-to-apply latency.

Sources, each a thread that only calls :meth:`TriggerQueue.notify`:

- :class:`Poller`: every ``interval`` seconds with +/- ``jitter``, optionally only when a
  cheap probe (say, the remote's head commit) changed;
- :class:`FileWatcher`: watchfiles on a local checkout (developer mode);
- :class:`ClusterWatchSource`: what the cluster layer's watches call, from any thread.

The webhook receiver (``webhooks.py``) notifies the queue directly.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..logging import fields, get_logger

log = get_logger("triggers")

#: reasons the loop knows; any other string is accepted too
REASONS = ("start", "leader", "webhook", "poll", "watch", "file", "retry", "manual")


@dataclasses.dataclass(frozen=True)
class Trigger:
    """One reason to run a pass. ``at`` is ``time.monotonic()`` at arrival, ``wall`` ``time.time()``."""

    reason: str
    at: float
    wall: float
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def now(cls, reason: str, detail: Mapping[str, Any] | None = None) -> Trigger:
        return cls(reason, time.monotonic(), time.time(), dict(detail or {}))

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.at


class TriggerQueue:
    """Thread-safe, single-consumer: ``notify`` from anywhere, ``take`` from the loop.

    ``take`` returns every pending trigger (oldest first) as one batch; triggers put while
    the consumer runs a pass wait and come out together in the next batch. ``notify(...,
    delay=s)`` schedules a trigger for later (retries with backoff). After :meth:`close`,
    ``notify`` drops triggers and ``take`` returns ``None`` at once.
    """

    def __init__(self, *, on_trigger: Callable[[Trigger], None] | None = None) -> None:
        self._cond = threading.Condition()
        self._pending: list[Trigger] = []
        self._scheduled: list[tuple[float, int, Trigger]] = []  # heap of (due, seq, trigger)
        self._seq = itertools.count()
        self._closed = False
        self._on_trigger = on_trigger
        self.received = 0
        self.batches = 0

    # -- producers --------------------------------------------------------------------------

    def notify(self, reason: str, detail: Mapping[str, Any] | None = None, *, delay: float = 0.0) -> bool:
        """Ask for a pass. Returns False when the queue is closed (shutting down)."""
        return self.put(Trigger.now(reason, detail), delay=delay)

    def put(self, trigger: Trigger, *, delay: float = 0.0) -> bool:
        with self._cond:
            if self._closed:
                return False
            if delay > 0:
                heapq.heappush(self._scheduled, (time.monotonic() + delay, next(self._seq), trigger))
            else:
                self._pending.append(trigger)
                self.received += 1
            self._cond.notify_all()
        if self._on_trigger is not None and delay <= 0:
            self._on_trigger(trigger)
        return True

    def requeue(self, triggers: Iterable[Trigger]) -> None:
        """Give back a batch that was taken but not handled (leadership lost before the pass);
        they keep their arrival times and go before anything that came after them."""
        with self._cond:
            if self._closed:
                return
            self._pending[:0] = list(triggers)
            self._cond.notify_all()

    # -- the consumer -------------------------------------------------------------------------

    def take(self, timeout: float | None = None) -> list[Trigger] | None:
        """Wait for at least one trigger and return all pending ones; ``[]`` on timeout,
        ``None`` once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    return None
                self._promote_due()
                if self._pending:
                    batch, self._pending = self._pending, []
                    self.batches += 1
                    return batch
                now = time.monotonic()
                waits = [] if deadline is None else [deadline - now]
                if self._scheduled:
                    waits.append(self._scheduled[0][0] - now)
                if deadline is not None and now >= deadline:
                    return []
                self._cond.wait(max(0.0, min(waits)) if waits else None)

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        """Stop accepting triggers and wake the consumer; pending triggers are dropped."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._scheduled.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._scheduled and self._scheduled[0][0] <= now:
            _, _, trigger = heapq.heappop(self._scheduled)
            # A scheduled trigger counts from when it falls due, not from when it was asked for.
            self._pending.append(dataclasses.replace(trigger, at=now, wall=time.time()))
            self.received += 1


# -- sources --------------------------------------------------------------------------------------

class _Source:
    """A daemon thread feeding a queue; ``start()`` and ``stop()`` (idempotent)."""

    name = "source"

    def __init__(self, queue: TriggerQueue) -> None:
        self.queue = queue
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> _Source:
        if self._thread is None:
            self._thread = threading.Thread(target=self._guarded, name=f"trigger-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001 - a dead source must be visible, not silent
            log.exception("trigger source stopped by an error", extra=fields(trigger=self.name))

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class Poller(_Source):
    """Triggers a ``poll`` pass every ``interval`` seconds, each wait drawn from
    ``interval * (1 +/- jitter)`` so that replicas and restarts do not fall in step.

    With ``probe`` (a callable returning a token such as the remote head commit, or raising
    when the remote cannot be reached), a pass is triggered only when the token changed since
    the last probe, or when the probe fails (so that the pass reports the failure).
    """

    name = "poll"

    def __init__(self, queue: TriggerQueue, interval: float, *, jitter: float = 0.1,
                 probe: Callable[[], Any] | None = None, rng: random.Random | None = None) -> None:
        super().__init__(queue)
        if interval <= 0:
            raise ValueError("poll interval must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("poll jitter must be in [0, 1)")
        self.interval = interval
        self.jitter = jitter
        self.probe = probe
        self._rng = rng or random.Random()
        self._last_token: Any = None

    def next_wait(self) -> float:
        return self.interval * (1 + self._rng.uniform(-self.jitter, self.jitter))

    def _run(self) -> None:
        while not self._stop.wait(self.next_wait()):
            detail: dict[str, Any] = {}
            if self.probe is not None:
                try:
                    token = self.probe()
                except Exception as exc:  # noqa: BLE001 - the pass will report it properly
                    detail["probe_error"] = type(exc).__name__
                else:
                    if token == self._last_token and token is not None:
                        continue
                    self._last_token = token
                    detail["token"] = token
            if not self.queue.notify("poll", detail):
                return


class FileWatcher(_Source):
    """Triggers a ``file`` pass when files under ``path`` change (watchfiles; Rust notify).

    Ignores ``.git/``, editor swap files and caches (watchfiles' DefaultFilter). Changes
    within ``debounce_ms`` are grouped by watchfiles into one notification.
    """

    name = "file"

    def __init__(self, queue: TriggerQueue, path: str | Path, *, debounce_ms: int = 50,
                 force_polling: bool | None = None) -> None:
        super().__init__(queue)
        self.path = Path(path)
        self.debounce_ms = debounce_ms
        self.force_polling = force_polling
        self.ready = threading.Event()

    def _run(self) -> None:
        from watchfiles import DefaultFilter, watch

        root = self.path.resolve()
        self.ready.set()
        # .image-factory/ is the reconciler's own work directory when it lives in the checkout.
        ignore = DefaultFilter(ignore_dirs=(*DefaultFilter.ignore_dirs, ".image-factory"))
        for changes in watch(root, watch_filter=ignore, stop_event=self._stop,
                             debounce=self.debounce_ms, step=20, yield_on_timeout=False,
                             force_polling=self.force_polling, raise_interrupt=False):
            paths = sorted({_relative(p, root) for _, p in changes})
            if not self.queue.notify("file", {"paths": paths[:50], "count": len(paths)}):
                return


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


class ClusterWatchSource:
    """The API the cluster layer's watches call: ``notify(reason)`` from any thread.

    ``notify("watch", {"cluster": "eks-prod", "kind": "PipelineRun", "name": "x"})`` asks for
    a pass; the details travel with the trigger to the pass (which may then observe only what
    changed). Safe to call at any rate: a burst coalesces into one pass.
    """

    name = "watch"

    def __init__(self, queue: TriggerQueue) -> None:
        self.queue = queue

    def notify(self, reason: str = "watch", detail: Mapping[str, Any] | None = None) -> bool:
        return self.queue.notify(reason, detail)

    # the same lifecycle as the threaded sources, so the loop can treat them alike
    def start(self) -> ClusterWatchSource:
        return self

    def stop(self, timeout: float = 0.0) -> None:
        return None
