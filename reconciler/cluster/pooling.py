"""Connections pooled per provider, with idle expiry.

``ConnectionPool.get(name, spec, credentials)`` returns the provider's open connection when its
settings are unchanged, or builds a new one. A connection is rebuilt when the Provider's
``endpoint``/``auth``/``credentials`` change (compared by a fingerprint of the sealed values,
never the plaintext), when it has been idle for ``settings.idle_expiry`` seconds, or when a
client certificate obtained from an exec plugin is about to expire. A failed connect is not
cached: the next ``get`` tries again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any, Callable

from .connecting import Connection, Credentials, connect
from .settings import DEFAULT_SETTINGS, ClusterSettings


def fingerprint(spec: Any) -> str:
    """What identifies a provider's connection settings (sealed values, not plaintext)."""
    parts: dict[str, Any] = {}
    for name in ("type", "endpoint", "region", "auth", "credentials"):
        value = getattr(spec, name, None)
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        parts[name] = value
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ConnectionPool:
    def __init__(self, settings: ClusterSettings = DEFAULT_SETTINGS, *,
                 connector: Callable[..., Connection] = connect, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._connector = connector
        self._clock = clock
        self._conns: dict[str, Connection] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.connects = 0  # connections built (tests, metrics)

    def get(self, provider: str, spec: Any, credentials: Credentials | None = None,
            settings: ClusterSettings | None = None) -> Connection:
        settings = settings or self.settings
        wanted = fingerprint(spec) + f"/{hash(settings)}"
        with self._lock:
            lock = self._locks.setdefault(provider, threading.Lock())
        with lock:
            conn = self._conns.get(provider)
            if conn is not None:
                if conn.fingerprint == wanted and not self._idle(conn) and not conn.expired():
                    conn.last_used = self._clock()
                    return conn
                self._discard(provider, conn)
            conn = self._connector(provider, spec, credentials, settings)
            conn.fingerprint = wanted
            conn.clock = self._clock
            conn.last_used = self._clock()
            self.connects += 1
            with self._lock:
                self._conns[provider] = conn
            return conn

    def expire_idle(self) -> list[str]:
        """Close connections idle longer than ``idle_expiry``; returns their providers."""
        with self._lock:
            idle = [(name, c) for name, c in self._conns.items() if self._idle(c) or c.expired()]
        for name, conn in idle:
            self._discard(name, conn)
        return [name for name, _ in idle]

    def drop(self, provider: str) -> None:
        with self._lock:
            conn = self._conns.get(provider)
        if conn is not None:
            self._discard(provider, conn)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._conns)

    def close(self) -> None:
        with self._lock:
            conns, self._conns = dict(self._conns), {}
        for conn in conns.values():
            conn.close()

    def _idle(self, conn: Connection) -> bool:
        return self._clock() - conn.last_used > conn.settings.idle_expiry

    def _discard(self, provider: str, conn: Connection) -> None:
        with self._lock:
            if self._conns.get(provider) is conn:
                del self._conns[provider]
        conn.close()

    def __enter__(self) -> "ConnectionPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
