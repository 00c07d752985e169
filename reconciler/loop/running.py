"""The continuous loop: triggers in, one pass at a time, only while leading, clean shutdown.

Threads: the caller's (normally the main thread, which owns the signal handlers) waits for
a stop; one *worker* thread takes trigger batches and runs passes, so passes never overlap;
the HTTP server, the trigger sources and the elector have their own.

Leadership: nothing runs until the elector says this replica leads; gaining leadership
queues a pass (``leader``, or ``start`` when running alone). Losing it asks the running pass
to stop at its next safe point, and triggers taken but not run are put back.

SIGTERM / SIGINT: stop taking triggers (webhooks get 503), ask the running pass to stop at
its next safe point and wait for it up to ``shutdown_timeout`` (a second signal stops
waiting), then release the lease -- only if no pass is still running, else the lease just
expires -- stop the server, return 0.
"""

from __future__ import annotations

import inspect
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import FactoryError, SourceUnavailable
from ..logging import fields, get_logger, log_context
from .context import PassAbandoned, PassContext
from .election import Elector, LocalElector
from .metrics import Metrics, count_of, error_kind
from .triggers import Trigger, TriggerQueue

log = get_logger("loop")

RunPass = Callable[..., Any]
SIGNAL_CHECK = 0.2  # seconds between the main thread's looks at pending signals (see run)


class Loop:
    def __init__(self, run_pass: RunPass, *, queue: TriggerQueue | None = None, metrics: Metrics | None = None,
                 elector: Elector | None = None, sources: Iterable[Any] = (), server: Any = None,
                 options: Mapping[str, Any] | None = None, shutdown_timeout: float = 25.0,
                 ready_max_age: float | None = None, stuck_after: float | None = 3600.0,
                 retry_backoff: tuple[float, float] = (1.0, 60.0)) -> None:
        self.run_pass = run_pass
        self._pass_takes_context = _takes_context(run_pass)
        self.metrics = metrics or Metrics()
        self.queue = queue or TriggerQueue()
        self.elector: Elector = elector or LocalElector()
        self.sources = list(sources)
        self.server = server
        self.options = dict(options or {})
        self.shutdown_timeout = shutdown_timeout
        self.ready_max_age = ready_max_age
        self.stuck_after = stuck_after
        self.retry_backoff = retry_backoff

        self._stop = threading.Event()
        self._force = threading.Event()
        self._leading = threading.Event()
        self._lock = threading.Lock()
        self._current: PassContext | None = None
        self._worker: threading.Thread | None = None
        self._started = time.monotonic()
        self._failures = 0
        self.passes = 0
        self.left_running = False  # shutdown gave up waiting for a pass (the process should exit hard)
        self.stop_reason: str | None = None
        self.last_pass_end: float | None = None  # monotonic, passes that ran (ok or failed)
        self.last_outcome: str | None = None
        self.last_revision: str | None = None
        self.git_reachable: bool | None = None
        #: (start, end) monotonic of every pass, for tests and debugging (bounded)
        self.history: list[tuple[float, float, str, tuple[str, ...]]] = []

    # -- lifecycle --------------------------------------------------------------------------

    def run(self, install_signals: bool | None = None) -> int:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT); returns the exit code (0)."""
        if install_signals is None:
            install_signals = threading.current_thread() is threading.main_thread()
        previous = self._install_signals() if install_signals else {}
        try:
            self.start()
            # Wake up now and then: a process signal may be delivered to any thread, and the
            # Python handler then runs only when this (main) thread runs bytecode again; an
            # untimed wait would sleep through SIGTERM.
            while not self._stop.wait(SIGNAL_CHECK):
                pass
            return self.shutdown()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def start(self) -> Loop:
        if self.server is not None:
            self.server.start()
        self._worker = threading.Thread(target=self._work, name="reconcile-passes", daemon=True)
        self._worker.start()
        for source in self.sources:
            source.start()
        self.elector.start(self._on_started_leading, self._on_stopped_leading)
        return self

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop taking triggers and ask the running pass to stop at its next safe point."""
        if self._stop.is_set():
            return
        self.stop_reason = reason
        log.info(f"stopping: {reason}; no new triggers")
        self.queue.close()
        with self._lock:
            if self._current is not None:
                self._current.request_stop(reason)
        self._stop.set()

    def shutdown(self) -> int:
        """Finish stopping (after :meth:`request_stop`); safe to call once."""
        self.request_stop(self.stop_reason or "shutdown")
        for source in self.sources:
            try:
                source.stop()
            except Exception:  # noqa: BLE001 - keep shutting down
                log.exception("a trigger source failed to stop")
        finished = self._wait_for_worker()
        self.left_running = not finished
        try:
            # Never hand the lease over while a pass of ours may still be applying.
            self.elector.stop(release=finished)
        except Exception:  # noqa: BLE001
            log.exception("releasing the lease failed; it will expire")
        self.metrics.leader.set(0)
        if self.server is not None:
            self.server.stop()
        log.info("stopped" + ("" if finished else f": a pass was still running after {self.shutdown_timeout:g}s "
                                                  "and was left unfinished; the lease was not released"))
        return 0

    def _wait_for_worker(self) -> bool:
        if self._worker is None:
            return True
        deadline = time.monotonic() + self.shutdown_timeout
        while self._worker.is_alive() and time.monotonic() < deadline and not self._force.is_set():
            self._worker.join(0.1)
        return not self._worker.is_alive()

    def _install_signals(self) -> dict[int, Any]:
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            log.warning("second signal: not waiting for the running pass any longer")
            self._force.set()
        else:
            self.request_stop(f"received {signal.Signals(signum).name}")

    # -- leadership ---------------------------------------------------------------------------

    def _on_started_leading(self) -> None:
        log.info("leading" if self.elector.kind != "local" else "running",
                 extra=fields(identity=self.elector.identity))
        self._leading.set()
        self.metrics.leader.set(1)
        self.queue.notify("start" if self.elector.kind == "local" else "leader")

    def _on_stopped_leading(self) -> None:
        if self._leading.is_set() and not self._stop.is_set():
            log.warning("lost leadership: stopping the running pass at its next safe point",
                        extra=fields(identity=self.elector.identity))
        self._leading.clear()
        self.metrics.leader.set(0)
        with self._lock:
            if self._current is not None:
                self._current.request_stop("leadership lost")

    def is_leader(self) -> bool:
        return self._leading.is_set() and self.elector.is_leader()

    # -- the worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._leading.wait(0.2):
                continue
            batch = self.queue.take(timeout=0.5)
            if batch is None:
                return
            if not batch:
                continue
            if self._stop.is_set():
                return
            if not self.is_leader():
                self.queue.requeue(batch)
                continue
            self._run_one(batch)

    def _run_one(self, batch: Sequence[Trigger]) -> None:
        self.passes += 1
        number = self.passes
        reasons = tuple(sorted({t.reason for t in batch}))
        for trigger in batch:
            self.metrics.triggers.labels(trigger.reason).inc()
        if len(batch) > 1:
            self.metrics.triggers_coalesced.inc(len(batch) - 1)
        ctx = PassContext(number=number, triggers=tuple(batch), metrics=self.metrics, log=get_logger("pass"),
                          options=self.options, is_leader=self.is_leader, waiting=self.queue.pending)
        with self._lock:
            self._current = ctx
            if self._stop.is_set():
                ctx.request_stop(self.stop_reason or "stopping")
        self.metrics.pass_running.set(1)
        report: Any = None
        error: BaseException | None = None
        with log_context(**{"pass": number}):
            log.info(f"pass {number} started", extra=fields(trigger=",".join(reasons), triggers=len(batch)))
            try:
                report = self.run_pass(list(batch), ctx) if self._pass_takes_context else self.run_pass(list(batch))
                outcome = _outcome(report)
            except PassAbandoned as exc:
                outcome = "abandoned"
                log.warning(f"pass {number} abandoned at a safe point: {exc}")
            except Exception as exc:  # noqa: BLE001 - one failed pass never stops the loop
                outcome, error = "error", exc
            end = time.monotonic()
            with self._lock:
                self._current = None
            self.metrics.pass_running.set(0)
            self._record(ctx, report, outcome, error, end)

    def _record(self, ctx: PassContext, report: Any, outcome: str, error: BaseException | None, end: float) -> None:
        m = self.metrics
        duration = end - ctx.started
        m.passes.labels(outcome).inc()
        m.pass_duration.labels(outcome).observe(duration)
        m.last_pass.set(time.time())
        self.history.append((ctx.started, end, outcome, tuple(ctx.reasons)))
        del self.history[:-1000]
        self.last_outcome = outcome
        if error is not None:
            kind = error_kind(error)
            m.errors.labels(kind).inc()
            if isinstance(error, SourceUnavailable):
                self.git_reachable = False
            self._failures += 1
            delay = min(self.retry_backoff[1], self.retry_backoff[0] * 2 ** (self._failures - 1))
            retry_after = getattr(error, "retry_after", None)
            if isinstance(retry_after, (int, float)) and retry_after > delay:
                delay = float(retry_after)
            log.error(f"pass {ctx.number} could not run: {kind}: {_first_line(error)}; retrying in {delay:g}s",
                      exc_info=error if not isinstance(error, FactoryError) else None)
            self.queue.notify("retry", {"after_error": kind}, delay=delay)
            return
        if outcome != "abandoned":
            self._failures = 0
            self.last_pass_end = end
            m.last_success.set(time.time())
        if report is not None:
            try:
                self._record_report(ctx, report, end)
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the loop
                log.error(f"pass {ctx.number}: could not record its report in metrics: {type(exc).__name__}: "
                          f"{_first_line(exc)}")
        summary = _summary(report)
        log.info(f"pass {ctx.number} {outcome} in {duration:.3f}s" + (f": {summary}" if summary else ""),
                 extra=fields(revision=getattr(report, "revision", None)))

    def _record_report(self, ctx: PassContext, report: Any, end: float) -> None:
        m = self.metrics
        applied = count_of(getattr(report, "applied", None))
        m.objects_applied.inc(applied)
        m.objects_pruned.inc(count_of(getattr(report, "pruned", None)))
        errors = getattr(report, "error_kinds", None) or getattr(report, "errors", None)
        if errors:
            m.count_errors(errors)
        if getattr(report, "unauthorized", None):
            m.count_errors([{"kind": "unauthorized"}] * count_of(report.unauthorized))
        for item in getattr(report, "git", None) or ():
            try:
                operation, seconds, ok = item
                m.observe_git(str(operation), float(seconds), bool(ok))
            except (TypeError, ValueError):
                continue
        reachable = getattr(report, "git_reachable", None)
        if reachable is not None:
            self.git_reachable = bool(reachable)
        else:
            self.git_reachable = True  # the pass ran to its end, so it could fetch
        health = getattr(report, "provider_health", None)
        if isinstance(health, Mapping):
            m.set_provider_health(health)
        phases = getattr(report, "phases", None)
        if isinstance(phases, Mapping):
            m.set_builds_by_phase(phases)
        revision = getattr(report, "revision", None)
        if revision:
            self.last_revision = str(revision)
        applied_at = getattr(report, "applied_at", None) or ctx.applied_at or end
        earliest: dict[str, float] = {}
        for trigger in ctx.triggers:
            earliest[trigger.reason] = min(earliest.get(trigger.reason, trigger.at), trigger.at)
        for reason, at in earliest.items():
            m.trigger_latency.labels(reason).observe(max(0.0, applied_at - at))

    # -- probes -----------------------------------------------------------------------------

    def alive(self) -> bool:
        """False when the worker died or a pass has run longer than ``stuck_after``."""
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            return False
        current = self._current
        if current is not None and self.stuck_after is not None:
            return time.monotonic() - current.started < self.stuck_after
        return True

    def ready(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        details: dict[str, Any] = {
            "role": "leader" if self.is_leader() else "standby",
            "identity": self.elector.identity,
            "passes": self.passes,
            "last_outcome": self.last_outcome,
            "last_pass_age_seconds": None if self.last_pass_end is None else round(now - self.last_pass_end, 3),
            "revision": self.last_revision,
            "git_reachable": self.git_reachable,
            "pass_running": self._current is not None,
        }
        if self._stop.is_set():
            return False, {**details, "reason": "stopping"}
        if not self.is_leader():
            return True, details  # a standby serves probes and metrics; it is ready to take over
        if self.git_reachable is False:
            return False, {**details, "reason": "the Git remote could not be reached by the last pass"}
        if self.ready_max_age is not None:
            since = self.last_pass_end if self.last_pass_end is not None else self._started
            if now - since > self.ready_max_age:
                return False, {**details, "reason": f"no pass completed in the last {self.ready_max_age:g}s"}
        return True, details


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _outcome(report: Any) -> str:
    code = getattr(report, "exit_code", None)
    if isinstance(code, int):
        return "ok" if code == 0 else "failed"
    ok = getattr(report, "ok", None)
    if isinstance(ok, bool):
        return "ok" if ok else "failed"
    if isinstance(report, int) and not isinstance(report, bool):
        return "ok" if report == 0 else "failed"
    return "ok"


def _summary(report: Any) -> str:
    if report is None:
        return ""
    parts = []
    names = ("applied", "unchanged", "pruned", "rejected", "errors")
    if getattr(report, "scope", None) == "none":
        return "nothing new (the runs are as the last pass left them)"
    if getattr(report, "scope", None) == "runs":  # no cluster was asked: only status was brought up to date
        parts.append("run states only")
        names = ("rejected", "errors")
    for name in names:
        value = getattr(report, name, None)
        if value is not None:
            parts.append(f"{count_of(value)} {name}")
    status = getattr(report, "status_result", None)
    if isinstance(status, str):
        parts.append(f"status {status}")
    return ", ".join(parts)


def _takes_context(fn: Callable[..., Any]) -> bool:
    """Does ``fn`` accept a second positional argument (the PassContext)?"""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)
