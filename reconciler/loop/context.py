"""What a pass gets from the loop, and what the loop reads from the pass's report.

The pass function (``reconciler.loop.passing.run_pass``) is called as::

    report = run_pass(triggers, context)      # or run_pass(triggers) if it takes one argument

with ``triggers`` the coalesced batch (oldest first, each with ``.reason``, ``.at``,
``.detail``) and ``context`` a :class:`PassContext`. The pass should call
``context.checkpoint()`` at safe points (between steps; never half-way through a commit),
which raises :class:`PassAbandoned` once the loop wants it to stop (SIGTERM, leadership
lost), and ``context.mark_applied()`` right after its apply step, for the
trigger-to-apply latency. ``context.superseded()`` tells work worth retrying (a rejected
status push) that the next pass is already waiting and will redo it.

The report may be any object; the loop reads these attributes when present (all optional):

=====================  ========================================================================
``exit_code``          0 clean, 1 some builds failed to reconcile, 2 the pass could not run
``ok``                 bool, used when there is no ``exit_code``
``revision``           the commit reconciled (logged)
``applied``            int, or a collection / mapping of collections of applied objects
``pruned``             same, for pruned objects
``errors``             iterable of errors, each with ``.kind`` (or ``["kind"]``, or an exception)
``git``                iterable of ``(operation, seconds, ok)`` (fetch, push) not already
                       recorded through ``context.metrics.git_timer``
``git_reachable``      bool: the fetch worked (feeds ``/readyz``)
``provider_health``    ``{provider: state or ProviderHealth}``
``phases``             ``{phase: number of builds}``
``applied_at``         ``time.monotonic()`` when apply ended (else ``mark_applied`` or pass end)
=====================  ========================================================================
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .metrics import Metrics
from .triggers import Trigger


class PassAbandoned(Exception):
    """Raised by :meth:`PassContext.checkpoint` when the loop asked the pass to stop."""


@dataclasses.dataclass
class PassContext:
    number: int
    triggers: tuple[Trigger, ...]
    metrics: Metrics
    log: logging.Logger
    options: Mapping[str, Any]
    is_leader: Callable[[], bool]
    started: float = dataclasses.field(default_factory=time.monotonic)
    applied_at: float | None = None
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event)
    stop_reason: str | None = None
    waiting: Callable[[], int] = lambda: 0  # triggers queued since this pass began

    def superseded(self) -> bool:
        """True when work this pass could still retry (a rejected status push) is better left
        to the next pass: one is already waiting, or the loop wants this one to stop."""
        return self._stop.is_set() or self.waiting() > 0

    def should_stop(self) -> bool:
        """True once the loop wants this pass to end at its next safe point."""
        return self._stop.is_set()

    def checkpoint(self) -> None:
        """Call at safe points: raises :class:`PassAbandoned` when the pass should stop."""
        if self._stop.is_set():
            raise PassAbandoned(self.stop_reason or "stop requested")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; returns True (early) when the pass should stop."""
        return self._stop.wait(seconds)

    def mark_applied(self) -> None:
        self.applied_at = time.monotonic()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def reasons(self) -> list[str]:
        return sorted({t.reason for t in self.triggers})
