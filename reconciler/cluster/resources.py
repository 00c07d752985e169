"""Which REST path serves a kind: API discovery, one request per group-version, cached.

A group-version the server does not serve (a CRD not installed) is remembered as absent for
``ABSENT_TTL`` seconds, so a CRD installed later is seen without reconnecting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

from .errors import NotFound
from .transport import Transport

ABSENT_TTL = 30.0


@dataclass(frozen=True)
class ResourceType:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        root = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            root += f"/namespaces/{quote(namespace, safe='')}"
        root += f"/{self.plural}"
        if name is not None:
            root += f"/{quote(name, safe='')}"
        return root


class Discovery:
    def __init__(self, transport: Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self._transport = transport
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, ResourceType] | None]] = {}
        self._lock = threading.Lock()

    def resource(self, api_version: str, kind: str) -> ResourceType | None:
        """The resource type of ``kind`` in ``api_version``; None when the server does not serve it."""
        kinds = self.kinds(api_version)
        return kinds.get(kind) if kinds is not None else None

    def kinds(self, api_version: str) -> dict[str, ResourceType] | None:
        with self._lock:
            hit = self._cache.get(api_version)
        if hit is not None and (hit[1] is not None or self._clock() - hit[0] < ABSENT_TTL):
            return hit[1]
        path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            doc = self._transport.get_json(path, what=f"discover {api_version}")
        except NotFound:
            kinds = None
        else:
            kinds = {}
            for res in (doc or {}).get("resources") or ():
                name = res.get("name", "")
                if "/" in name or not res.get("kind"):
                    continue  # a subresource
                kinds.setdefault(res["kind"], ResourceType(api_version, res["kind"], name, bool(res.get("namespaced"))))
        with self._lock:
            self._cache[api_version] = (self._clock(), kinds)
        return kinds

    def forget(self, api_version: str) -> None:
        with self._lock:
            self._cache.pop(api_version, None)
