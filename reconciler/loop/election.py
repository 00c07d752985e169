"""The leader-election interface the loop uses, and the one-replica elector for local runs.

``reconciler.cluster.leases.LeaseElector`` implements the same interface with a
``coordination.k8s.io/v1`` Lease. Callbacks may come from any thread and must be quick.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Protocol


class Elector(Protocol):
    identity: str
    kind: str

    def start(self, on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None]) -> None:
        """Campaign in the background; call ``on_started_leading`` when this replica leads and
        ``on_stopped_leading`` when it no longer does (it then campaigns again)."""

    def is_leader(self) -> bool: ...

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; with ``release``, give the lease up so a standby takes over at once."""


class LocalElector:
    """Always the leader: ``image-factory run`` without ``--leader-elect``."""

    kind = "local"

    def __init__(self, identity: str | None = None) -> None:
        self.identity = identity or default_identity()
        self._leading = threading.Event()
        self._on_stopped: Callable[[], None] | None = None

    def start(self, on_started_leading: Callable[[], None], on_stopped_leading: Callable[[], None]) -> None:
        self._on_stopped = on_stopped_leading
        self._leading.set()
        on_started_leading()

    def is_leader(self) -> bool:
        return self._leading.is_set()

    def stop(self, release: bool = True) -> None:
        if self._leading.is_set():
            self._leading.clear()
            if self._on_stopped is not None:
                self._on_stopped()


def default_identity() -> str:
    """``<$POD_NAME or hostname>_<random>``, as client-go's users do: unique per process, so a
    restarted container never mistakes its predecessor's lease for its own."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:12]}"
